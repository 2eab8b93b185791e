// The five designs (see designs.h).
#include "designs.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace cxlkv::sim {

const std::vector<DesignId>& all_designs() {
  static const std::vector<DesignId> kAll = {DesignId::kHbm, DesignId::kRdmaBulk, DesignId::kEss,
                                             DesignId::kSac, DesignId::kOurs};
  return kAll;
}

const char* design_name(DesignId id) {
  switch (id) {
    case DesignId::kHbm: return "hbm";
    case DesignId::kRdmaBulk: return "rdma-bulk";
    case DesignId::kEss: return "ess";
    case DesignId::kSac: return "sac";
    case DesignId::kOurs: return "ours";
  }
  return "?";
}

std::optional<DesignId> parse_design(std::string_view name) {
  for (DesignId id : all_designs()) {
    if (name == design_name(id)) return id;
  }
  return std::nullopt;
}

namespace {

Result<std::vector<fabric::Hop>> resolve_path(const Scenario& s, const fabric::Profiles& p,
                                              const char* key) {
  std::vector<fabric::Hop> path;
  for (const std::string& name : s.names(key)) {
    auto link = p.link(name);
    if (!link) return Result<std::vector<fabric::Hop>>::fail(s.origin + ": assumption '" + key + "': " + link.error());
    double parallel = 1;
    if (link->kind == fabric::LinkKind::kCxl) parallel = s.num("cxl_devices_per_gpu");
    if (link->kind == fabric::LinkKind::kRdma) parallel = s.num("rdma_links_per_gpu");
    path.push_back(fabric::Hop{link.value(), parallel});
  }
  return path;
}

// Replaces the PCIe hops' gather (and bulk, when measured) rate by the measured kernel rates.
void apply_kernels(std::vector<fabric::Hop>* path, const KernelRates& k) {
  for (fabric::Hop& hop : *path) {
    if (hop.link.kind != fabric::LinkKind::kPcie) continue;
    hop.link.gather_gbps = k.gather_gbps;
    if (k.bulk_h2d_gbps > 0) hop.link.bandwidth_gbps = k.bulk_h2d_gbps;
  }
}

}  // namespace

Result<Environment> make_environment(const Scenario& s, const fabric::Profiles& p,
                                     const std::optional<KernelRates>& kernels) {
  using R = Result<Environment>;
  Environment env;
  env.scenario = s;
  env.model = deepseek_v32();
  auto gpu = p.gpu(s.names("gpu").front());
  if (!gpu) return R::fail(s.origin + ": assumption 'gpu': " + gpu.error());
  env.gpu = gpu.value();
  auto host = resolve_path(s, p, "host_path");
  if (!host) return R::fail(host.error());
  auto cxl = resolve_path(s, p, "cxl_path");
  if (!cxl) return R::fail(cxl.error());
  auto rdma = resolve_path(s, p, "rdma_path");
  if (!rdma) return R::fail(rdma.error());
  env.host_path = host.value();
  env.cxl_path = cxl.value();
  env.rdma_path = rdma.value();
  std::ostringstream note;
  double profile_gather = 0;
  for (const auto& hop : env.cxl_path) {
    if (hop.link.kind == fabric::LinkKind::kPcie) profile_gather = hop.link.gather_gbps;
  }
  if (kernels) {
    env.kernels = kernels;
    apply_kernels(&env.host_path, *kernels);
    apply_kernels(&env.cxl_path, *kernels);
    note << "gather rate " << kernels->gather_gbps << " GB/s measured"
         << (kernels->device.empty() ? "" : " on " + kernels->device) << " (" << kernels->origin
         << ") replaces the profile's " << profile_gather << " GB/s";
  } else {
    note << "gather rate " << profile_gather << " GB/s from the PCIe profile";
  }
  env.gather_note = note.str();
  return env;
}

