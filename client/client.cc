// Client (client.h): the public face of a Session; commit's checks and fence.
#include "cxlkv/client.h"

#include <algorithm>

#include <fmt/format.h>

#include "cacheline.h"
#include "cluster_router.h"
#include "session.h"

namespace cxlkv {

Client::Client(std::shared_ptr<detail::Session> session, std::unique_ptr<detail::ClusterRouter> router)
    : session_(std::move(session)), router_(std::move(router)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  if (options.admin)
    return Status(Code::kInvalidArgument, "connect: options.admin is for AdminClient (cxlkv/admin.h): an admin session "
                                          "maps no region, so a Client over it could read nothing");
  if (options.endpoint.starts_with("etcd://")) {
    auto router = detail::ClusterRouter::open(options);
    if (!router) return router.status();
    auto primary = (*router)->primary();
    return std::unique_ptr<Client>(new Client(std::move(primary), std::move(*router)));
  }
  auto session = detail::Session::open(options);
  if (!session) return session.status();
  return std::unique_ptr<Client>(new Client(std::move(*session), nullptr));
}

uint32_t Client::cluster_nodes() const { return router_ ? uint32_t(router_->placement_nodes().size()) : 1; }
uint32_t Client::chunk_pages() const { return router_ ? router_->chunk_pages() : 0; }

const SessionInfo& Client::info() const { return session_->info(); }
const Layout& Client::layout() const { return session_->layout(); }
const PoolView& Client::view() const { return session_->view(); }

std::vector<PageKey> Client::page_keys(std::span<const int32_t> tokens, const PageKey& parent) const {
  return cxlkv::page_keys(tokens, page_tokens(), info().namespace_id, parent);
}

Result<WriteLease> Client::reserve(const PageKey& parent, std::span<const PageKey> keys) {
  if (router_) return router_->reserve(parent, keys);
  auto reply = session_->reserve(parent, keys);
  if (!reply) return reply.status();
  return detail::LeaseFactory::write_lease(view(), std::move(reply->pages), reply->lease, session_);
}

Result<uint32_t> Client::commit(WriteLease& lease) {
  if (lease.closed()) return Status(Code::kInvalidArgument, fmt::format("commit: lease {} is committed or aborted", lease.id()));
  if (Status st = lease.check_epochs("commit"); !st) return st;
  if (!lease.parts_.empty() && !router_)
    return Status(Code::kInvalidArgument, fmt::format("commit: lease {} spans nodes; commit it with the cluster client that made it", lease.id()));
  if (lease.parts_.empty() && lease.session_ != session_)
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
  if (!lease.parts_.empty()) {
    // Each node publishes its pages; a node whose commit fails is asked to abort (its slots are
    // free at once, not at the TTL) and the first failure is returned after the others were
    // tried. The pages other nodes published stay: a lookup ends at the first missing chunk.
    uint32_t total = 0;
    Status first;
    for (detail::WritePart& part : lease.parts_) {
      if (part.id == 0) continue;
      std::vector<uint64_t> part_sums;
      part_sums.reserve(part.pages.size());
      for (uint32_t p : part.pages) part_sums.push_back(checksums[p]);
      auto committed = part.session->commit(part.id, part_sums);
      if (committed) {
        total += *committed;
      } else {
        (void)part.session->abort(part.id);
        if (first.is_ok()) first = committed.status();
      }
      part.id = 0;
    }
    lease.closed_ = true;
    if (!first) return first;
    return total;
  }
  auto committed = session_->commit(lease.id(), checksums);
  if (committed) lease.closed_ = true;
  return committed;
}

Status Client::abort(WriteLease& lease) {
  if (lease.closed()) return Status(Code::kInvalidArgument, fmt::format("abort: lease {} is committed or aborted", lease.id()));
  if (!lease.parts_.empty()) {
    lease.closed_ = true;
    Status first;
    for (detail::WritePart& part : lease.parts_)
      if (part.id != 0)
        if (Status st = part.session->abort(part.id); !st && first.is_ok()) first = st;
    return first;
  }
  if (lease.session_ != session_)
    return Status(Code::kInvalidArgument, fmt::format("abort: lease {} belongs to another connection", lease.id()));
  lease.closed_ = true;
  return session_->abort(lease.id());
}

Result<ReadLease> Client::lookup(std::span<const PageKey> keys) {
  if (router_) return router_->lookup(keys);
  auto reply = session_->lookup(keys);
  if (!reply) return reply.status();
  return detail::LeaseFactory::read_lease(view(), std::move(reply->pages), reply->lease, session_);
}

Result<uint32_t> Client::remove(std::span<const PageKey> keys) {
  return router_ ? router_->remove(keys) : session_->remove(keys);
}
Result<PoolStats> Client::stats() { return router_ ? router_->stats() : session_->stats(); }

Result<MoveReport> Client::move_off_draining() {
  if (!router_)
    return Status(Code::kInvalidArgument, fmt::format("move_off_draining: this client talks to one daemon ({}); moving "
                                                      "pages between nodes needs a cluster endpoint (etcd://)",
                                                      info().region));
  auto plan = router_->plan_move();
  if (!plan) return plan.status();
  MoveReport report;
  report.draining_nodes = plan->draining;
  report.pages_listed = plan->pages;
  report.pages_left = plan->pages;  // until a page is removed from its draining node
  std::vector<uint32_t> copied(plan->runs.size(), 0);  // per run: its leading pages read and copied
  std::vector<uint8_t> rows;
  const uint32_t tokens = page_tokens();
  for (size_t r = 0; r < plan->runs.size(); ++r) {
    const detail::ClusterRouter::MoveRun& run = plan->runs[r];
    auto read = router_->lookup_on(plan->nodes[run.from], run.keys);
    if (!read) return read.status();
    const uint32_t n = read->pages();  // a page removed or evicted meanwhile ends the run
    if (n == 0) continue;
    auto write = router_->reserve_on(plan->nodes[run.to], run.parent, std::span<const PageKey>(run.keys).first(n));
    if (!write) return write.status();
    for (int s = 0; s < layout().stream_count(); ++s) {
      const uint32_t entry = layout().stream(s).entry_bytes;
      rows.resize(size_t(n) * tokens * entry);
      for (uint32_t l = 0; l < layout().layers(); ++l) {
        if (Status st = read->fetch_pages(s, l, 0, n, rows.data()); !st) return st;
        for (uint32_t p = 0; p < n; ++p)
          if (Status st = write->write_entries(p, s, l, rows.data() + size_t(p) * tokens * entry, tokens); !st) return st;
      }
    }
    auto committed = commit(*write);
    if (!committed) return committed.status();
    report.pages_moved += *committed;
    for (uint32_t p = 0; p < n; ++p) report.pages_already_there += (write->placement(p).flags & kPlacementCached) != 0;
    copied[r] = n;
  }
  // Only now, with every copy committed, do the draining nodes let go, children before parents
  // (an interior page removed first costs the daemon a scan). Each run's copies are looked up on
  // their node first and held by that lease while the originals go: a copy evicted meanwhile (or
  // another writer's, not yet committed) keeps its original, counted in pages_left.
  for (size_t r = plan->runs.size(); r-- > 0;) {
    if (copied[r] == 0) continue;
    const detail::ClusterRouter::MoveRun& run = plan->runs[r];
    const std::span<const PageKey> keys = std::span<const PageKey>(run.keys).first(copied[r]);
    auto held = router_->lookup_on(plan->nodes[run.to], keys);
    if (!held) return held.status();
    std::vector<PageKey> safe(keys.begin(), keys.begin() + held->pages());
    std::reverse(safe.begin(), safe.end());
    auto removed = router_->remove_on(plan->nodes[run.from], safe);
    if (!removed) return removed.status();
    (void)held->release();
    report.pages_removed += *removed;  // a page pinned by a reader stays: run the move again later
    report.pages_left -= *removed;
  }
  return report;
}

}  // namespace cxlkv
