// Session: one authenticated control connection plus the mapped region it names. Owns the op
// encoding and decoding of docs/protocol.md, the checks on what the daemon answers (placements
// inside the region), and coherence rule 2 for every page a lease names (cxl::HostGenerations:
// the host's record of the slab generations its readers made safe).
// Shared (shared_ptr) by the Client and its leases; every op takes mu_. Internal to client/.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "cxlkv/admin.h"
#include "cxlkv/client.h"
#include "cxlkv_wire_generated.h"
#include "connection.h"
#include "lease_factory.h"
#include "host_generations.h"
#include "region.h"
#include "slab_geometry.h"

namespace cxlkv::detail {

// What reserve and lookup answer: a lease id and one placement per page.
struct LeaseReply {
  uint64_t lease = 0;
  std::vector<Placement> pages;
};

// One answer of ListPages: committed pages of the session's namespace (key, parent).
struct ListedPages {
  std::vector<std::pair<PageKey, PageKey>> pages;
  uint64_t next_slot = 0;
  bool done = false;
};

class Session {
 public:
  // Connects, says hello, maps and checks the region (an admin session maps nothing).
  static Result<std::shared_ptr<Session>> open(const ClientOptions& options);

  const SessionInfo& info() const { return info_; }
  const Layout& layout() const { return layout_; }
  const PoolView& view() const { return view_; }
  const SlabGeometry& geometry() const { return geometry_; }

  Result<LeaseReply> reserve(const PageKey& parent, std::span<const PageKey> keys);
  Result<uint32_t> commit(uint64_t lease, std::span<const uint64_t> checksums);
  Status abort(uint64_t lease);
  // Also invalidates the lines of each slab this host has not made safe at its generation
  // (coherence rule 2, first sight included: cxl/host_generations.h).
  Result<LeaseReply> lookup(std::span<const PageKey> keys);
  // lookup in two halves, so one thread can have lookups in flight on several nodes at once:
  // begin_lookup sends the request and keeps the session's lock; finish_lookup (which must follow
  // a successful begin_lookup, with the same keys) reads the reply and releases it.
  Status begin_lookup(std::span<const PageKey> keys);
  Result<LeaseReply> finish_lookup(std::span<const PageKey> keys);
  Result<uint32_t> renew(uint64_t lease);
  Status release(uint64_t lease);
  Result<uint32_t> remove(std::span<const PageKey> keys);
  Result<PoolStats> stats();
  // Whether the daemon still serves this session: its connection open at both ends (a daemon
  // closes the sessions of a partition it removes; the cluster router then connects again).
  bool usable() {
    std::lock_guard lock(mu_);
    return conn_.usable();
  }
  // Admin sessions only (options.admin): every partition the daemon serves.
  Result<std::vector<PartitionStatus>> partitions();
  // The namespace's committed pages from slot `from_slot` on (cold: moving a draining node's pages).
  Result<ListedPages> list_pages(uint64_t from_slot, uint32_t max);
  // Admin sessions only: starts (true) or ends a drain of the node, or with `ask` only asks;
  // what still holds it.
  Result<DrainStatus> drain(bool draining, bool ask = false);
  // Admin sessions only: AdminClient::reload and remove_partition.
  Result<ReloadReport> reload();
  Result<PartitionRemoval> remove_partition(const std::string& name, const std::string& into);

 private:
  Session() = default;
  Status hello(const ClientOptions& options);
  Status map_region(const wire::RegionInfo* info, int fd, const ClientOptions& options);
  // Sends the request built in fbb_ (body of `type`) and returns the verified response whose
  // body is `expect`; a non-zero code becomes that Status. mu_ held; valid until the next call.
  Result<const wire::Response*> call(wire::RequestBody type, flatbuffers::Offset<void> body, wire::ResponseBody expect,
                                     const char* op, int* received_fd = nullptr);
  // call's halves: send the request (its id is kept in pending_id_), then read and check the reply.
  Status send_request(wire::RequestBody type, flatbuffers::Offset<void> body, const char* op);
  Result<const wire::Response*> read_response(wire::ResponseBody expect, const char* op, int* received_fd = nullptr);
  // The placements of a verified LookupResponse, checked; coherence rule 2 applied.
  Result<LeaseReply> take_lookup(const wire::Response* r, size_t keys);
  flatbuffers::Offset<flatbuffers::Vector<const wire::Key*>> key_vector(std::span<const PageKey> keys);
  Status check_key_count(const char* op, size_t n) const;
  // Copies and checks placements (slab inside the region, offset matches, position < E). mu_ held.
  Result<std::vector<Placement>> take_placements(const flatbuffers::Vector<const wire::Placement*>* pages,
                                                 size_t expected_max, const char* op);
  // Coherence rule 2 for the slotted pages of a lookup (readers) or a reserve (writers).
  void before_reading(const std::vector<Placement>& pages);
  void before_writing(const std::vector<Placement>& pages);

  std::mutex mu_;  // serializes the control connection and the fields below it
  Connection conn_;
  flatbuffers::FlatBufferBuilder fbb_{1 << 16};
  std::vector<uint8_t> rx_;
  uint64_t next_id_ = 1;
  uint64_t pending_id_ = 0;  // the request whose response read_response reads
  std::unique_ptr<cxl::HostGenerations> generations_;  // this host's record for the region

  // Fixed after open()
  std::unique_ptr<cxl::Region> region_;
  SlabGeometry geometry_;
  Layout layout_;
  PoolView view_;
  SessionInfo info_;
};

}  // namespace cxlkv::detail
