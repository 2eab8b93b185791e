// Time to first token on a cached prefix (see ttft.h).
#include "ttft.h"

#include <algorithm>
#include <cmath>

namespace cxlkv::sim {

double arrival_time(const ModelShape& m, const Arrival& a, double context) {
  if (a.path.empty() || (!a.latent && !a.indexer)) return 0;
  const double pages = std::ceil(context / m.page_tokens);
  fabric::OpCounts ops;
  ops.pattern = fabric::Pattern::kBulk;
  ops.round_trips = 1;
  if (a.latent) {
    ops.bytes += m.latent_bytes(context);
    ops.messages += pages * m.layers;
  }
  if (a.indexer) {
    ops.bytes += m.indexer_bytes(context);
    ops.messages += pages * m.layers;
  }
  const double wire = fabric::project_seconds(a.path, ops);
  const double software = ops.messages * a.per_message_s;
  return std::max(wire, software);
}

Ttft time_to_first_token(const ModelShape& m, double context, const Arrival& a,
                         const StepTime& steady, const FetchPlan* fetch) {
  Ttft t;
  t.arrival_s = arrival_time(m, a, context);
  double cold_extra_s = 0;
  if (fetch != nullptr) {
    FetchPlan all_miss = *fetch;
    all_miss.misses_per_layer = m.topk;
    cold_extra_s = std::max(0.0, fetch_time(m, all_miss, 1) - fetch_time(m, *fetch, 1));
  }
  t.first_step_s = steady.total_s + cold_extra_s;
  t.total_s = t.arrival_s + t.first_step_s;
  return t;
}

}  // namespace cxlkv::sim
