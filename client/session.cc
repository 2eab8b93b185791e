// Session (session.h): hello, region mapping, op encoding/decoding and coherence rule 2.
#include "session.h"

#include <unistd.h>

#include <cstring>
#include <fmt/format.h>

#include "cacheline.h"
#include "frame.h"
#include "slab_allocator.h"

namespace cxlkv::detail {

namespace {

std::string hex_bytes(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

bool slotted(const Placement& p) { return (p.flags & (kPlacementCached | kPlacementInFlight)) == 0; }

}  // namespace

Result<std::shared_ptr<Session>> Session::open(const ClientOptions& options) {
  auto endpoint = parse_endpoint(options.endpoint);
  if (!endpoint) return endpoint.status();
  std::shared_ptr<Session> s(new Session());
  if (Status st = s->conn_.open(*endpoint, options.io_timeout_ms, options.tls_ca_file); !st) return st;
  if (Status st = s->hello(options); !st) return st;
  return s;
}

Result<const wire::Response*> Session::call(wire::RequestBody type, flatbuffers::Offset<void> body,
                                            wire::ResponseBody expect, const char* op, int* received_fd) {
  if (Status st = send_request(type, body, op); !st) return st;
  return read_response(expect, op, received_fd);
}

Status Session::send_request(wire::RequestBody type, flatbuffers::Offset<void> body, const char* op) {
  pending_id_ = next_id_++;
  fbb_.Finish(wire::CreateRequest(fbb_, pending_id_, type, body));
  if (fbb_.GetSize() > wire::kMaxFrameBytes)
    return Status(Code::kInvalidArgument, fmt::format("{}: request of {} bytes over the {}-byte frame limit", op,
                                                      fbb_.GetSize(), wire::kMaxFrameBytes));
  if (Status st = conn_.send(fbb_.GetBufferPointer(), fbb_.GetSize()); !st)
    return Status(st.code(), fmt::format("{}: {}", op, st.message()));
  return Status::ok();
}

Result<const wire::Response*> Session::read_response(wire::ResponseBody expect, const char* op, int* received_fd) {
  const uint64_t id = pending_id_;
  if (Status st = conn_.receive(rx_, received_fd); !st) return Status(st.code(), fmt::format("{}: {}", op, st.message()));
  auto verified = wire::verify_response(rx_.data(), rx_.size());
  if (!verified) return Status(Code::kProtocol, fmt::format("{}: {}", op, verified.status().message()));
  const wire::Response* r = *verified;
  if (r->id() != id) return Status(Code::kProtocol, fmt::format("{}: response id {} to request id {}", op, r->id(), id));
  if (r->code() != 0) {
    const Code code = r->code() <= uint8_t(Code::kExpired) ? Code(r->code()) : Code::kProtocol;
    std::string message = r->message() ? r->message()->str() : fmt::format("{} failed with no message", op);
    return Status(code, std::move(message));
  }
  if (r->body_type() != expect || r->body() == nullptr)
    return Status(Code::kProtocol, fmt::format("{}: response body {}, expected {}", op,
                                               wire::EnumNameResponseBody(r->body_type()), wire::EnumNameResponseBody(expect)));
  return r;
}

Status Session::hello(const ClientOptions& options) {
  std::lock_guard lock(mu_);
  info_.namespace_id = namespace_id(options.tenant, options.model);
  fbb_.Clear();
  const bool want_fd = options.want_fd && conn_.is_unix() && !options.admin;
  const wire::Role role = options.admin ? wire::Role::Admin : options.read_only ? wire::Role::Reader : wire::Role::Writer;
  auto body = wire::CreateHelloRequestDirect(fbb_, wire::kProtocolVersion, options.tenant.c_str(), options.token.c_str(),
                                             options.model.c_str(), want_fd, role);
  int fd = -1;
  auto r = call(wire::RequestBody::HelloRequest, body.Union(), wire::ResponseBody::HelloResponse, "hello", &fd);
  if (!r) {
    if (fd >= 0) ::close(fd);
    return r.status();
  }
  const wire::HelloResponse* h = (*r)->body_as_HelloResponse();
  info_.session = h->session();
  info_.read_lease_ttl_ms = h->read_lease_ttl_ms();
  info_.write_lease_ttl_ms = h->write_lease_ttl_ms();
  info_.max_keys = h->max_keys() ? std::min(h->max_keys(), wire::kMaxKeysPerRequest) : wire::kMaxKeysPerRequest;
  if (h->region() == nullptr) {
    if (fd >= 0) ::close(fd);
    return Status(Code::kProtocol, "hello: the response carries no RegionInfo");
  }
  if (!h->fd_attached() && fd >= 0) {
    ::close(fd);
    fd = -1;
  }
  if (h->fd_attached() && fd < 0 && want_fd)
    return Status(Code::kProtocol, "hello: fd_attached is set but no fd came with the reply");
  if (options.admin) {  // maps nothing
    if (fd >= 0) ::close(fd);
    return Status::ok();
  }
  return map_region(h->region(), fd, options);
}

Status Session::map_region(const wire::RegionInfo* info, int fd, const ClientOptions& options) {
  auto fail = [&](Status st) {
    if (fd >= 0) ::close(fd);
    return st;
  };
  if (info->uuid() == nullptr || info->uuid()->size() != 16)
    return fail(Status(Code::kProtocol, fmt::format("hello: RegionInfo uuid of {} bytes, expected 16",
                                                    info->uuid() ? info->uuid()->size() : 0)));
  if (info->layout() == nullptr || info->layout()->size() != sizeof(LayoutRecord))
    return fail(Status(Code::kProtocol, fmt::format("hello: RegionInfo layout of {} bytes, expected {}",
                                                    info->layout() ? info->layout()->size() : 0, sizeof(LayoutRecord))));
  LayoutRecord record;
  std::memcpy(&record, info->layout()->data(), sizeof record);
  const Layout expected(record);
  if (Status st = expected.validate(); !st)
    return fail(Status(Code::kProtocol, "hello: RegionInfo layout is invalid: " + st.message()));
  const std::string daemon_path = info->path() ? info->path()->str() : "";
  const std::string backend = info->backend() ? info->backend()->str() : "";

  std::unique_ptr<cxl::Region> region;
  if (fd >= 0) {
    const auto mode = options.read_only ? cxl::OpenMode::kReadOnly : cxl::OpenMode::kReadWrite;
    auto r = cxl::Region::from_fd(fd, daemon_path, &expected, mode);  // owns fd from here on
    fd = -1;
    if (!r) return Status(r.status().code(), "map region by the daemon's fd: " + r.status().message());
    region = std::move(*r);
    info_.mapped_by_fd = true;
  } else {
    auto parsed = cxl::parse_backend(backend);
    if (!parsed) return Status(Code::kProtocol, "hello: RegionInfo backend: " + parsed.status().message());
    cxl::RegionSpec spec;
    spec.backend = *parsed;
    spec.path = options.region_path.empty() ? daemon_path : options.region_path;
    auto r = cxl::Region::open(spec, &expected, options.read_only ? cxl::OpenMode::kReadOnly : cxl::OpenMode::kReadWrite);
    if (!r) return Status(r.status().code(), "map region by path (" + backend + ":" + spec.path + "): " + r.status().message());
    region = std::move(*r);
  }

  const cxl::RegionHeader& h = region->header();
  const std::string name = region->describe();
  if (std::memcmp(h.uuid, info->uuid()->data(), 16) != 0)
    return Status(Code::kMismatch, fmt::format("region {}: uuid {}, the daemon's region is {}", name, hex_bytes(h.uuid, 16),
                                               hex_bytes(info->uuid()->data(), 16)));
  if (std::memcmp(&h.layout, &record, sizeof record) != 0)
    return Status(Code::kMismatch, fmt::format("region {}: layout {}, the daemon serves {}", name, Layout(h.layout).describe(),
                                               expected.describe()));
  if (h.slab_pages != info->slab_pages())
    return Status(Code::kMismatch, fmt::format("region {}: slab_pages {}, the daemon says {}", name, h.slab_pages, info->slab_pages()));
  if (info->size() != 0 && region->size() != info->size())
    return Status(Code::kMismatch, fmt::format("region {}: {} bytes, the daemon says {}", name, region->size(), info->size()));

  auto geometry = SlabAllocator::read_geometry(*region);
  if (!geometry) return geometry.status();
  auto view = make_pool_view(region->base(), region->size(), *geometry, region->layout());
  if (!view) return Status(view.status().code(), fmt::format("region {}: {}", name, view.status().message()));
  geometry_ = *geometry;
  layout_ = region->layout();
  view_ = *view;
  info_.region = name;
  uint8_t uuid[16];
  std::memcpy(uuid, h.uuid, sizeof uuid);
  // A device shared by hosts may hold lines other hosts cached under an earlier format.
  const auto first = region->spec().backend == cxl::Backend::kDevdax ? cxl::FirstGeneration::kInvalidated
                                                                     : cxl::FirstGeneration::kTrusted;
  generations_ = cxl::HostGenerations::open(uuid, geometry_.slab_count, first);
  info_.coherence_record = generations_->shared() ? cxl::HostGenerations::record_name(uuid)
                                                  : "private: " + generations_->why();
  // Page faults at connect rather than on the data path; an older kernel just skips this.
  if (options.populate) info_.populated = region->populate();
  region_ = std::move(region);
  return Status::ok();
}

flatbuffers::Offset<flatbuffers::Vector<const wire::Key*>> Session::key_vector(std::span<const PageKey> keys) {
  static_assert(sizeof(wire::Key) == sizeof(PageKey));
  wire::Key* out = nullptr;
  auto offset = fbb_.CreateUninitializedVectorOfStructs<wire::Key>(keys.size(), &out);
  if (!keys.empty()) std::memcpy(static_cast<void*>(out), keys.data(), keys.size_bytes());
  return offset;
}

Status Session::check_key_count(const char* op, size_t n) const {
  if (n == 0) return Status(Code::kInvalidArgument, fmt::format("{}: no keys", op));
  if (n > info_.max_keys) return Status(Code::kInvalidArgument, fmt::format("{}: {} keys, at most {}", op, n, info_.max_keys));
  return Status::ok();
}

Result<std::vector<Placement>> Session::take_placements(const flatbuffers::Vector<const wire::Placement*>* pages,
                                                        size_t expected_max, const char* op) {
  std::vector<Placement> out;
  if (pages == nullptr) return out;
  if (pages->size() > expected_max)
    return Status(Code::kProtocol, fmt::format("{}: {} placements for {} keys", op, pages->size(), expected_max));
  out.reserve(pages->size());
  for (flatbuffers::uoffset_t i = 0; i < pages->size(); ++i) {
    const wire::Placement* w = pages->Get(i);
    Placement p{w->slab_offset(), w->generation(), w->slab(), w->position(), w->flags()};
    if (slotted(p) && (p.slab >= geometry_.slab_count || p.slab_offset != geometry_.slab_offset(p.slab) ||
                       p.position >= geometry_.slab_pages))
      return Status(Code::kProtocol, fmt::format("{}: page {} placed at slab {} offset {} position {}, outside the region's "
                                                 "{} slabs of {} pages",
                                                 op, i, p.slab, p.slab_offset, p.position, geometry_.slab_count, geometry_.slab_pages));
    out.push_back(p);
  }
  return out;
}

void Session::before_reading(const std::vector<Placement>& pages) {
  for (const Placement& p : pages)
    if (slotted(p)) generations_->before_read(p.slab, p.generation, view_.base + p.slab_offset, geometry_.slab_bytes);
}

void Session::before_writing(const std::vector<Placement>& pages) {
  for (const Placement& p : pages)
    if (slotted(p)) generations_->before_write(p.slab, p.generation, view_.base + p.slab_offset, geometry_.slab_bytes);
}

Result<LeaseReply> Session::reserve(const PageKey& parent, std::span<const PageKey> keys) {
  if (Status st = check_key_count("reserve", keys.size()); !st) return st;
  std::lock_guard lock(mu_);
  fbb_.Clear();
  wire::Key parent_key;
  std::memcpy(static_cast<void*>(&parent_key), parent.bytes.data(), kPageKeyBytes);
  auto key_offsets = key_vector(keys);
  auto body = wire::CreateReserveRequest(fbb_, &parent_key, key_offsets);
  auto r = call(wire::RequestBody::ReserveRequest, body.Union(), wire::ResponseBody::ReserveResponse, "reserve");
  if (!r) return r.status();
  const wire::ReserveResponse* rr = (*r)->body_as_ReserveResponse();
  auto pages = take_placements(rr->pages(), keys.size(), "reserve");
  if (!pages) return pages.status();
  if (pages->size() != keys.size())
    return Status(Code::kProtocol, fmt::format("reserve: {} placements for {} keys", pages->size(), keys.size()));
  before_writing(*pages);  // lines this host's readers hold of an older generation go first
  return LeaseReply{rr->lease(), std::move(*pages)};
}

Result<uint32_t> Session::commit(uint64_t lease, std::span<const uint64_t> checksums) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto sums = fbb_.CreateVector(checksums.data(), checksums.size());
  auto body = wire::CreateCommitRequest(fbb_, lease, sums);
  auto r = call(wire::RequestBody::CommitRequest, body.Union(), wire::ResponseBody::CommitResponse, "commit");
  if (!r) return r.status();
  return (*r)->body_as_CommitResponse()->committed();
}

Status Session::abort(uint64_t lease) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateAbortRequest(fbb_, lease);
  auto r = call(wire::RequestBody::AbortRequest, body.Union(), wire::ResponseBody::Empty, "abort");
  return r ? Status::ok() : r.status();
}