DesignPoint evaluate(const Environment& env, DesignId d, double context) {
  const Scenario& s = env.scenario;
  const ModelShape& m = env.model;
  const double gpus = s.num("gpus_per_instance");
  const double weights = weights_per_gpu_bytes(m, s.num("expert_parallel"));
  const double free = free_hbm_bytes(env.gpu.hbm_gb * 1e9, s.num("hbm_usable_fraction"), weights);
  GpuRates rates;
  rates.hbm_bytes_per_s = env.gpu.hbm_gbps * 1e9 * s.num("hbm_efficiency");
  rates.fp8_flops = env.gpu.fp8_tflops * 1e12 * s.num("mma_efficiency");
  rates.attn_bf16_flops = env.gpu.bf16_tflops * 1e12 * s.num("attention_efficiency");
  rates.attn_fp8_flops = env.gpu.fp8_tflops * 1e12 * s.num("attention_efficiency");
  rates.overhead_s = s.num("step_overhead_ms") * 1e-3;
  rates.alltoall_bytes_per_s = s.num("ep_alltoall_gbps") * 1e9;
  rates.alltoall_exposed = 1 - s.num("ep_alltoall_overlap");
  const double overlap = s.num("topk_step_overlap");
  const double reuse = s.num("older_reuse");

  DesignPoint pt;
  pt.design = d;
  pt.context = context;
  Residency res;
  Arrival arr;
  std::optional<FetchPlan> fetch;
  switch (d) {
    case DesignId::kHbm:
      break;  // everything resident, nothing arrives
    case DesignId::kRdmaBulk:
      arr = Arrival{env.rdma_path, true, true, s.num("rdma_per_message_us") * 1e-6};
      break;
    case DesignId::kEss: {
      const double entries = std::max(s.num("ess_gpu_keep_fraction") * context, m.topk);
      res = Residency{false, true, entries, 0};
      arr = Arrival{env.host_path, false, true, 0};
      pt.hit_rate = hot_buffer_hit_rate(entries / m.topk, overlap, reuse);
      fetch = FetchPlan{env.host_path, m.topk * (1 - pt.hit_rate), s.num("ess_transfer_overlap")};
      break;
    }
    case DesignId::kSac:
      res = Residency{false, true, 0, 2 * m.topk};  // two layers' top-k in flight
      arr = Arrival{env.cxl_path, false, true, 0};
      pt.hit_rate = 0;
      fetch = FetchPlan{env.cxl_path, m.topk, s.num("sac_transfer_overlap")};
      break;
    case DesignId::kOurs: {
      const double multiple = std::max(1.0, s.num("ours_hot_buffer_topk"));
      res = Residency{false, true, multiple * m.topk, 0};
      arr = Arrival{env.cxl_path, false, true, 0};
      pt.hit_rate = hot_buffer_hit_rate(multiple, overlap, reuse);
      fetch = FetchPlan{env.cxl_path, m.topk * (1 - pt.hit_rate), s.num("ours_transfer_overlap")};
      break;
    }
  }
  pt.hbm_per_request_bytes = request_hbm_bytes(m, res, context);
  pt.batch_cap = admitted_batch(free, pt.hbm_per_request_bytes,
                                static_cast<int>(s.num("max_batch_per_gpu")));
  const double arrival_s = arrival_time(m, arr, context);
  const double joiners_scale = (s.num("lockstep_stalls") >= 0.5 ? gpus : 1.0) /
                               s.num("output_tokens") * s.num("admission_stall_fraction");
  const FetchPlan* fp = fetch ? &*fetch : nullptr;
  auto step_at = [&](int b) {
    // b / output_tokens requests join per step on each GPU; each stalls for its arrival.
    return step_time(m, rates, weights, b, context, fp, b * joiners_scale * arrival_s);
  };

  if (pt.batch_cap == 0) {
    pt.note = "no request fits in HBM";
    return pt;
  }
  int b = pt.batch_cap;
  const double offered = std::floor(s.num("concurrency_per_gpu"));
  if (offered > 0 && offered < b) b = static_cast<int>(offered);
  if (offered > pt.batch_cap) pt.note = "offered concurrency exceeds the batch HBM admits";
  const double slo_s = s.num("tbt_slo_ms") * 1e-3;
  if (slo_s > 0 && step_at(b).total_s > slo_s) {
    int lo = 1, hi = b;  // largest batch meeting the SLO; step time grows with the batch
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (step_at(mid).total_s <= slo_s) lo = mid; else hi = mid - 1;
    }
    b = lo;
    pt.note = step_at(b).total_s > slo_s ? "misses the TBT SLO even at batch 1"
                                         : "batch limited by the TBT SLO";
  }
  pt.batch = b;
  pt.step = step_at(b);
  pt.tbt_s = pt.step.total_s;
  pt.throughput_tps = gpus * b / pt.step.total_s;
  pt.ttft = time_to_first_token(m, context, arr, pt.step, fp);
  return pt;
}

}  // namespace cxlkv::sim
