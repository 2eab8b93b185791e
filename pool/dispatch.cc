// Dispatcher: verification, session checks and the op handlers (dispatch.h).
#include "dispatch.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fmt/format.h>

#include "frame.h"
#include "namespace_id.h"

namespace cxlkv::pool {

namespace {

// Token check in constant time: both sides' SHA-256 compared with CRYPTO_memcmp, so neither the
// length nor the first differing byte of the configured token shows in the answer's timing.
bool same_token(const std::string& expected, const std::string& given) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

}  // namespace

// What a handler produces: a status, or a body of some type; encode() writes the Response.
struct Dispatcher::Reply {
  explicit Reply(flatbuffers::FlatBufferBuilder& builder) : fbb(builder) {}
  flatbuffers::FlatBufferBuilder& fbb;
  Status status;
  wire::ResponseBody type = wire::ResponseBody::NONE;
  flatbuffers::Offset<void> body;
  DispatchOutcome outcome;

  void fail(Status st) { status = std::move(st); }
  template <typename T>
  void ok(wire::ResponseBody t, flatbuffers::Offset<T> b) {
    type = t;
    body = b.Union();
  }
};

Dispatcher::Dispatcher(std::vector<DispatchPartition> partitions, std::vector<Tenant> tenants,
                       std::vector<uint32_t> tenant_partition, Metrics& metrics, uint32_t max_sessions_per_tenant)
    : partitions_(std::move(partitions)),
      tenants_(std::move(tenants)),
      tenant_partition_(std::move(tenant_partition)),
      metrics_(metrics),
      placements_(partitions_.front().service->options().max_keys),
      max_sessions_per_tenant_(max_sessions_per_tenant) {}

void Dispatcher::end_session(const Session& session) {
  if (session.id != 0 && partitions_[session.partition].service) service(session).end_session(session.id);
  auto it = sessions_per_tenant_.find(session.tenant);
  if (it != sessions_per_tenant_.end() && --it->second == 0) sessions_per_tenant_.erase(it);
}

bool Dispatcher::holds_leases(const Session& session) const {
  return session.id != 0 && partitions_[session.partition].service && service(session).holds_leases(session.id);
}

void Dispatcher::error_response(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, const Status& status) {
  fbb.Clear();
  auto msg = fbb.CreateString(status.message());
  fbb.Finish(wire::CreateResponse(fbb, id, static_cast<uint8_t>(status.code()), msg));
}

Status Dispatcher::check_count(const char* op, uint32_t n) const {
  const auto max_keys = uint32_t(placements_.size());  // every partition's max_keys (the first may be removed since)
  if (n > max_keys) return Status(Code::kInvalidArgument, fmt::format("{}: {} keys, at most {}", op, n, max_keys));
  return Status::ok();
}

namespace {

const PageKey* keys_of(const flatbuffers::Vector<const wire::Key*>* v) {
  return v ? reinterpret_cast<const PageKey*>(v->data()) : nullptr;
}
uint32_t size_of(const flatbuffers::Vector<const wire::Key*>* v) { return v ? v->size() : 0; }

Op op_of(wire::RequestBody type) {
  switch (type) {
    case wire::RequestBody::HelloRequest: return Op::kHello;
    case wire::RequestBody::ReserveRequest: return Op::kReserve;
    case wire::RequestBody::CommitRequest: return Op::kCommit;
    case wire::RequestBody::AbortRequest: return Op::kAbort;
    case wire::RequestBody::LookupRequest: return Op::kLookup;
    case wire::RequestBody::RenewRequest: return Op::kRenew;
    case wire::RequestBody::ReleaseRequest: return Op::kRelease;
    case wire::RequestBody::RemoveRequest: return Op::kRemove;
    case wire::RequestBody::StatsRequest: return Op::kStats;
    case wire::RequestBody::PartitionsRequest: return Op::kPartitions;
    case wire::RequestBody::DrainRequest: return Op::kDrain;
    case wire::RequestBody::ListPagesRequest: return Op::kListPages;
    case wire::RequestBody::ReloadRequest: return Op::kReload;
    case wire::RequestBody::RemovePartitionRequest: return Op::kRemovePartition;
    default: return Op::kBad;
  }
}

}  // namespace

DispatchOutcome Dispatcher::handle(Session& session, const uint8_t* msg, size_t size,
                                   flatbuffers::FlatBufferBuilder& fbb) {
  const auto start = Clock::now();
  fbb.Clear();
  auto verified = wire::verify_request(msg, size);
  if (!verified) {
    metrics_.count_protocol_error();
    metrics_.observe(Op::kBad, 0, false);
    error_response(fbb, 0, verified.status());
    return {};
  }
  const wire::Request* req = *verified;
  const Op op = op_of(req->body_type());
  Reply reply(fbb);
  const bool admin_op = op == Op::kPartitions || op == Op::kDrain || op == Op::kReload || op == Op::kRemovePartition;
  if (op == Op::kBad || req->body() == nullptr) {
    reply.fail(Status(Code::kProtocol, fmt::format("request {} has no known body (type {})", req->id(),
                                                   static_cast<int>(req->body_type()))));
  } else if (session.id == 0 && op != Op::kHello) {
    reply.fail(Status(Code::kPermissionDenied, fmt::format("{}: Hello must be the first request", op_name(op))));
    reply.outcome.close = true;
  } else if (session.admin && op != Op::kStats && !admin_op) {
    reply.fail(Status(Code::kPermissionDenied, fmt::format("{}: session {} is an admin session (tenant '{}'); it reads "
                                                           "and writes no pages", op_name(op), session.id, session.tenant)));
  } else if (!session.admin && admin_op) {
    reply.fail(Status(Code::kPermissionDenied, fmt::format("{}: session {} of tenant '{}' is not an admin "
                                                           "session (Hello with the admin role)", op_name(op),
                                                           session.id, session.tenant)));
  } else if (session.id != 0 && !session.admin && !partitions_[session.partition].service) {
    reply.fail(Status(Code::kExpired, fmt::format("{}: partition '{}' of session {} was removed; its tenant's pages are in "
                                                  "another partition now: connect again", op_name(op),
                                                  partitions_[session.partition].name, session.id)));
    reply.outcome.close = true;
  } else if (session.reader && (op == Op::kReserve || op == Op::kCommit || op == Op::kAbort || op == Op::kRemove)) {
    reply.fail(Status(Code::kPermissionDenied, fmt::format("{}: session {} is a reader (tenant '{}'); only writers "
                                                           "change the pool", op_name(op), session.id, session.tenant)));
  } else {
    const uint64_t sid = session.id;
    switch (op) {
      case Op::kHello: hello(session, req->body_as_HelloRequest(), reply); break;
      case Op::kReserve: reserve(session, req->body_as_ReserveRequest(), reply); break;
      case Op::kCommit: commit(session, req->body_as_CommitRequest(), reply); break;
      case Op::kLookup: lookup(session, req->body_as_LookupRequest(), reply); break;
      case Op::kAbort:
        if (Status st = service(session).abort(sid, req->body_as_AbortRequest()->lease()); !st) reply.fail(st);
        else reply.ok(wire::ResponseBody::Empty, wire::CreateEmpty(fbb));
        break;
      case Op::kRenew:
        if (auto ttl = service(session).renew(sid, req->body_as_RenewRequest()->lease(), Clock::now()); !ttl) reply.fail(ttl.status());
        else reply.ok(wire::ResponseBody::RenewResponse, wire::CreateRenewResponse(fbb, *ttl));
        break;
      case Op::kRelease:
        if (Status st = service(session).release(sid, req->body_as_ReleaseRequest()->lease()); !st) reply.fail(st);
        else reply.ok(wire::ResponseBody::Empty, wire::CreateEmpty(fbb));
        break;
      case Op::kRemove: {
        const auto* keys = req->body_as_RemoveRequest()->keys();
        if (Status st = check_count("remove", size_of(keys)); !st) reply.fail(st);
        else if (partitions_[session.partition].draining)  // its pages are being moved: they stay until they are
          reply.fail(Status(Code::kBusy, fmt::format("remove: partition '{}' is being removed; its pages are moved "
                                                     "as they are", partitions_[session.partition].name)));
        else reply.ok(wire::ResponseBody::RemoveResponse,
                      wire::CreateRemoveResponse(fbb, service(session).remove(session.ns, keys_of(keys), size_of(keys))));
        break;
      }
      case Op::kStats: stats(session, reply); break;
      case Op::kPartitions: partitions(reply); break;
      case Op::kDrain: drain(req->body_as_DrainRequest(), reply); break;
      case Op::kListPages: list_pages(session, req->body_as_ListPagesRequest(), reply); break;
      case Op::kReload: reload(reply); break;
      case Op::kRemovePartition: remove_partition(req->body_as_RemovePartitionRequest(), reply); break;
      default: break;
    }
  }
  if (!reply.status.is_ok()) {
    fbb.Clear();  // drop any half-built body
    auto m = fbb.CreateString(reply.status.message());
    fbb.Finish(wire::CreateResponse(fbb, req->id(), static_cast<uint8_t>(reply.status.code()), m));
    if (reply.status.code() == Code::kProtocol) metrics_.count_protocol_error();
  } else {
    fbb.Finish(wire::CreateResponse(fbb, req->id(), 0, 0, reply.type, reply.body));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  metrics_.observe(op, seconds, reply.status.is_ok());
  return reply.outcome;
}

void Dispatcher::hello(Session& s, const wire::HelloRequest* r, Reply& reply) {
  if (s.id != 0) return reply.fail(Status(Code::kInvalidArgument, fmt::format("hello: session {} is open already", s.id)));
  if (r->protocol_version() != wire::kProtocolVersion)
    return reply.fail(Status(Code::kProtocol, fmt::format("hello: protocol version {}, this daemon speaks {}",
                                                          r->protocol_version(), wire::kProtocolVersion)));
  const std::string tenant = r->tenant() ? r->tenant()->str() : "";
  const std::string token = r->token() ? r->token()->str() : "";
  const std::string model = r->model() ? r->model()->str() : "";
  if (tenant.empty() || model.empty())
    return reply.fail(Status(Code::kInvalidArgument, fmt::format("hello: tenant '{}' and model '{}' must not be empty",
                                                                 tenant, model)));
  uint32_t tenant_index = PoolService::kNoTenant;
  const bool reader = r->role() == wire::Role::Reader, admin = r->role() == wire::Role::Admin;
  if (r->role() != wire::Role::Reader && r->role() != wire::Role::Writer && !admin)
    return reply.fail(Status(Code::kInvalidArgument, fmt::format("hello: role {} is not writer (0), reader (1) or "
                                                                 "admin (2)", int(r->role()))));
  const char* role_name = admin ? "admin" : reader ? "reader" : "writer";
  if (admin && tenants_.empty())
    return reply.fail(Status(Code::kPermissionDenied, "hello: the admin role needs a tenant configured with it (auth is "
                                                      "open: no tenants)"));
  if (!tenants_.empty()) {
    bool allowed = false;
    for (size_t i = 0; i < tenants_.size(); ++i)
      if (tenants_[i].name == tenant && same_token(tenants_[i].token, token)) allowed = true, tenant_index = uint32_t(i);
    if (!allowed) {
      spdlog::warn("hello refused for tenant '{}': unknown tenant or wrong token", tenant);
      return reply.fail(Status(Code::kPermissionDenied, fmt::format("hello: tenant '{}' unknown or token wrong", tenant)));
    }
    const Tenant& t = tenants_[tenant_index];
    if (admin ? !t.may_admin : reader ? !t.may_read : !t.may_write)
      return reply.fail(Status(Code::kPermissionDenied, fmt::format("hello: tenant '{}' may not take the role {}", tenant,
                                                                    role_name)));
  }
  uint32_t& open = sessions_per_tenant_[tenant];
  if (open >= max_sessions_per_tenant_) {
    if (open == 0) sessions_per_tenant_.erase(tenant);
    spdlog::warn("hello refused for tenant '{}': {} sessions open, the most one tenant may hold", tenant, open);
    return reply.fail(Status(Code::kExhausted, fmt::format("hello: tenant '{}' has {} sessions open, the most one "
                                                           "tenant may hold", tenant, max_sessions_per_tenant_)));
  }
  ++open;
  s.partition = tenant_index == PoolService::kNoTenant ? 0 : tenant_partition_[tenant_index];
  s.id = service(s).new_session(tenant_index);
  s.ns = wire::namespace_id(tenant, model);
  s.tenant = tenant;
  s.reader = reader;
  s.admin = admin;
  spdlog::debug("session {}: tenant '{}' model '{}' namespace {:#x}, {}", s.id, tenant, model, s.ns, role_name);
  const cxl::Region& region = service(s).region();
  reply.outcome.pass_fd = r->want_fd() && s.unix_socket && !admin;
  flatbuffers::FlatBufferBuilder& fbb = reply.fbb;
  const auto& h = region.header();
  auto info = wire::CreateRegionInfo(
      fbb, fbb.CreateString(cxl::backend_name(region.spec().backend)), fbb.CreateString(region.spec().path),
      region.size(), fbb.CreateVector(h.uuid, sizeof h.uuid),
      fbb.CreateVector(reinterpret_cast<const uint8_t*>(&h.layout), sizeof h.layout), region.slab_pages());
  const PoolOptions& o = service(s).options();
  reply.ok(wire::ResponseBody::HelloResponse,
           wire::CreateHelloResponse(fbb, s.id, info, reply.outcome.pass_fd, o.read_lease_ttl_ms, o.write_lease_ttl_ms,
                                     o.max_keys, reader || admin));
}


void Dispatcher::reserve(Session& s, const wire::ReserveRequest* r, Reply& reply) {
  const uint32_t n = size_of(r->keys());
  if (n == 0) return reply.fail(Status(Code::kInvalidArgument, "reserve: no keys"));
  if (Status st = check_count("reserve", n); !st) return reply.fail(st);
  if (draining_)
    return reply.fail(Status(Code::kBusy, "reserve: this node is draining (cxlkv-admin drain): it takes no new pages; "
                                          "a cluster client places them on the other nodes"));
  if (partitions_[s.partition].draining)
    return reply.fail(Status(Code::kBusy, fmt::format("reserve: partition '{}' is being removed (cxlkv-admin "
                                                      "remove-partition): it takes no new pages; connect again once "
                                                      "it is gone", partitions_[s.partition].name)));
  const PageKey parent = r->parent() ? *reinterpret_cast<const PageKey*>(r->parent()) : PageKey{};
  auto lease = service(s).reserve(s.id, s.ns, parent, keys_of(r->keys()), n, placements_.data(), Clock::now());
  if (!lease) return reply.fail(lease.status());
  auto pages = reply.fbb.CreateVectorOfStructs(placements_.data(), n);
  reply.ok(wire::ResponseBody::ReserveResponse, wire::CreateReserveResponse(reply.fbb, *lease, pages));
}

void Dispatcher::commit(Session& s, const wire::CommitRequest* r, Reply& reply) {
  const auto* sums = r->checksums();
  const uint32_t n = sums ? sums->size() : 0;
  if (Status st = check_count("commit", n); !st) return reply.fail(st);
  // FlatBuffers vectors of scalars are little-endian and 8-byte aligned for ulong: read in place.
  auto committed = service(s).commit(s.id, r->lease(), sums ? sums->data() : nullptr, n, Clock::now());
  if (!committed) return reply.fail(committed.status());
  reply.ok(wire::ResponseBody::CommitResponse, wire::CreateCommitResponse(reply.fbb, *committed));
}

// Hot: one hash probe per key, placements into the scratch vector, one copy into the reply.
void Dispatcher::lookup(Session& s, const wire::LookupRequest* r, Reply& reply) {
  const uint32_t n = size_of(r->keys());
  if (Status st = check_count("lookup", n); !st) return reply.fail(st);
  auto found = service(s).lookup(s.id, s.ns, keys_of(r->keys()), n, placements_.data(), Clock::now());
  if (!found) return reply.fail(found.status());
  auto pages = reply.fbb.CreateVectorOfStructs(placements_.data(), found->hits);
  reply.ok(wire::ResponseBody::LookupResponse, wire::CreateLookupResponse(reply.fbb, found->lease, pages));
}

void Dispatcher::stats(const Session& s, Reply& reply) {
  PoolStats p;
  if (s.admin) {  // the whole daemon (an admin's own partition may have been removed since its Hello)
    for (const DispatchPartition& part : partitions_)
      if (part.service) p += part.service->stats();
  } else {
    p = service(s).stats();
  }
  reply.ok(wire::ResponseBody::StatsResponse,
           wire::CreateStatsResponse(reply.fbb, p.pages_committed, p.pages_reserved, p.slabs_total, p.slabs_free,
                                     p.read_leases, p.write_leases, p.lookup_hits, p.lookup_misses, p.evictions));
}

// The admin's view: every partition, its region, occupancy, leases and tenants.
void Dispatcher::partitions(Reply& reply) {
  flatbuffers::FlatBufferBuilder& fbb = reply.fbb;
  std::vector<flatbuffers::Offset<wire::PartitionStatus>> all;
  for (uint32_t i = 0; i < partitions_.size(); ++i) {
    const DispatchPartition& part = partitions_[i];
    if (!part.service) continue;  // removed
    const PoolStats p = part.service->stats();
    std::vector<std::string> bound;
    for (size_t t = 0; t < tenants_.size(); ++t)
      if (tenant_partition_[t] == i) bound.push_back(tenants_[t].name);
    const cxl::Region& region = part.service->region();
    auto name = fbb.CreateString(part.name);
    auto where = fbb.CreateString(region.describe());
    auto tenants = fbb.CreateVectorOfStrings(bound);
    auto metadata = fbb.CreateString(part.service->metadata().describe());
    all.push_back(wire::CreatePartitionStatus(fbb, name, where, region.size(), p.slabs_total, p.slabs_free,
                                              p.pages_committed, p.pages_reserved, p.read_leases, p.write_leases,
                                              tenants, metadata, part.draining));
  }
  reply.ok(wire::ResponseBody::PartitionsResponse, wire::CreatePartitionsResponse(fbb, fbb.CreateVector(all)));
}

// An admin starts or ends a drain, or asks; the answer counts what still holds the node (over all partitions).
void Dispatcher::drain(const wire::DrainRequest* r, Reply& reply) {
  if (!r->ask() && r->draining() != draining_) {
    draining_ = r->draining();
    spdlog::info("{}: reserves {}", draining_ ? "draining" : "drain ended", draining_ ? "refused, reads served" : "taken again");
    if (on_drain_) on_drain_(draining_);
  }
  PoolStats p;
  for (const DispatchPartition& part : partitions_)
    if (part.service) p += part.service->stats();
  reply.ok(wire::ResponseBody::DrainResponse,
           wire::CreateDrainResponse(reply.fbb, draining_, p.write_leases, p.read_leases, p.pages_committed));
}

// The session's committed pages from a slot on. Cold (an operator's move): it looks at a bounded
// run of slots per call so the I/O thread stays responsive on a large region.
void Dispatcher::list_pages(const Session& s, const wire::ListPagesRequest* r, Reply& reply) {
  constexpr uint64_t kSlotsPerCall = 1u << 16;
  const PrefixIndex& index = service(s).index();
  const uint64_t slots = index.slot_count();
  // At most max_keys, and what fits a frame (64 B a page) with room for the envelope.
  constexpr uint32_t kFitsFrame = (wire::kMaxFrameBytes - 4096) / sizeof(wire::ListedPage);
  const uint32_t max = std::min({r->max() == 0 ? service(s).options().max_keys : r->max(), service(s).options().max_keys,
                                 kFitsFrame});
  std::vector<wire::ListedPage> pages;
  uint64_t slot = std::min(r->from_slot(), slots);
  const uint64_t end = std::min(slots, slot + kSlotsPerCall);
  for (; slot < end && pages.size() < max; ++slot) {
    const PageMeta& m = index.page(uint32_t(slot));
    if (m.state != PageState::kCommitted || m.ns != s.ns) continue;
    pages.emplace_back(*reinterpret_cast<const wire::Key*>(&m.key), *reinterpret_cast<const wire::Key*>(&m.parent_key));
  }
  auto listed = reply.fbb.CreateVectorOfStructs(pages);
  reply.ok(wire::ResponseBody::ListPagesResponse, wire::CreateListPagesResponse(reply.fbb, listed, slot, slot >= slots));
}

uint32_t Dispatcher::add_partition(DispatchPartition partition) {
  partitions_.push_back(std::move(partition));
  return uint32_t(partitions_.size() - 1);
}

uint32_t Dispatcher::add_tenant(Tenant tenant, uint32_t partition) {
  tenants_.push_back(std::move(tenant));
  tenant_partition_.push_back(partition);
  return uint32_t(tenants_.size() - 1);
}

std::vector<uint32_t> Dispatcher::move_tenants(uint32_t from, uint32_t to) {
  std::vector<uint32_t> moved;
  for (uint32_t t = 0; t < tenant_partition_.size(); ++t)
    if (tenant_partition_[t] == from) tenant_partition_[t] = to, moved.push_back(t);
  return moved;
}

// Cold (an operator's act): the configuration file read again, what is new in it served.
void Dispatcher::reload(Reply& reply) {
  if (!control_) return reply.fail(Status(Code::kUnavailable, "reload: this daemon cannot change its partitions online"));
  auto done = control_->reload();
  if (!done) return reply.fail(done.status());
  flatbuffers::FlatBufferBuilder& fbb = reply.fbb;
  auto partitions = fbb.CreateVectorOfStrings(done->partitions_added);
  auto tenants = fbb.CreateVectorOfStrings(done->tenants_added);
  auto not_applied = fbb.CreateVectorOfStrings(done->not_applied);
  reply.ok(wire::ResponseBody::ReloadResponse, wire::CreateReloadResponse(fbb, partitions, tenants, not_applied));
}

// Cold: a partition drained, its pages copied into another, its tenants rebound and it closed.
void Dispatcher::remove_partition(const wire::RemovePartitionRequest* r, Reply& reply) {
  if (!control_)
    return reply.fail(Status(Code::kUnavailable, "remove-partition: this daemon cannot change its partitions online"));
  auto done = control_->remove_partition(r->name() ? r->name()->str() : "", r->into() ? r->into()->str() : "");
  if (!done) return reply.fail(done.status());
  flatbuffers::FlatBufferBuilder& fbb = reply.fbb;
  auto moved = fbb.CreateVectorOfStrings(done->tenants_moved);
  reply.ok(wire::ResponseBody::RemovePartitionResponse,
           wire::CreateRemovePartitionResponse(fbb, done->removed, done->write_leases, done->pages_copied,
                                               done->pages_already_there, done->bytes_copied, done->sessions_closed,
                                               moved, done->copy_seconds));
}

}  // namespace cxlkv::pool
