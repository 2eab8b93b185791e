// The control-plane benchmarks (control_bench.cc): lookup round trips, reserve+commit, and lookups
// under many concurrent clients, against
// a daemon started privately (--poold or $CXLKV_POOLD) or an existing one (--endpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cxlkv::bench {

struct ControlBenchOptions {
  std::string poold;     // the daemon binary; empty: $CXLKV_POOLD
  std::string endpoint;  // an existing daemon instead (then only this endpoint is measured)
  // One layer of the deepseek-v3.2 streams: control-plane costs do not depend on the layer count,
  // and 2048 pages of it fit in 256 MiB.
  std::string layout = "custom:name=dsv32-1l,layers=1,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";
  uint32_t keys = 2048;
  int iters = 1000;
  int commit_iters = 20;
  // lookup-load: concurrent clients (each its own session and thread), seconds per level, and
  // one reserve + commit (+ remove) of write_pages pages in every write_every operations.
  std::vector<int> clients = {1, 8, 64, 256};
  double seconds = 3;
  int write_every = 8;
  uint32_t write_pages = 16;
  int daemon_cpu = -1;  // >= 0: the private daemon on this CPU alone, the clients on the others
  bool tls = false;     // lookup: also a second private daemon whose TCP listener speaks TLS
  uint32_t remove_pages = 4096;  // remove-partition: pages in the partition removed
};

int run_lookup_bench(const ControlBenchOptions& options);
int run_commit_bench(const ControlBenchOptions& options);
// Lookups/s and lookup p50/p99 with 1..256 concurrent clients in closed loop, writes mixed in.
int run_lookup_load_bench(const ControlBenchOptions& options);
// Removing a partition online (cxlkv-admin remove-partition): the copy's time and rate, and what
// a lookup of another tenant, in closed loop meanwhile, waits (the I/O thread copies).
int run_remove_partition_bench(const ControlBenchOptions& options);

}  // namespace cxlkv::bench
