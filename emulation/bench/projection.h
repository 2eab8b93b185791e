// Projection of cxlkv-bench's counted operations onto hardware profiles (fabric_model.h):
// each design's TTFT and time per step on each profile of its fabric. Called by main.cc.
//   cxl-topk (CPU)  path: the CXL device             (the CPU loads the entries)
//   cxl-topk (GPU)  path: the CXL device + PCIe hop whose bulk and gather rates are the ones
//                   measured on an H100 (docs/data/gpu-bench-h100-e8.json), not measured here
//   rdma-*          path: the NIC, READing straight into GPU memory (GPUDirect: no host hop,
//                   the baseline's best case)
// Bulk phases (indexer keys, whole prefix) project with the bulk pattern, top-k phases with the
// gather pattern. The control-plane lookup is left out of every projection (all designs do one).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "fabric/fabric_model.h"
#include "measure.h"

namespace cxlkv::bench {

// Projected seconds of one design on one profile.
struct Projected {
  std::string profile;        // "cxl-type3-ddr5", "rdma-400g", ...
  double ttft_s = 0;          // TTFT on a cache hit
  double ttft_bulk_s = 0;     // of which the bulk phase (indexer keys / whole prefix)
  double step_s = 0;          // one later step
  double tokens_per_s = 0;    // S / (TTFT + (S - 1) x step), one request, data movement only
};

// The GPU gather rates measured elsewhere, applied to the PCIe hop.
struct GpuRates {
  std::string origin, device;
  double gather_gbps = 0, bulk_h2d_gbps = 0;
};

// Projects a run on every profile of its fabric: CXL designs on every cxl.* profile (with the
// GPU variant when `gpu` is given, over pcie5-h100), RDMA designs on every rdma.* profile.
// Returns design name -> projections ("cxl-topk", "cxl-topk-gpu", "rdma-bulk", "rdma-ranged").
std::map<std::string, std::vector<Projected>> project(const fabric::Profiles& profiles, const DesignRun& run,
                                                      const GpuRates* gpu);

}  // namespace cxlkv::bench
