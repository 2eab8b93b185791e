// Report output of the simulator: the design table, JSON and CSV of evaluated points, the
// assumptions they rest on, and the reproduction table. Called by the CLI only. Formats; never
// evaluates anything itself.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "designs.h"
#include "reproduce.h"

namespace cxlkv::sim {

struct RunInfo {
  std::string profiles_path;
  std::string scenario_path;
};

// Human-readable table, one row per (context, design), then the assumptions with their why.
void print_table(std::ostream& out, const Environment& env, const RunInfo& info,
                 const std::vector<DesignPoint>& points);
// One JSON document: run info, assumptions, points (with step/TTFT breakdowns).
void print_json(std::ostream& out, const Environment& env, const RunInfo& info,
                const std::vector<DesignPoint>& points);
// CSV, one header row then one row per point.
void print_csv(std::ostream& out, const std::vector<DesignPoint>& points);
// The paper's figure, the model's, the error and the verdict, per figure.
void print_reproduction(std::ostream& out, const Environment& env, const Reproduction& r);
// Same as JSON.
void print_reproduction_json(std::ostream& out, const Environment& env, const Reproduction& r);

}  // namespace cxlkv::sim