Result<LeaseReply> Session::lookup(std::span<const PageKey> keys) {
  if (keys.empty()) return LeaseReply{};
  if (Status st = check_key_count("lookup", keys.size()); !st) return st;
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto key_offsets = key_vector(keys);
  auto body = wire::CreateLookupRequest(fbb_, key_offsets);
  auto r = call(wire::RequestBody::LookupRequest, body.Union(), wire::ResponseBody::LookupResponse, "lookup");
  if (!r) return r.status();
  return take_lookup(*r, keys.size());
}

Status Session::begin_lookup(std::span<const PageKey> keys) {
  if (keys.empty()) return Status(Code::kInvalidArgument, "lookup: no keys");
  if (Status st = check_key_count("lookup", keys.size()); !st) return st;
  std::unique_lock lock(mu_);  // handed to finish_lookup on success; released here on any failure
  fbb_.Clear();
  auto key_offsets = key_vector(keys);
  auto body = wire::CreateLookupRequest(fbb_, key_offsets);
  if (Status st = send_request(wire::RequestBody::LookupRequest, body.Union(), "lookup"); !st) return st;
  lock.release();
  return Status::ok();
}

Result<LeaseReply> Session::finish_lookup(std::span<const PageKey> keys) {
  std::lock_guard lock(mu_, std::adopt_lock);  // taken by begin_lookup
  auto r = read_response(wire::ResponseBody::LookupResponse, "lookup");
  if (!r) return r.status();
  return take_lookup(*r, keys.size());
}

