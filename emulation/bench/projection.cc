// Counted operations -> projected time per profile (see projection.h).
#include "projection.h"

namespace cxlkv::bench {
namespace {

Projected on_path(const std::string& profile, const std::vector<fabric::Hop>& path, const DesignRun& run) {
  Projected p;
  p.profile = profile;
  p.ttft_bulk_s = fabric::project_seconds(path, run.ttft_bulk.as_ops(fabric::Pattern::kBulk));
  p.ttft_s = p.ttft_bulk_s + (run.ttft_gather.bytes > 0 ? fabric::project_seconds(path, run.ttft_gather.as_ops(fabric::Pattern::kGather)) : 0);
  if (run.later_steps > 0 && run.steps.bytes > 0)
    p.step_s = fabric::project_seconds(path, run.steps.as_ops(fabric::Pattern::kGather)) / run.later_steps;
  const double total = p.ttft_s + run.later_steps * p.step_s;
  p.tokens_per_s = total > 0 ? (run.later_steps + 1) / total : 0;
  return p;
}

}  // namespace

std::map<std::string, std::vector<Projected>> project(const fabric::Profiles& profiles, const DesignRun& run,
                                                      const GpuRates* gpu) {
  std::map<std::string, std::vector<Projected>> out;
  const bool cxl = run.design == "cxl-topk";
  for (const auto& [name, link] : profiles.links) {
    if (cxl && link.kind == fabric::LinkKind::kCxl) {
      out["cxl-topk"].push_back(on_path(name, {{link, 1}}, run));
      if (gpu != nullptr) {
        auto pcie = profiles.link("pcie5-h100");
        if (!pcie) continue;
        fabric::LinkProfile hop = *pcie;
        hop.gather_gbps = gpu->gather_gbps;
        if (gpu->bulk_h2d_gbps > 0) hop.bandwidth_gbps = gpu->bulk_h2d_gbps;
        out["cxl-topk-gpu"].push_back(on_path(name, {{link, 1}, {hop, 1}}, run));
      }
    } else if (!cxl && link.kind == fabric::LinkKind::kRdma) {
      out[run.design].push_back(on_path(name, {{link, 1}}, run));
    }
  }
  return out;
}

}  // namespace cxlkv::bench
