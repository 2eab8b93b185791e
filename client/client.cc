// Client (client.h): the public face of a Session; commit's checks and fence.
#include "cxlkv/client.h"

#include <fmt/format.h>

#include "cacheline.h"
#include "session.h"

namespace cxlkv {

Client::Client(std::shared_ptr<detail::Session> session) : session_(std::move(session)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  auto session = detail::Session::open(options);
  if (!session) return session.status();
  return std::unique_ptr<Client>(new Client(std::move(*session)));
}

const SessionInfo& Client::info() const { return session_->info(); }
const Layout& Client::layout() const { return session_->layout(); }
const PoolView& Client::view() const { return session_->view(); }

std::vector<PageKey> Client::page_keys(std::span<const int32_t> tokens, const PageKey& parent) const {
  return cxlkv::page_keys(tokens, page_tokens(), info().namespace_id, parent);
}

Result<WriteLease> Client::reserve(const PageKey& parent, std::span<const PageKey> keys) {
  auto reply = session_->reserve(parent, keys);
  if (!reply) return reply.status();
  return detail::LeaseFactory::write_lease(view(), std::move(reply->pages), reply->lease, session_);
}

Result<uint32_t> Client::commit(WriteLease& lease) {
  if (lease.closed()) return Status(Code::kInvalidArgument, fmt::format("commit: lease {} is committed or aborted", lease.id()));
  if (lease.session_ != session_)
    return Status(Code::kInvalidArgument, fmt::format("commit: lease {} belongs to another connection", lease.id()));
  if (lease.id() == 0 && lease.writable_pages() == 0) {  // every page was cached or in flight: nothing to publish
    lease.closed_ = true;
    return 0u;
  }
  std::vector<uint64_t> checksums(lease.pages(), 0);
  for (uint32_t p = 0; p < lease.pages(); ++p) {
    if (!lease.writable(p)) continue;
    if (uint32_t n = lease.runs_written(p); n != lease.runs_per_page())
      return Status(Code::kInvalidArgument, fmt::format("commit: page {} of lease {} has {} of its {} (stream, layer) runs written",
                                                        p, lease.id(), n, lease.runs_per_page()));
    checksums[p] = lease.checksum(p);
  }
  cxl::fence();  // coherence rule 1: every store of the lease is in memory before the commit
  auto committed = session_->commit(lease.id(), checksums);
  if (committed) lease.closed_ = true;
  return committed;
}

Status Client::abort(WriteLease& lease) {
  if (lease.closed()) return Status(Code::kInvalidArgument, fmt::format("abort: lease {} is committed or aborted", lease.id()));
  if (lease.session_ != session_)
    return Status(Code::kInvalidArgument, fmt::format("abort: lease {} belongs to another connection", lease.id()));
  lease.closed_ = true;
  return session_->abort(lease.id());
}

Result<ReadLease> Client::lookup(std::span<const PageKey> keys) {
  auto reply = session_->lookup(keys);
  if (!reply) return reply.status();
  return detail::LeaseFactory::read_lease(view(), std::move(reply->pages), reply->lease, session_);
}

Result<uint32_t> Client::remove(std::span<const PageKey> keys) { return session_->remove(keys); }
Result<PoolStats> Client::stats() { return session_->stats(); }

}  // namespace cxlkv
