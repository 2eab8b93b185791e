// Time of one decode step on one GPU: a roofline of the weights/MoE work and of the sparse
// attention + indexer, plus the exposed part of the step's miss transfers and admission stalls;
// and the hot-buffer hit rate those misses follow from. Called by designs.cc and ttft.cc.
// Never decides a batch (footprint.h does) nor knows which design it times.
#pragma once

#include "fabric/fabric_model.h"
#include "footprint.h"

namespace cxlkv::sim {

// Rates and efficiencies of one GPU, from its profile and the scenario.
struct GpuRates {
  double hbm_bytes_per_s = 0;   // achieved: profile x hbm_efficiency
  double fp8_flops = 0;         // achieved in GEMMs: profile x mma_efficiency
  double attn_bf16_flops = 0;   // achieved in sparse attention: profile x attention_efficiency
  double attn_fp8_flops = 0;    // achieved in the indexer: profile x attention_efficiency
  double overhead_s = 0;        // fixed per-step time
  double alltoall_bytes_per_s = 0;  // MoE dispatch/combine rate per GPU; 0: not charged
  double alltoall_exposed = 1;      // fraction of the all-to-all not hidden
};

// Compute part of a step, seconds.
struct ComputeTime {
  double dense_s = 0;      // max(weights read, MoE/dense GEMM flops)
  double attention_s = 0;  // sparse MLA over top-k + indexer over the whole prefix, all requests
  double alltoall_s = 0;   // exposed MoE dispatch + combine
  double overhead_s = 0;
  double total() const { return dense_s + attention_s + alltoall_s + overhead_s; }
};

// Roofline of one step with `batch` requests of `context` tokens, `weights_bytes` on the GPU.
ComputeTime compute_time(const ModelShape& m, const GpuRates& g, double weights_bytes, double batch,
                         double context);

// Hit rate of a per-request hot buffer holding `buffer_topk` x top-k entries per layer (LRU):
//   m < 1: overlap * m;  m >= 1: 1 - (1 - overlap) * (1 - older_reuse * (1 - 1/m))
// (a buffer of one top-k keeps the previous step's set; more keeps older re-selected entries).
double hot_buffer_hit_rate(double buffer_topk, double step_overlap, double older_reuse);

// The latent misses of one step: `misses_per_layer` per request, fetched over `path`.
struct FetchPlan {
  std::vector<fabric::Hop> path;
  double misses_per_layer = 0;
  double overlap = 0;  // fraction of the compute time that hides the fetch
};

// Projected seconds to fetch the misses of `batch` requests for all layers: one dependent
// gather per layer (its top-k is known only after that layer's indexer ran).
double fetch_time(const ModelShape& m, const FetchPlan& f, double batch);

// A whole step.
struct StepTime {
  ComputeTime compute;
  double fetch_s = 0;          // projected transfer of the misses
  double fetch_exposed_s = 0;  // max(0, fetch - overlap x compute)
  double stall_s = 0;          // admission stalls charged to this step
  double total_s = 0;
};

// compute + exposed fetch + stall.
StepTime step_time(const ModelShape& m, const GpuRates& g, double weights_bytes, double batch,
                   double context, const FetchPlan* fetch, double stall_s);

}  // namespace cxlkv::sim
