// Step time roofline and hot-buffer hit rate (see step_time.h).
#include "step_time.h"

#include <algorithm>
#include <cmath>

namespace cxlkv::sim {

ComputeTime compute_time(const ModelShape& m, const GpuRates& g, double weights_bytes, double batch,
                         double context) {
  ComputeTime t;
  // Weights: with DP attention + EP, a decode batch touches every local expert, so each step
  // reads all the GPU's weights once; the GEMMs do 2 flops per active parameter per token.
  const double weights_s = weights_bytes / g.hbm_bytes_per_s;
  const double gemm_s = batch * 2 * m.active_params / g.fp8_flops;
  t.dense_s = std::max(weights_s, gemm_s);
  // Per request and layer: read top-k latent entries and all indexer keys; sparse MLA does
  // 2 x heads x topk x (qk + v) flops (bf16), the indexer 2 x heads x dim x context (fp8).
  const double bytes = m.layers * (m.topk * m.latent_entry_bytes + context * m.indexer_entry_bytes);
  const double mla_flops = m.layers * 2 * m.mla_heads * m.topk * (m.mla_qk_dim + m.mla_v_dim);
  const double idx_flops = m.layers * 2 * m.indexer_heads * m.indexer_dim * context;
  t.attention_s = batch * (bytes / g.hbm_bytes_per_s + mla_flops / g.attn_bf16_flops +
                           idx_flops / g.attn_fp8_flops);
  // Each token goes to experts_per_token experts in every MoE layer: fp8 dispatch (1 B) and
  // bf16 combine (2 B) of the hidden vector.
  if (g.alltoall_bytes_per_s > 0) {
    const double per_token = m.moe_layers * m.experts_per_token * m.hidden * 3;
    t.alltoall_s = batch * per_token / g.alltoall_bytes_per_s * g.alltoall_exposed;
  }
  t.overhead_s = g.overhead_s;
  return t;
}

double hot_buffer_hit_rate(double buffer_topk, double step_overlap, double older_reuse) {
  if (buffer_topk <= 0) return 0;
  if (buffer_topk < 1) return step_overlap * buffer_topk;
  return 1 - (1 - step_overlap) * (1 - older_reuse * (1 - 1 / buffer_topk));
}

double fetch_time(const ModelShape& m, const FetchPlan& f, double batch) {
  if (f.path.empty() || f.misses_per_layer <= 0 || batch <= 0) return 0;
  const double entries = batch * f.misses_per_layer * m.layers;
  fabric::OpCounts ops;
  ops.bytes = entries * m.latent_entry_bytes;
  ops.lines = entries * std::ceil(m.latent_entry_bytes / 64);
  ops.messages = 0;  // loads, not messages
  ops.round_trips = m.layers;
  ops.pattern = fabric::Pattern::kGather;
  return fabric::project_seconds(f.path, ops);
}

StepTime step_time(const ModelShape& m, const GpuRates& g, double weights_bytes, double batch,
                   double context, const FetchPlan* fetch, double stall_s) {
  StepTime s;
  s.compute = compute_time(m, g, weights_bytes, batch, context);
  if (fetch != nullptr) {
    s.fetch_s = fetch_time(m, *fetch, batch);
    s.fetch_exposed_s = std::max(0.0, s.fetch_s - fetch->overlap * s.compute.total());
  }
  s.stall_s = stall_s;
  s.total_s = s.compute.total() + s.fetch_exposed_s + s.stall_s;
  return s;
}

}  // namespace cxlkv::sim