Result<LeaseReply> Session::take_lookup(const wire::Response* r, size_t keys) {
  const wire::LookupResponse* lr = r->body_as_LookupResponse();
  auto pages = take_placements(lr->pages(), keys, "lookup");
  if (!pages) return pages.status();
  for (size_t i = 0; i < pages->size(); ++i)
    if (!slotted((*pages)[i]))
      return Status(Code::kProtocol, fmt::format("lookup: page {} flagged {:#x}; lookups return committed pages only", i,
                                                 (*pages)[i].flags));
  if (lr->lease() == 0 && !pages->empty())
    return Status(Code::kProtocol, fmt::format("lookup: {} pages without a lease", pages->size()));
  before_reading(*pages);
  return LeaseReply{lr->lease(), std::move(*pages)};
}

Result<uint32_t> Session::renew(uint64_t lease) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateRenewRequest(fbb_, lease);
  auto r = call(wire::RequestBody::RenewRequest, body.Union(), wire::ResponseBody::RenewResponse, "renew");
  if (!r) return r.status();
  return (*r)->body_as_RenewResponse()->ttl_ms();
}

Status Session::release(uint64_t lease) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateReleaseRequest(fbb_, lease);
  auto r = call(wire::RequestBody::ReleaseRequest, body.Union(), wire::ResponseBody::Empty, "release");
  return r ? Status::ok() : r.status();
}

