// Fuzz target: the daemon's control plane as a connection sees it. An input is the byte stream
// of one connection: frames (header checked as the server does, then the body) handed to the real
// Dispatcher over a real PoolService and region, until a bad header, a truncated frame or a reply
// that closes. Every lease the input took is ended afterwards, so inputs stay independent in cost;
// committed pages stay and fill the pool, so eviction runs too.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "dispatch.h"
#include "frame.h"
#include "fuzz_pool.h"
#include "metrics.h"
#include "pool_service.h"

using namespace cxlkv;
using namespace cxlkv::pool;

namespace {

struct World {
  fuzz::FuzzRegion region;
  std::unique_ptr<PoolService> service;
  Metrics metrics;
  std::unique_ptr<Dispatcher> dispatcher;
};
World* world = nullptr;

// Seeds: frames as a client sends them.
std::vector<uint8_t> frame(const flatbuffers::FlatBufferBuilder& fbb) {
  const wire::FrameHeader h = wire::make_frame_header(static_cast<uint32_t>(fbb.GetSize()));
  std::vector<uint8_t> out(sizeof h + fbb.GetSize());
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, fbb.GetBufferPointer(), fbb.GetSize());
  return out;
}
template <typename Build>
std::vector<uint8_t> request(uint64_t id, wire::RequestBody type, Build build) {
  flatbuffers::FlatBufferBuilder fbb;
  const flatbuffers::Offset<void> body = build(fbb);
  fbb.Finish(wire::CreateRequest(fbb, id, type, body));
  return frame(fbb);
}
std::vector<wire::Key> keys(uint8_t chain, int n) {
  std::vector<wire::Key> k(n);
  for (int i = 0; i < n; ++i) {
    uint8_t b[32] = {chain, uint8_t(i)};
    std::memcpy(&k[i], b, sizeof b);
  }
  return k;
}
std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void write_seeds() {
  const auto hello = request(1, wire::RequestBody::HelloRequest, [](auto& fbb) {
    return wire::CreateHelloRequestDirect(fbb, wire::kProtocolVersion, "t", "x", "m", true).Union();
  });
  const auto k = keys(1, 3);
  const wire::Key parent;
  const auto reserve = request(2, wire::RequestBody::ReserveRequest,
                               [&](auto& fbb) { return wire::CreateReserveRequestDirect(fbb, &parent, &k).Union(); });
  // The first write lease of a fresh daemon is id 1 << 20 | 0 (lease.h: serial << 20 | index).
  const std::vector<uint64_t> sums(3, 0);
  const auto commit = request(3, wire::RequestBody::CommitRequest, [&](auto& fbb) {
    return wire::CreateCommitRequestDirect(fbb, uint64_t{1} << 20, &sums).Union();
  });
  const auto lookup = request(4, wire::RequestBody::LookupRequest,
                              [&](auto& fbb) { return wire::CreateLookupRequestDirect(fbb, &k).Union(); });
  const auto renew = request(5, wire::RequestBody::RenewRequest,
                             [](auto& fbb) { return wire::CreateRenewRequest(fbb, (uint64_t{2} << 20) | 1).Union(); });
  const auto release = request(6, wire::RequestBody::ReleaseRequest,
                               [](auto& fbb) { return wire::CreateReleaseRequest(fbb, (uint64_t{2} << 20) | 1).Union(); });
  const auto abort = request(7, wire::RequestBody::AbortRequest,
                             [](auto& fbb) { return wire::CreateAbortRequest(fbb, uint64_t{1} << 20).Union(); });
  const auto remove = request(8, wire::RequestBody::RemoveRequest,
                              [&](auto& fbb) { return wire::CreateRemoveRequestDirect(fbb, &k).Union(); });
  const auto stats = request(9, wire::RequestBody::StatsRequest,
                             [](auto& fbb) { return wire::CreateStatsRequest(fbb).Union(); });
  const auto hello_reader = request(1, wire::RequestBody::HelloRequest, [](auto& fbb) {
    return wire::CreateHelloRequestDirect(fbb, wire::kProtocolVersion, "t", "x", "m", true, wire::Role::Reader).Union();
  });
  const auto list_first = request(10, wire::RequestBody::ListPagesRequest,
                                  [](auto& fbb) { return wire::CreateListPagesRequest(fbb, 0, 2).Union(); });
  const auto list_past = request(11, wire::RequestBody::ListPagesRequest,
                                 [](auto& fbb) { return wire::CreateListPagesRequest(fbb, ~uint64_t{0}, 0).Union(); });
  const auto drain = request(12, wire::RequestBody::DrainRequest,
                             [](auto& fbb) { return wire::CreateDrainRequest(fbb, true).Union(); });
  const auto hello_admin = request(1, wire::RequestBody::HelloRequest, [](auto& fbb) {
    return wire::CreateHelloRequestDirect(fbb, wire::kProtocolVersion, "ops", "y", "m", false, wire::Role::Admin).Union();
  });
  const auto reload = request(13, wire::RequestBody::ReloadRequest,
                              [](auto& fbb) { return wire::CreateReloadRequest(fbb).Union(); });
  const auto remove_partition = request(14, wire::RequestBody::RemovePartitionRequest, [](auto& fbb) {
    return wire::CreateRemovePartitionRequestDirect(fbb, "main", "b").Union();
  });
  fuzz::maybe_write_seeds({{"hello", hello},
                           {"admin-partitions", cat({hello_admin, reload, remove_partition, stats, drain})},
                           {"tenant-tries-admin", cat({hello, reload, remove_partition})},
                           {"list-pages", cat({hello, reserve, commit, list_first, list_past, drain})},
                           {"reader-tries-to-write", cat({hello_reader, reserve, lookup, remove})},
                           {"stats-before-hello", stats},
                           {"write-and-read", cat({hello, reserve, commit, lookup, renew, release, remove})},
                           {"reserve-abort", cat({hello, reserve, abort, stats})},
                           {"lookup-miss", cat({hello, lookup, stats})}});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  write_seeds();
  world = new World{fuzz::make_region("dispatch", 8 << 20, 2), nullptr, {}, nullptr};
  PoolOptions options;
  options.max_leases = 4096;
  auto service = PoolService::open(*world->region.region, *world->region.allocator, options);
  if (!service) std::abort();
  world->service = std::move(*service);
  world->dispatcher = std::make_unique<Dispatcher>(std::vector<DispatchPartition>{{"main", world->service.get()}},
                                                   std::vector<Tenant>{{"t", "x", 0.5}, {"ops", "y", 0, true, true, true}},
                                                   std::vector<uint32_t>{0, 0},
                                                   world->metrics, 8);
  world->service->set_tenant_share(0, world->service->stats().slabs_total / 2);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Session session;
  session.unix_socket = true;
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> body;
  size_t at = 0;
  while (size - at >= wire::kFrameHeaderBytes) {
    auto h = wire::check_frame_header(data + at);
    if (!h) break;  // the server closes the connection
    at += wire::kFrameHeaderBytes;
    if (size - at < h->length) break;  // the peer went away mid-frame
    body.assign(data + at, data + at + h->length);  // the server's own buffer, aligned as it is there
    at += h->length;
    if (world->dispatcher->handle(session, body.data(), body.size(), fbb).close) break;
  }
  if (session.id != 0) world->dispatcher->end_session(session);
  world->service->reap(Clock::now() + std::chrono::hours(24));
  return 0;
}
