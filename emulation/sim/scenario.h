// A scenario: every assumption the decode-stage simulator runs on, each with a `why`, read from a
// TOML file (emulation/sim/scenarios/*.toml), plus the published figures a reproduction checks.
// Called by the CLI (main.cc), the designs (designs.cc) and the tests. It knows the schema of the
// [assumptions] table: an unknown, missing or out-of-range key is an error naming file and key.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fabric/result.h"

namespace cxlkv::sim {

using cxlkv::emu::Result;

// One assumption as written in the file: its value (as text, for reports) and why it was made.
struct Assumption {
  std::string key;
  std::string value_text;
  std::string why;
  bool calibrated = false;  // `calibrated = true` in the file: fitted to a published point
};

// A published figure a reproduction must meet (from the scenario's [[paper.figures]]).
struct PaperFigure {
  std::string metric;     // "throughput_gain", "ttft_ratio", "tbt_ratio"
  std::string design;     // the seed paper's design
  std::string baseline;   // what the paper compares it against
  double context = 0;     // tokens
  double value = 0;       // as published: gain as a fraction (0.694) or a ratio (9.7)
  double tolerance = 0;   // relative, on the gain (0.10 = +-10 % of the gain)
  bool calibrated = false;  // this point was used to fit a constant (not a prediction)
  std::string fit_key;      // when calibrated: the assumption fitted to it ...
  double fit_min = 0, fit_max = 0;  // ... searched in [fit_min, fit_max] by --calibrate
  std::string source;
};

// One schema entry of the [assumptions] table.
struct ParamSpec {
  const char* key;
  bool is_text;        // a profile name or a list of them, else a number
  double min, max;     // inclusive range for numbers
  const char* doc;     // one line, printed by --list-assumptions
};

// The schema: every key a scenario must give.
const std::vector<ParamSpec>& assumption_schema();

struct Scenario {
  std::string name;
  std::string description;
  std::string origin;               // file path
  std::vector<double> contexts;     // default context lengths (tokens) for this scenario
  std::vector<Assumption> assumptions;  // as in the file, sorted by key
  std::vector<PaperFigure> figures;     // empty for scenarios that reproduce nothing
  std::string paper;                    // citation of the reproduced paper, if any

  // Numeric assumption `key` (validated at load; an unknown key is a programming error).
  double num(std::string_view key) const;
  // Profile names of text assumption `key` (a string or an array of strings).
  const std::vector<std::string>& names(std::string_view key) const;
  // Overrides numeric assumption `key` (used by calibration and tests); false if unknown.
  bool set_num(std::string_view key, double value);

  std::map<std::string, double, std::less<>> numbers;
  std::map<std::string, std::vector<std::string>, std::less<>> texts;
};

// Reads and validates a scenario file.
Result<Scenario> load_scenario(const std::string& path);
// Same, from TOML text; `origin` names it in error messages.
Result<Scenario> parse_scenario(std::string_view toml_text, std::string_view origin);

}  // namespace cxlkv::sim
