// Memory footprint and batch admission (see footprint.h).
#include "footprint.h"

#include <algorithm>
#include <cmath>

namespace cxlkv::sim {

ModelShape deepseek_v32() { return ModelShape{}; }

double weights_per_gpu_bytes(const ModelShape& m, double expert_parallel) {
  return m.routed_expert_bytes() / expert_parallel + m.replicated_bytes();
}

double free_hbm_bytes(double hbm_bytes, double usable_fraction, double weights_bytes) {
  return std::max(0.0, hbm_bytes * usable_fraction - weights_bytes);
}

double request_hbm_bytes(const ModelShape& m, const Residency& r, double context) {
  double bytes = 0;
  if (r.latent_in_hbm) bytes += m.latent_bytes(context);
  if (r.indexer_in_hbm) bytes += m.indexer_bytes(context);
  bytes += r.buffer_entries_per_layer * m.layers * m.latent_entry_bytes;
  bytes += r.staging_entries * m.latent_entry_bytes;
  return bytes;
}

int admitted_batch(double free_bytes, double per_request_bytes, int max_batch) {
  if (per_request_bytes <= 0) return max_batch;
  const double fit = std::floor(free_bytes / per_request_bytes);
  return static_cast<int>(std::clamp(fit, 0.0, static_cast<double>(max_batch)));
}

}  // namespace cxlkv::sim