Result<uint32_t> Session::remove(std::span<const PageKey> keys) {
  if (Status st = check_key_count("remove", keys.size()); !st) return st;
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto key_offsets = key_vector(keys);
  auto body = wire::CreateRemoveRequest(fbb_, key_offsets);
  auto r = call(wire::RequestBody::RemoveRequest, body.Union(), wire::ResponseBody::RemoveResponse, "remove");
  if (!r) return r.status();
  return (*r)->body_as_RemoveResponse()->removed();
}

Result<PoolStats> Session::stats() {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateStatsRequest(fbb_);
  auto r = call(wire::RequestBody::StatsRequest, body.Union(), wire::ResponseBody::StatsResponse, "stats");
  if (!r) return r.status();
  const wire::StatsResponse* s = (*r)->body_as_StatsResponse();
  PoolStats out;
  out.pages_committed = s->pages_committed();
  out.pages_reserved = s->pages_reserved();
  out.slabs_total = s->slabs_total();
  out.slabs_free = s->slabs_free();
  out.read_leases = s->read_leases();
  out.write_leases = s->write_leases();
  out.lookup_hits = s->lookup_hits();
  out.lookup_misses = s->lookup_misses();
  out.evictions = s->evictions();
  return out;
}

Result<std::vector<PartitionStatus>> Session::partitions() {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreatePartitionsRequest(fbb_);
  auto r = call(wire::RequestBody::PartitionsRequest, body.Union(), wire::ResponseBody::PartitionsResponse, "partitions");
  if (!r) return r.status();
  std::vector<PartitionStatus> out;
  const auto* all = (*r)->body_as_PartitionsResponse()->partitions();
  if (all == nullptr) return out;
  for (const wire::PartitionStatus* p : *all) {
    PartitionStatus q;
    q.name = p->name() ? p->name()->str() : "";
    q.region = p->region() ? p->region()->str() : "";
    q.metadata = p->metadata() ? p->metadata()->str() : "";
    q.region_bytes = p->region_bytes();
    q.slabs_total = p->slabs_total(), q.slabs_free = p->slabs_free();
    q.pages_committed = p->pages_committed(), q.pages_reserved = p->pages_reserved();
    q.read_leases = p->read_leases(), q.write_leases = p->write_leases();
    q.draining = p->draining();
    if (p->tenants())
      for (const flatbuffers::String* t : *p->tenants()) q.tenants.push_back(t->str());
    out.push_back(std::move(q));
  }
  return out;
}

