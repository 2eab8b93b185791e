// cxlkv-sim: the decode-stage simulator's command line. Parses options, loads profiles, scenario
// and (optionally) measured kernel rates, evaluates the designs or reproduces a paper, and prints
// a table, JSON or CSV. All modelling lives in the other units of emulation/sim/.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "designs.h"
#include "fabric/fabric_model.h"
#include "kernels_input.h"
#include "report.h"
#include "reproduce.h"
#include "scenario.h"

#ifndef CXLKV_DATA_SOURCE_DIR
#define CXLKV_DATA_SOURCE_DIR "emulation"
#endif
#ifndef CXLKV_DATA_INSTALL_DIR
#define CXLKV_DATA_INSTALL_DIR "/usr/local/share/cxlkv"
#endif

namespace {

// The first of the candidates that exists, else the first.
std::string first_existing(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (std::filesystem::exists(c)) return c;
  }
  return candidates.front();
}

std::string default_profiles() {
  return first_existing({std::string(CXLKV_DATA_SOURCE_DIR) + "/fabric/profiles.toml",
                         std::string(CXLKV_DATA_INSTALL_DIR) + "/profiles.toml"});
}

std::string default_scenario(const std::string& name) {
  return first_existing({std::string(CXLKV_DATA_SOURCE_DIR) + "/sim/scenarios/" + name + ".toml",
                         std::string(CXLKV_DATA_INSTALL_DIR) + "/scenarios/" + name + ".toml"});
}

int fail(const std::string& message) {
  std::cerr << "cxlkv-sim: " << message << "\n";
  return 2;
}

struct Options {
  std::string profiles_path = default_profiles();
  std::string scenario_path;
  std::string reproduce;
  std::string kernels_path;
  std::vector<double> contexts;
  std::vector<std::string> design_names;
  bool json = false, csv = false, calibrate = false, list_assumptions = false;
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("--profiles", o.profiles_path, "hardware profiles TOML (fabric model)")
      ->capture_default_str();
  app.add_option("--scenario", o.scenario_path,
                 "scenario TOML with the [assumptions] (default: scenarios/default.toml, or "
                 "scenarios/<paper>.toml with --reproduce)");
  app.add_option("--reproduce", o.reproduce,
                 "reproduce a seed paper's published figures: ess or sac; prints the paper's "
                 "figure, the model's and the error; exits 1 if one is outside its tolerance")
      ->check(CLI::IsMember({"ess", "sac"}));
  app.add_flag("--calibrate", o.calibrate,
               "with --reproduce: refit the calibrated assumptions (bisection on the figures marked "
               "'fit') before checking, and print the fitted values");
  app.add_option("--contexts", o.contexts, "context lengths in tokens, comma separated "
                 "(default: the scenario's, e.g. 32768,65536,131072)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--designs", o.design_names, "designs to evaluate, comma separated "
                 "(default: hbm,rdma-bulk,ess,sac,ours)")
      ->delimiter(',')
      ->check(CLI::IsMember({"hbm", "rdma-bulk", "ess", "sac", "ours"}));
  app.add_option("--kernels", o.kernels_path,
                 "JSON of measured GPU gather rates written by the GPU benchmark, e.g. "
                 "{\"gather_gbps\": 50.1, \"bulk_h2d_gbps\": 55.0, \"device\": \"H100\"}; replaces "
                 "the PCIe profile's gather (and bulk) rate, and the report says so");
  app.add_flag("--json", o.json, "print JSON instead of a table");
  app.add_flag("--csv", o.csv, "print CSV instead of a table");
  app.add_flag("--list-assumptions", o.list_assumptions,
               "print every assumption a scenario must define, with its meaning, and exit");
}

void print_assumptions() {
  for (const auto& p : cxlkv::sim::assumption_schema()) {
    std::cout << p.key << (p.is_text ? " (profile names)" : "") << ": " << p.doc << "\n";
  }
}

// --reproduce: the paper's figures against the model's, refitted first with --calibrate; exits 1
// when a figure is outside its tolerance.
int run_reproduction(cxlkv::sim::Environment& env, const Options& o) {
  using namespace cxlkv;
  if (env.scenario.figures.empty()) {
    return fail("scenario " + o.scenario_path + " has no [[figures]] to reproduce");
  }
  if (o.calibrate) {
    for (const auto& fit : sim::calibrate(&env)) {
      std::cerr << "calibrated " << fit.key << ": " << fit.before << " -> " << fit.after
                << (fit.converged ? "" : " (no solution in range; kept)") << "\n";
    }
  }
  const sim::Reproduction r = sim::reproduce(env);
  if (o.json) {
    sim::print_reproduction_json(std::cout, env, r);
  } else {
    sim::print_reproduction(std::cout, env, r);
  }
  return r.all_within ? 0 : 1;
}

// Every chosen design at every context (the scenario's unless --contexts).
int run_designs(const cxlkv::sim::Environment& env, const Options& o) {
  using namespace cxlkv;
  const sim::RunInfo info{o.profiles_path, o.scenario_path};
  std::vector<double> contexts = o.contexts;
  if (contexts.empty()) contexts = env.scenario.contexts;
  std::vector<sim::DesignId> designs;
  for (const auto& n : o.design_names) designs.push_back(*sim::parse_design(n));
  if (designs.empty()) designs = sim::all_designs();
  std::vector<sim::DesignPoint> points;
  for (double ctx : contexts) {
    for (sim::DesignId d : designs) points.push_back(sim::evaluate(env, d, ctx));
  }
  if (o.json) {
    sim::print_json(std::cout, env, info, points);
  } else if (o.csv) {
    sim::print_csv(std::cout, points);
  } else {
    sim::print_table(std::cout, env, info, points);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cxlkv;
  CLI::App app{
      "cxlkv-sim: projects decode throughput, TBT and TTFT of DeepSeek-V3.2 sparse-attention\n"
      "serving for five KV-cache designs (hbm, rdma-bulk, ess, sac, ours) from hardware profiles\n"
      "and a scenario of stated assumptions. Every figure it prints is a model projection.\n"
      "Exit status: 0 ok; 1 a --reproduce figure outside its tolerance; 2 bad input."};
  Options o;
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);

  if (o.list_assumptions) {
    print_assumptions();
    return 0;
  }
  if (o.json && o.csv) return fail("--json and --csv exclude each other");
  if (o.calibrate && o.reproduce.empty()) return fail("--calibrate needs --reproduce ess|sac");
  if (o.scenario_path.empty()) o.scenario_path = default_scenario(o.reproduce.empty() ? "default" : o.reproduce);

  auto profiles = fabric::load_profiles(o.profiles_path);
  if (!profiles) return fail(profiles.error());
  auto scenario = sim::load_scenario(o.scenario_path);
  if (!scenario) return fail(scenario.error());
  std::optional<sim::KernelRates> kernels;
  if (!o.kernels_path.empty()) {
    auto k = sim::load_kernel_rates(o.kernels_path);
    if (!k) return fail(k.error());
    kernels = k.value();
  }
  auto env = sim::make_environment(scenario.value(), profiles.value(), kernels);
  if (!env) return fail(env.error());

  return o.reproduce.empty() ? run_designs(env.value(), o) : run_reproduction(env.value(), o);
}
