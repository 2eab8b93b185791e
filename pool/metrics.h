// Metrics: per-op request latency histograms and error counts, and the Prometheus text rendering
// of them together with PoolService's counters. The dispatcher records; metrics_server.h serves
// render() on GET /metrics. Single-threaded like the rest of the daemon: no atomics, no locks.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "pool_service.h"

namespace cxlkv::pool {

enum class Op : uint8_t { kHello, kReserve, kCommit, kAbort, kLookup, kRenew, kRelease, kRemove, kStats, kPartitions, kDrain, kListPages, kReload, kRemovePartition, kBad, kCount };
const char* op_name(Op op);

// One partition's counters at a scrape (partition.h), labelled by its name and region.
struct PartitionStats {
  std::string name;
  std::string region;  // "<backend>:<path>"
  PoolStats pool;
  bool draining = false;  // being removed
};

// Upper bounds of the latency buckets, in seconds (10 us .. 1 s), plus +Inf.
inline constexpr std::array<double, 12> kLatencyBuckets = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                                           1e-3, 2.5e-3, 5e-3, 1e-2, 1e-1, 1.0};

class Metrics {
 public:
  // Records one request of `op` that took `seconds`; `ok` false counts an error reply.
  void observe(Op op, double seconds, bool ok) {
    OpHistogram& h = ops_[static_cast<size_t>(op)];
    size_t b = 0;
    while (b < kLatencyBuckets.size() && seconds > kLatencyBuckets[b]) ++b;
    ++h.buckets[b];
    ++h.count;
    h.sum += seconds;
    if (!ok) ++h.errors;
  }
  // What this daemon is (set once at start) and, in a cluster, its membership and prefix
  // directory as the registration thread last reported them (set at each reaper tick).
  struct NodeState {
    std::string region;          // "<backend>:<path>"
    std::string layout;          // the layout's name
    uint64_t region_bytes = 0;
    uint64_t epoch = 0;
    std::string cluster;         // "etcd://..." or empty for a lone node
    std::string node_id;
    bool registered = false;
    uint64_t directory_puts = 0;
    bool draining = false;       // cxlkv-admin drain: no new pages placed here
  };
  void set_node_state(NodeState state) { node_ = std::move(state); }
  void set_cluster_state(bool registered, uint64_t directory_puts) {
    node_.registered = registered;
    node_.directory_puts = directory_puts;
  }
  void set_draining(bool draining) { node_.draining = draining; }
  void set_connections(uint64_t n) { connections_ = n; }
  void count_rejected_connection() { ++rejected_connections_; }
  void count_protocol_error() { ++protocol_errors_; }

  // The Prometheus text exposition (version 0.0.4) of everything: the pool counters summed over
  // the partitions, and each partition's occupancy and leases labelled by its name.
  std::string render(std::span<const PartitionStats> partitions) const;

 private:
  struct OpHistogram {
    std::array<uint64_t, kLatencyBuckets.size() + 1> buckets{};  // last: +Inf
    uint64_t count = 0;
    uint64_t errors = 0;
    double sum = 0;
  };
  std::array<OpHistogram, static_cast<size_t>(Op::kCount)> ops_{};
  uint64_t connections_ = 0;
  uint64_t rejected_connections_ = 0;
  uint64_t protocol_errors_ = 0;
  NodeState node_;
};

}  // namespace cxlkv::pool
