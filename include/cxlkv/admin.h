// AdminClient: a session of the admin role with one daemon. It maps no region and moves no pages:
// it asks the daemon what it serves (its partitions, their occupancy and tenants, the totals),
// drains the node (no new pages placed on it) or ends the drain, and adds (reload) or removes
// partitions while the daemon serves.
// The tenant must be configured with the admin role (`roles = ["admin"]`). cxlkv-admin and
// operators' tools call it; implemented by client/admin.cc over the client's session.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/client.h"  // ClientOptions, PoolStats
#include "cxlkv/status.h"

namespace cxlkv {

namespace detail {
class Session;
}

// One partition the daemon serves (docs/protocol.md, Partitions).
struct PartitionStatus {
  std::string name;
  std::string region;  // "<backend>:<path>" ("numa:<path>@node<N>")
  uint64_t region_bytes = 0;
  uint64_t slabs_total = 0, slabs_free = 0;
  uint64_t pages_committed = 0, pages_reserved = 0;
  uint64_t read_leases = 0, write_leases = 0;
  std::vector<std::string> tenants;  // bound to it
  std::string metadata;              // its metadata region (page records), "<backend>:<path>"
  bool draining = false;             // being removed (remove_partition): reserves refused
};

// What reload() did (docs/cluster.md, "Partitions added and removed online").
struct ReloadReport {
  std::vector<std::string> partitions_added, tenants_added;
  std::vector<std::string> not_applied;  // changes to what is served: applied at the next start
};

// A partition removal: done, or under way (waiting for its write leases, or copying: ask again).
struct PartitionRemoval {
  bool removed = false;
  uint64_t write_leases = 0;
  uint64_t pages_copied = 0, pages_already_there = 0, bytes_copied = 0;
  uint64_t sessions_closed = 0;
  std::vector<std::string> tenants_moved;  // bound to the target partition now
  double copy_seconds = 0;
};

// A node's drain (docs/cluster.md, Draining a node): while draining it refuses new pages and
// serves those it holds; the counts say what still holds it.
struct DrainStatus {
  bool draining = false;
  uint64_t write_leases = 0;  // open write leases (each may still commit)
  uint64_t read_leases = 0;
  uint64_t pages_committed = 0;
};

class AdminClient {
 public:
  // Connects to options.endpoint (unix:, tcp: or tls:; not a cluster) and says Hello as
  // options.tenant with the admin role; options.model names the session only.
  static Result<std::unique_ptr<AdminClient>> connect(const ClientOptions& options);
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Every partition, in the daemon's order (the [region]'s first).
  Result<std::vector<PartitionStatus>> partitions();
  // The daemon's counters over all its partitions.
  Result<PoolStats> stats();
  // Starts (true) or ends (false) a drain of the daemon's node: Reserve is refused while it
  // drains, so a cluster client places new chunks on the other nodes (the node's record in etcd
  // says `draining`); lookups, reads, commits of leases already granted and removes go on.
  // Idempotent; not kept across a restart.
  Result<DrainStatus> drain(bool draining);
  // Whether the node drains, and what still holds it; changes nothing.
  Result<DrainStatus> drain_status();
  // The daemon reads its configuration again (as at start: its file and command line) and serves
  // the partitions and tenants that are new in it; changes to those it serves are listed, not
  // applied (they take effect at the next start).
  Result<ReloadReport> reload();
  // Removes partition `name` online into partition `into`. The first call starts its drain (its
  // sessions' reserves and removes refused); while write leases remain in it, or while its pages
  // are copied into `into` (in steps between other requests), removed is false with the counts so
  // far: call again. Then its tenants are bound to `into`, their sessions closed (clients connect
  // again), the partition closed (its read leases fail as expired) and removed is true; its
  // region's backing is left as it is. kNotFound for an unknown name; kExhausted (the drain ended,
  // the partition served as before) when `into` lacks the slabs below its high watermark or a
  // moved tenant's share would be passed; kBusy while another removal runs.
  Result<PartitionRemoval> remove_partition(const std::string& name, const std::string& into);

 private:
  explicit AdminClient(std::shared_ptr<detail::Session> session);
  std::shared_ptr<detail::Session> session_;
};

}  // namespace cxlkv
