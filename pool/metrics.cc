// Prometheus text rendering of the daemon's counters and histograms (metrics.h).
#include "metrics.h"

#include <fmt/format.h>

namespace cxlkv::pool {

const char* op_name(Op op) {
  switch (op) {
    case Op::kHello: return "hello";
    case Op::kReserve: return "reserve";
    case Op::kCommit: return "commit";
    case Op::kAbort: return "abort";
    case Op::kLookup: return "lookup";
    case Op::kRenew: return "renew";
    case Op::kRelease: return "release";
    case Op::kRemove: return "remove";
    case Op::kStats: return "stats";
    case Op::kPartitions: return "partitions";
    case Op::kDrain: return "drain";
    case Op::kListPages: return "list_pages";
    case Op::kReload: return "reload";
    case Op::kRemovePartition: return "remove_partition";
    default: return "bad";
  }
}

namespace {

void gauge(std::string& out, const char* name, const char* type, const char* help, uint64_t value) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, value);
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::string Metrics::render(std::span<const PartitionStats> partitions) const {
  PoolStats s;
  for (const PartitionStats& p : partitions) s += p.pool;
  std::string out;
  out.reserve(16 << 10);
  gauge(out, "cxlkv_pages_committed", "gauge", "Pages committed and visible to lookups.", s.pages_committed);
  gauge(out, "cxlkv_pages_reserved", "gauge", "Pages reserved under write leases.", s.pages_reserved);
  gauge(out, "cxlkv_slabs_total", "gauge", "Slabs in the partitions' regions.", s.slabs_total);
  gauge(out, "cxlkv_slabs_free", "gauge", "Slabs free in the allocator.", s.slabs_free);
  gauge(out, "cxlkv_slabs_used", "gauge", "Slabs in use.", s.slabs_total - s.slabs_free);
  gauge(out, "cxlkv_read_leases", "gauge", "Live read leases.", s.read_leases);
  gauge(out, "cxlkv_write_leases", "gauge", "Live write leases.", s.write_leases);
  gauge(out, "cxlkv_lookup_hits_total", "counter", "Pages found by lookups.", s.lookup_hits);
  gauge(out, "cxlkv_lookup_misses_total", "counter", "Lookups that stopped short of their last key.", s.lookup_misses);
  gauge(out, "cxlkv_lookups_total", "counter", "Lookups served.", s.lookups);
  gauge(out, "cxlkv_commits_total", "counter", "Write leases committed.", s.commits);
  gauge(out, "cxlkv_evictions_total", "counter", "Pages evicted.", s.evictions);
  gauge(out, "cxlkv_leases_expired_total", "counter", "Leases ended by the reaper or found expired.", s.expired_leases);
  gauge(out, "cxlkv_connections", "gauge", "Open control-plane connections.", connections_);
  gauge(out, "cxlkv_connections_rejected_total", "counter", "Connections refused over max_connections.",
        rejected_connections_);
  gauge(out, "cxlkv_protocol_errors_total", "counter", "Frames that failed the header check or verification.",
        protocol_errors_);
  const std::string region = label(node_.region);
  fmt::format_to(std::back_inserter(out),
                 "# HELP cxlkv_region_info The region this daemon serves (value 1).\n# TYPE cxlkv_region_info gauge\n"
                 "cxlkv_region_info{{region=\"{}\",layout=\"{}\",epoch=\"{:016x}\"}} 1\n"
                 "# HELP cxlkv_region_bytes The region's size.\n# TYPE cxlkv_region_bytes gauge\n"
                 "cxlkv_region_bytes{{region=\"{}\"}} {}\n",
                 region, label(node_.layout), node_.epoch, region, node_.region_bytes);
  gauge(out, "cxlkv_node_draining", "gauge", "1 while this node drains (cxlkv-admin drain): reserves refused, reads served.",
        node_.draining ? 1 : 0);
  struct PerPartition {
    const char* name;
    const char* help;
    uint64_t (*value)(const PoolStats&);
  };
  static constexpr PerPartition kPerPartition[] = {
      {"cxlkv_partition_slabs_total", "Slabs in each partition's region.", [](const PoolStats& p) { return p.slabs_total; }},
      {"cxlkv_partition_slabs_free", "Free slabs in each partition.", [](const PoolStats& p) { return p.slabs_free; }},
      {"cxlkv_partition_pages_committed", "Pages committed in each partition.",
       [](const PoolStats& p) { return p.pages_committed; }},
      {"cxlkv_partition_read_leases", "Live read leases in each partition.", [](const PoolStats& p) { return p.read_leases; }},
  };
  for (const PerPartition& m : kPerPartition) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} gauge\n", m.name, m.help);
    for (const PartitionStats& p : partitions)
      fmt::format_to(std::back_inserter(out), "{}{{partition=\"{}\",region=\"{}\"}} {}\n", m.name, label(p.name),
                     label(p.region), m.value(p.pool));
  }
  out += "# HELP cxlkv_partition_draining 1 while a partition is being removed (cxlkv-admin remove-partition): its "
         "reserves refused.\n# TYPE cxlkv_partition_draining gauge\n";
  for (const PartitionStats& p : partitions)
    fmt::format_to(std::back_inserter(out), "cxlkv_partition_draining{{partition=\"{}\",region=\"{}\"}} {}\n",
                   label(p.name), label(p.region), p.draining ? 1 : 0);
  if (!node_.cluster.empty())
    fmt::format_to(std::back_inserter(out),
                   "# HELP cxlkv_cluster_registered 1 while this node's record is in etcd under a live lease.\n"
                   "# TYPE cxlkv_cluster_registered gauge\ncxlkv_cluster_registered{{cluster=\"{0}\",node=\"{1}\"}} {2}\n"
                   "# HELP cxlkv_directory_summaries_published_total Prefix summaries written to etcd.\n"
                   "# TYPE cxlkv_directory_summaries_published_total counter\n"
                   "cxlkv_directory_summaries_published_total{{cluster=\"{0}\",node=\"{1}\"}} {3}\n",
                   label(node_.cluster), label(node_.node_id), node_.registered ? 1 : 0, node_.directory_puts);
  out += "# HELP cxlkv_request_seconds Control-plane request latency by op.\n# TYPE cxlkv_request_seconds histogram\n";
  for (size_t i = 0; i < ops_.size(); ++i) {
    const OpHistogram& h = ops_[i];
    const char* op = op_name(static_cast<Op>(i));
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kLatencyBuckets.size(); ++b) {
      cumulative += h.buckets[b];
      fmt::format_to(std::back_inserter(out), "cxlkv_request_seconds_bucket{{op=\"{}\",le=\"{}\"}} {}\n", op,
                     kLatencyBuckets[b], cumulative);
    }
    cumulative += h.buckets.back();
    fmt::format_to(std::back_inserter(out),
                   "cxlkv_request_seconds_bucket{{op=\"{0}\",le=\"+Inf\"}} {1}\n"
                   "cxlkv_request_seconds_sum{{op=\"{0}\"}} {2}\ncxlkv_request_seconds_count{{op=\"{0}\"}} {1}\n",
                   op, cumulative, h.sum);
  }
  out += "# HELP cxlkv_request_errors_total Error replies by op.\n# TYPE cxlkv_request_errors_total counter\n";
  for (size_t i = 0; i < ops_.size(); ++i)
    fmt::format_to(std::back_inserter(out), "cxlkv_request_errors_total{{op=\"{}\"}} {}\n",
                   op_name(static_cast<Op>(i)), ops_[i].errors);
  return out;
}

}  // namespace cxlkv::pool
