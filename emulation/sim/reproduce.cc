// Reproduction and calibration (see reproduce.h).
#include "reproduce.h"

#include <cmath>

namespace cxlkv::sim {

double metric_value(const std::string& metric, const DesignPoint& d, const DesignPoint& b) {
  auto safe_div = [](double x, double y) { return y > 0 ? x / y : 0.0; };
  if (metric == "throughput_gain") return safe_div(d.throughput_tps, b.throughput_tps) - 1;
  if (metric == "throughput_ratio") return safe_div(d.throughput_tps, b.throughput_tps);
  if (metric == "ttft_ratio") return safe_div(b.ttft.total_s, d.ttft.total_s);
  if (metric == "tbt_ratio") return safe_div(b.tbt_s, d.tbt_s);
  if (metric == "throughput_tps") return d.throughput_tps;
  if (metric == "batch_per_gpu") return d.batch;
  return 0;
}

namespace {
FigureCheck check_figure(const Environment& env, const PaperFigure& f) {
  FigureCheck c;
  c.figure = f;
  c.design = evaluate(env, *parse_design(f.design), f.context);
  c.baseline = f.baseline.empty() ? c.design : evaluate(env, *parse_design(f.baseline), f.context);
  c.model = metric_value(f.metric, c.design, c.baseline);
  c.rel_error = f.value != 0 ? (c.model - f.value) / f.value : 0;
  c.within = std::fabs(c.rel_error) <= f.tolerance;
  return c;
}
}  // namespace

Reproduction reproduce(const Environment& env) {
  Reproduction r;
  r.scenario = env.scenario.name;
  r.paper = env.scenario.paper;
  for (const PaperFigure& f : env.scenario.figures) {
    r.checks.push_back(check_figure(env, f));
    r.all_within = r.all_within && r.checks.back().within;
  }
  return r;
}

std::vector<Fit> calibrate(Environment* env) {
  std::vector<Fit> fits;
  for (const PaperFigure& f : env->scenario.figures) {
    if (f.fit_key.empty()) continue;
    Fit fit{f.fit_key, env->scenario.num(f.fit_key), 0, false};
    auto error_at = [&](double x) {
      env->scenario.set_num(f.fit_key, x);
      return check_figure(*env, f).model - f.value;
    };
    double lo = f.fit_min, hi = f.fit_max;
    double elo = error_at(lo), ehi = error_at(hi);
    if (elo * ehi > 0) {  // no sign change: keep the old value
      env->scenario.set_num(f.fit_key, fit.before);
      fit.after = fit.before;
      fits.push_back(fit);
      continue;
    }
    for (int i = 0; i < 60; ++i) {
      const double mid = 0.5 * (lo + hi);
      const double e = error_at(mid);
      if ((e < 0) == (elo < 0)) { lo = mid; elo = e; } else { hi = mid; }
    }
    fit.after = 0.5 * (lo + hi);
    env->scenario.set_num(f.fit_key, fit.after);
    fit.converged = true;
    fits.push_back(fit);
  }
  return fits;
}

}  // namespace cxlkv::sim
