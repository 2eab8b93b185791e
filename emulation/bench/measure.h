// What cxlkv-bench measures for one request on this machine: each design's fetch of a cached
// prefix, timed, with every operation counted as it is issued (bytes, 64 B lines touched,
// messages, dependent round trips). Called by main.cc; projection.cc turns the counts into time
// on hardware profiles. The counts are what moved in the run, never assumed from the shape.
//
// What each design must bring in (TTFT = before the first decode step's attention can run; one
// step = what a later step must bring in; data still in local memory or HBM costs nothing):
//   cxl-topk   TTFT: the indexer keys of every page and layer (read by the lightning indexer,
//              then kept in HBM) + the first step's top-k latent entries of every layer (one
//              dependent round trip per layer: layer l's top-k is known only after its indexer).
//              Step: the latent entries of the top-k that are not in the hot buffer (the previous
//              step's set), per layer.
//   rdma-bulk  TTFT: the whole prefix, all layers, both streams. Step: nothing.
//   rdma-ranged TTFT: the indexer keys + the first step's top-k (many small READs, one batch per
//              layer). Step: the misses, one batch per layer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cxlkv/client.h"
#include "fabric/fabric_model.h"
#include "prefix_fetch.h"
#include "range_reader.h"
#include "topk_trace.h"

namespace cxlkv::bench {

// Operations of one phase, counted as issued, and the time it took here.
struct PhaseOps {
  double bytes = 0;        // payload bytes brought in
  double lines = 0;        // distinct 64 B lines those bytes touch at the source
  double messages = 0;     // transfers issued (RDMA READs / TCP ranges after coalescing; CXL: 0)
  double round_trips = 0;  // dependent waits on the critical path
  double batches = 0;      // requests / READ chains
  double seconds = 0;      // measured here
  PhaseOps& operator+=(const PhaseOps& o);
  fabric::OpCounts as_ops(fabric::Pattern pattern) const;
};

// One design's run of one request: the TTFT phase split as it is projected, and S - 1 steps.
struct DesignRun {
  std::string design;            // "cxl-topk", "rdma-bulk", "rdma-ranged"
  bool measured = true;          // false: counts only (cxl-topk-gpu reuses cxl-topk's counts)
  PhaseOps lookup;               // the daemon lookup (control plane; measured, not projected)
  PhaseOps ttft_bulk;            // whole runs: indexer keys, or the whole prefix
  PhaseOps ttft_gather;          // the first step's top-k entries
  PhaseOps steps;                // steps 1..S-1, summed
  uint32_t later_steps = 0;      // S - 1
  bool verified = false;
  std::string verify_note;
};

// Buffers and scratch reused across requests (allocated once for the largest context).
struct Workspace {
  baseline::LocalBuffer prefix;   // bulk: the whole prefix; cxl / ranged: the indexer keys
  baseline::LocalBuffer rows;     // [layers][k][entry_bytes]: the top-k rows of the current step
  baseline::FetchScratch scratch;
  std::vector<baseline::Range> line_scratch;
};

struct RequestSpec {
  std::vector<PageKey> keys;
  uint32_t topk = 2048;
  uint32_t steps = 8;             // S, including the first
  double overlap = 0.8;
  uint64_t seed = 1;
  bool verify = true;
};

// CXL top-k by load/store from this process's mapping of the pool (the CPU gather).
Result<DesignRun> measure_cxl_topk(Client& client, const RequestSpec& spec, Workspace& ws);
// RDMA bulk: the whole prefix over `reader` (TCP here), verified against the page checksums.
Result<DesignRun> measure_rdma_bulk(Client& client, baseline::RangeReader& reader, const RequestSpec& spec, Workspace& ws);
// RDMA ranged: indexer keys + top-k entries per layer over `reader`, verified against the mapping.
Result<DesignRun> measure_rdma_ranged(Client& client, baseline::RangeReader& reader, const RequestSpec& spec, Workspace& ws);

}  // namespace cxlkv::bench
