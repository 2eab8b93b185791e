// Reproduction of the seed papers' published figures: evaluates the designs a scenario's
// [[figures]] name, compares the model's metric with the paper's, and fits the calibrated
// constants (bisection) when asked. Called by the CLI (--reproduce, --calibrate) and the tests.
#pragma once

#include <string>
#include <vector>

#include "designs.h"

namespace cxlkv::sim {

struct FigureCheck {
  PaperFigure figure;
  double model = 0;      // the model's value of the figure's metric
  double rel_error = 0;  // (model - paper) / paper
  bool within = false;   // |rel_error| <= tolerance
  DesignPoint design, baseline;
};

struct Reproduction {
  std::string scenario;
  std::string paper;
  std::vector<FigureCheck> checks;
  bool all_within = true;
};

// Value of `metric` for design point `d` against baseline point `b`:
//   throughput_gain = thr(d)/thr(b) - 1, throughput_ratio = thr(d)/thr(b),
//   ttft_ratio = ttft(b)/ttft(d), tbt_ratio = tbt(b)/tbt(d), throughput_tps = thr(d),
//   batch_per_gpu = batch(d).
double metric_value(const std::string& metric, const DesignPoint& d, const DesignPoint& b);

// Checks every figure of the environment's scenario.
Reproduction reproduce(const Environment& env);

// One fitted constant.
struct Fit {
  std::string key;
  double before = 0, after = 0;
  bool converged = false;
};

// For each figure with a `fit` key, in file order, bisects that assumption in [fit_min, fit_max]
// until the model meets the figure exactly; updates `env` and returns what it changed.
std::vector<Fit> calibrate(Environment* env);

}  // namespace cxlkv::sim