Result<DrainStatus> Session::drain(bool draining, bool ask) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateDrainRequest(fbb_, draining, ask);
  auto r = call(wire::RequestBody::DrainRequest, body.Union(), wire::ResponseBody::DrainResponse, "drain");
  if (!r) return r.status();
  const wire::DrainResponse* d = (*r)->body_as_DrainResponse();
  return DrainStatus{d->draining(), d->write_leases(), d->read_leases(), d->pages_committed()};
}

namespace {
std::vector<std::string> strings_of(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (v)
    for (const flatbuffers::String* s : *v) out.push_back(s->str());
  return out;
}
}  // namespace

Result<ReloadReport> Session::reload() {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateReloadRequest(fbb_);
  auto r = call(wire::RequestBody::ReloadRequest, body.Union(), wire::ResponseBody::ReloadResponse, "reload");
  if (!r) return r.status();
  const wire::ReloadResponse* d = (*r)->body_as_ReloadResponse();
  return ReloadReport{strings_of(d->partitions_added()), strings_of(d->tenants_added()), strings_of(d->not_applied())};
}

Result<PartitionRemoval> Session::remove_partition(const std::string& name, const std::string& into) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateRemovePartitionRequestDirect(fbb_, name.c_str(), into.c_str());
  auto r = call(wire::RequestBody::RemovePartitionRequest, body.Union(), wire::ResponseBody::RemovePartitionResponse,
                "remove_partition");
  if (!r) return r.status();
  const wire::RemovePartitionResponse* d = (*r)->body_as_RemovePartitionResponse();
  PartitionRemoval out;
  out.removed = d->removed();
  out.write_leases = d->write_leases();
  out.pages_copied = d->pages_copied();
  out.pages_already_there = d->pages_already_there();
  out.bytes_copied = d->bytes_copied();
  out.sessions_closed = d->sessions_closed();
  out.tenants_moved = strings_of(d->tenants_moved());
  out.copy_seconds = d->copy_seconds();
  return out;
}

Result<ListedPages> Session::list_pages(uint64_t from_slot, uint32_t max) {
  std::lock_guard lock(mu_);
  fbb_.Clear();
  auto body = wire::CreateListPagesRequest(fbb_, from_slot, max);
  auto r = call(wire::RequestBody::ListPagesRequest, body.Union(), wire::ResponseBody::ListPagesResponse, "list_pages");
  if (!r) return r.status();
  const wire::ListPagesResponse* l = (*r)->body_as_ListPagesResponse();
  ListedPages out;
  out.next_slot = l->next_slot();
  out.done = l->done();
  if (l->pages())
    for (const wire::ListedPage* p : *l->pages())
      out.pages.emplace_back(*reinterpret_cast<const PageKey*>(&p->key()), *reinterpret_cast<const PageKey*>(&p->parent()));
  return out;
}

}  // namespace cxlkv::detail
