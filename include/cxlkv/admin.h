// AdminClient: a session of the admin role with one daemon. It maps no region and moves no pages:
// it asks the daemon what it serves (its partitions, their occupancy and tenants, the totals)
// and drains the node (no new pages placed on it) or ends the drain.
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

 private:
  explicit AdminClient(std::shared_ptr<detail::Session> session);
  std::shared_ptr<detail::Session> session_;
};

}  // namespace cxlkv
