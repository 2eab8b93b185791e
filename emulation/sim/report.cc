// Report output (see report.h).
#include "report.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

namespace cxlkv::sim {
namespace {

std::string context_label(double tokens) {
  if (std::fmod(tokens, 1024) == 0) return fmt::format("{}K", tokens / 1024);
  return fmt::format("{}", tokens);
}

nlohmann::json point_json(const DesignPoint& p) {
  return {
      {"design", design_name(p.design)},
      {"context", p.context},
      {"batch_cap_per_gpu", p.batch_cap},
      {"batch_per_gpu", p.batch},
      {"hbm_per_request_gb", p.hbm_per_request_bytes / 1e9},
      {"hit_rate", p.hit_rate},
      {"tbt_ms", p.tbt_s * 1e3},
      {"throughput_tps", p.throughput_tps},
      {"ttft_ms", p.ttft.total_s * 1e3},
      {"step_ms",
       {{"dense", p.step.compute.dense_s * 1e3},
        {"attention", p.step.compute.attention_s * 1e3},
        {"overhead", p.step.compute.overhead_s * 1e3},
        {"fetch", p.step.fetch_s * 1e3},
        {"fetch_exposed", p.step.fetch_exposed_s * 1e3},
        {"stall", p.step.stall_s * 1e3}}},
      {"ttft_parts_ms", {{"arrival", p.ttft.arrival_s * 1e3}, {"first_step", p.ttft.first_step_s * 1e3}}},
      {"note", p.note},
  };
}

nlohmann::json assumptions_json(const Scenario& s) {
  nlohmann::json a = nlohmann::json::array();
  for (const Assumption& x : s.assumptions) {
    a.push_back({{"key", x.key}, {"value", x.value_text}, {"why", x.why}, {"calibrated", x.calibrated}});
  }
  return a;
}

}  // namespace

void print_table(std::ostream& out, const Environment& env, const RunInfo& info,
                 const std::vector<DesignPoint>& points) {
  const Scenario& s = env.scenario;
  fmt::print(out, "cxlkv-sim: decode-stage projection (a model, not a measurement)\n");
  fmt::print(out, "scenario {} ({}), profiles {}\n", s.name, info.scenario_path, info.profiles_path);
  fmt::print(out, "GPU {} x {} per instance, EP {}; {}\n\n", env.gpu.name, s.num("gpus_per_instance"),
             s.num("expert_parallel"), env.gather_note);
  fmt::print(out, "{:>7} {:<10} {:>6} {:>6} {:>9} {:>6} {:>9} {:>12} {:>10} {:>9}  {}\n", "context",
             "design", "cap/GPU", "batch", "GB/req", "hit", "TBT ms", "tokens/s", "TTFT ms",
             "x rdma", "note");
  double rdma_tps = 0;
  for (const DesignPoint& p : points) {
    if (p.design == DesignId::kRdmaBulk) rdma_tps = p.throughput_tps;
  }
  double last_ctx = -1;
  for (const DesignPoint& p : points) {
    if (p.context != last_ctx) {
      // throughput relative to the RDMA bulk baseline of the same context
      rdma_tps = 0;
      for (const DesignPoint& q : points) {
        if (q.context == p.context && q.design == DesignId::kRdmaBulk) rdma_tps = q.throughput_tps;
      }
      if (last_ctx >= 0) fmt::print(out, "\n");
      last_ctx = p.context;
    }
    const std::string rel = rdma_tps > 0 ? fmt::format("{:.2f}", p.throughput_tps / rdma_tps) : "-";
    fmt::print(out, "{:>7} {:<10} {:>6} {:>6} {:>9.2f} {:>6.3f} {:>9.1f} {:>12.0f} {:>10.1f} {:>9}  {}\n",
               context_label(p.context), design_name(p.design), p.batch_cap, p.batch,
               p.hbm_per_request_bytes / 1e9, p.hit_rate, p.tbt_s * 1e3, p.throughput_tps,
               p.ttft.total_s * 1e3, rel, p.note);
  }
  fmt::print(out, "\nassumptions ({}; * = calibrated against a published point):\n", s.origin);
  for (const Assumption& a : s.assumptions) {
    fmt::print(out, "  {}{} = {}: {}\n", a.calibrated ? "*" : " ", a.key, a.value_text, a.why);
  }
}

void print_json(std::ostream& out, const Environment& env, const RunInfo& info,
                const std::vector<DesignPoint>& points) {
  nlohmann::json j;
  j["note"] = "projected by a model (cxlkv-sim), not measured";
  j["scenario"] = {{"name", env.scenario.name}, {"path", info.scenario_path},
                   {"description", env.scenario.description}};
  j["profiles"] = info.profiles_path;
  j["gpu"] = env.gpu.name;
  j["gather"] = env.gather_note;
  if (env.kernels) {
    j["kernels"] = {{"path", env.kernels->origin}, {"device", env.kernels->device},
                    {"gather_gbps", env.kernels->gather_gbps},
                    {"bulk_h2d_gbps", env.kernels->bulk_h2d_gbps}};
  }
  j["assumptions"] = assumptions_json(env.scenario);
  j["points"] = nlohmann::json::array();
  for (const DesignPoint& p : points) j["points"].push_back(point_json(p));
  out << j.dump(2) << "\n";
}

void print_csv(std::ostream& out, const std::vector<DesignPoint>& points) {
  out << "context,design,batch_cap_per_gpu,batch_per_gpu,hbm_per_request_gb,hit_rate,tbt_ms,"
         "throughput_tps,ttft_ms,fetch_ms,fetch_exposed_ms,stall_ms,note\n";
  for (const DesignPoint& p : points) {
    fmt::print(out, "{},{},{},{},{:.4f},{:.4f},{:.3f},{:.1f},{:.3f},{:.3f},{:.3f},{:.3f},\"{}\"\n",
               p.context, design_name(p.design), p.batch_cap, p.batch, p.hbm_per_request_bytes / 1e9,
               p.hit_rate, p.tbt_s * 1e3, p.throughput_tps, p.ttft.total_s * 1e3, p.step.fetch_s * 1e3,
               p.step.fetch_exposed_s * 1e3, p.step.stall_s * 1e3, p.note);
  }
}

namespace {
std::string figure_value(const std::string& metric, double v) {
  if (metric == "throughput_gain") return fmt::format("{:+.1f} %", v * 100);
  if (metric == "throughput_tps") return fmt::format("{:.0f} tok/s", v);
  if (metric == "batch_per_gpu") return fmt::format("{:.0f}", v);
  return fmt::format("{:.2f}x", v);
}
}  // namespace

void print_reproduction(std::ostream& out, const Environment& env, const Reproduction& r) {
  fmt::print(out, "cxlkv-sim --reproduce {}: {}\n", r.scenario, r.paper);
  fmt::print(out, "(model projection on the assumptions below; 'calibrated' rows were fitted, the others are predicted)\n\n");
  fmt::print(out, "{:<17} {:>7} {:<21} {:>12} {:>12} {:>8} {:>6}  {}\n", "metric", "context",
             "design vs baseline", "paper", "model", "error", "tol", "verdict");
  for (const FigureCheck& c : r.checks) {
    const PaperFigure& f = c.figure;
    fmt::print(out, "{:<17} {:>7} {:<21} {:>12} {:>12} {:>+7.1f}% {:>5.0f}%  {}{}\n", f.metric,
               context_label(f.context),
               f.baseline.empty() ? f.design : f.design + " vs " + f.baseline,
               figure_value(f.metric, f.value), figure_value(f.metric, c.model), c.rel_error * 100,
               f.tolerance * 100, c.within ? "ok" : "OUTSIDE TOLERANCE",
               f.calibrated ? " (calibrated)" : " (predicted)");
  }
  fmt::print(out, "\npoints behind the figures:\n");
  std::vector<std::pair<double, DesignId>> printed;
  for (const FigureCheck& c : r.checks) {
    std::vector<const DesignPoint*> shown = {&c.design};
    if (!c.figure.baseline.empty()) shown.insert(shown.begin(), &c.baseline);
    for (const DesignPoint* p : shown) {
      const std::pair<double, DesignId> key{p->context, p->design};
      if (std::find(printed.begin(), printed.end(), key) != printed.end()) continue;
      printed.push_back(key);
      fmt::print(out, "  {:>5} {:<10} batch {:>4} (cap {:>4})  hit {:.3f}  TBT {:7.1f} ms  {:9.0f} tok/s  TTFT {:8.1f} ms\n",
                 context_label(p->context), design_name(p->design), p->batch, p->batch_cap, p->hit_rate,
                 p->tbt_s * 1e3, p->throughput_tps, p->ttft.total_s * 1e3);
    }
  }
  fmt::print(out, "\nassumptions ({}; * = calibrated):\n", env.scenario.origin);
  for (const Assumption& a : env.scenario.assumptions) {
    fmt::print(out, "  {}{} = {}: {}\n", a.calibrated ? "*" : " ", a.key, a.value_text, a.why);
  }
  fmt::print(out, "\n{}\n", r.all_within ? "all figures within tolerance" : "SOME FIGURES OUTSIDE TOLERANCE");
}

void print_reproduction_json(std::ostream& out, const Environment& env, const Reproduction& r) {
  nlohmann::json j;
  j["note"] = "projected by a model (cxlkv-sim), not measured";
  j["scenario"] = r.scenario;
  j["paper"] = r.paper;
  j["all_within"] = r.all_within;
  j["assumptions"] = assumptions_json(env.scenario);
  j["figures"] = nlohmann::json::array();
  for (const FigureCheck& c : r.checks) {
    j["figures"].push_back({{"metric", c.figure.metric}, {"design", c.figure.design},
                            {"baseline", c.figure.baseline}, {"context", c.figure.context},
                            {"paper", c.figure.value}, {"model", c.model},
                            {"rel_error", c.rel_error}, {"tolerance", c.figure.tolerance},
                            {"within", c.within}, {"calibrated", c.figure.calibrated},
                            {"source", c.figure.source},
                            {"design_point", point_json(c.design)},
                            {"baseline_point", point_json(c.baseline)}});
  }
  out << j.dump(2) << "\n";
}

}  // namespace cxlkv::sim
