// The five decode designs and their evaluation at one context length: what each keeps in HBM,
// what must arrive before its first step, what it fetches per step, and from those (footprint.h,
// step_time.h, ttft.h) its batch, TBT, throughput and TTFT.
// Called by the CLI, the reproduction (reproduce.cc) and the tests. Holds no state between calls.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fabric/fabric_model.h"
#include "footprint.h"
#include "kernels_input.h"
#include "scenario.h"
#include "step_time.h"
#include "ttft.h"

namespace cxlkv::sim {

enum class DesignId {
  kHbm,       // all in HBM: latent + indexer resident, prefix already there (upper bound)
  kRdmaBulk,  // RDMA pool, whole prefix fetched into HBM before decoding (Mooncake-style)
  kEss,       // ESS: latent in host DRAM, indexer in HBM, GPU LRU of latent entries
  kSac,       // SAC-style: latent in a CXL pool, top-k fetched every step, indexer in HBM
  kOurs,      // cxlkv: CXL pool, top-k fetched on miss into a GPU hot buffer, indexer in HBM
};

// All designs in report order.
const std::vector<DesignId>& all_designs();
// Short name used on the command line and in reports: hbm, rdma-bulk, ess, sac, ours.
const char* design_name(DesignId id);
// Parses a short name; nullopt when unknown.
std::optional<DesignId> parse_design(std::string_view name);

// Everything an evaluation needs, resolved once from a scenario and the profiles.
struct Environment {
  Scenario scenario;
  ModelShape model;
  fabric::GpuProfile gpu;
  std::vector<fabric::Hop> host_path, cxl_path, rdma_path;
  std::optional<KernelRates> kernels;  // measured gather rates replacing the profile's
  std::string gather_note;             // what the report says about the gather rate used
};

// Resolves profile names; applies `kernels` (if any) to the PCIe hop of the host and CXL paths.
Result<Environment> make_environment(const Scenario& s, const fabric::Profiles& p,
                                     const std::optional<KernelRates>& kernels);

// One design at one context length.
struct DesignPoint {
  DesignId design = DesignId::kHbm;
  double context = 0;
  int batch_cap = 0;               // batch admitted by HBM (and max_batch_per_gpu)
  int batch = 0;                   // batch run (cap, offered concurrency, TBT SLO)
  double hbm_per_request_bytes = 0;
  double hit_rate = 0;             // hot buffer / LRU hit rate (0 when nothing is fetched)
  StepTime step;                   // steady-state step at `batch`
  Ttft ttft;
  double tbt_s = 0;
  double throughput_tps = 0;       // tokens/s of the instance (gpus_per_instance GPUs)
  std::string note;                // e.g. "batch limited by TBT SLO"
};

// Evaluates design `d` at `context` tokens. A design that admits no request gets batch 0,
// throughput 0 and a note saying so.
DesignPoint evaluate(const Environment& env, DesignId d, double context);

}  // namespace cxlkv::sim
