// Scenario loading and validation (see scenario.h).
#include "scenario.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace cxlkv::sim {

const std::vector<ParamSpec>& assumption_schema() {
  static const std::vector<ParamSpec> kSchema = {
      {"gpu", true, 0, 0, "GPU profile of every decode GPU"},
      {"host_path", true, 0, 0, "links from host DRAM to a GPU (ESS-style offload), slowest hop first or any order"},
      {"cxl_path", true, 0, 0, "links from the CXL pool to a GPU (SAC-style and ours)"},
      {"rdma_path", true, 0, 0, "links from the remote RDMA pool to a GPU (bulk-fetch baseline)"},
      {"gpus_per_instance", false, 1, 4096, "GPUs whose throughput is summed (one decode instance)"},
      {"expert_parallel", false, 1, 4096, "GPUs the routed experts are spread over (EP degree)"},
      {"hbm_usable_fraction", false, 0.01, 1, "fraction of HBM for weights + cache (rest: activations, graphs, buffers)"},
      {"hbm_efficiency", false, 0.01, 1, "achieved fraction of the HBM bandwidth in decode kernels"},
      {"mma_efficiency", false, 0.01, 1, "achieved fraction of fp8 tensor rate in MoE/dense GEMMs"},
      {"attention_efficiency", false, 0.01, 1, "achieved fraction of tensor rate in sparse attention and indexer"},
      {"step_overhead_ms", false, 0, 1000, "fixed per-step time: launches, sampling, scheduler, EP all-to-all not overlapped"},
      {"ep_alltoall_gbps", false, 0, 1e5, "per-GPU rate of the MoE dispatch/combine all-to-all (NVLink in a node, NIC across nodes); 0: free"},
      {"ep_alltoall_overlap", false, 0, 1, "fraction of the all-to-all hidden under compute (two-batch overlap)"},
      {"max_batch_per_gpu", false, 1, 65536, "largest decode batch a GPU runs (CUDA graphs, scheduler cap)"},
      {"concurrency_per_gpu", false, 0, 65536, "requests offered per GPU (closed loop); 0: each design runs the largest batch it admits"},
      {"tbt_slo_ms", false, 0, 1e6, "largest time between tokens a design may run at (limits its batch); 0: none"},
      {"output_tokens", false, 1, 1e7, "tokens decoded per request (sets how often new requests join the batch)"},
      {"admission_stall_fraction", false, 0, 1, "fraction of a new request's prefix arrival that stalls the running batch"},
      {"lockstep_stalls", false, 0, 1, "1: a stall on one GPU stalls the instance (DP attention meets at every MoE all-to-all)"},
      {"topk_step_overlap", false, 0, 1, "fraction of a step's top-k entries that were in the previous step's top-k"},
      {"older_reuse", false, 0, 1, "fraction of the other entries that an unbounded buffer would still hold (re-selected older entries)"},
      {"cxl_devices_per_gpu", false, 0.001, 1024, "CXL devices interleaved behind one GPU's path (multiplies the CXL hop's rate)"},
      {"rdma_links_per_gpu", false, 0.001, 1024, "RDMA NICs per GPU (1/8: one NIC shared by an 8-GPU node)"},
      {"rdma_per_message_us", false, 0, 1e6, "software cost per RDMA transfer request on the fetch's critical path"},
      {"ess_gpu_keep_fraction", false, 0, 1, "ESS: fraction of each request's latent kept in the GPU LRU pool"},
      {"ess_transfer_overlap", false, 0, 1, "ESS: fraction of a step's compute that hides its miss transfers"},
      {"sac_transfer_overlap", false, 0, 1, "SAC-style: fraction of a step's compute that hides its top-k fetch"},
      {"ours_hot_buffer_topk", false, 0, 1e4, "ours: GPU hot buffer per request and layer, in multiples of top-k"},
      {"ours_transfer_overlap", false, 0, 1, "ours: fraction of a step's compute that hides its miss fetch"},
  };
  return kSchema;
}

double Scenario::num(std::string_view key) const {
  auto it = numbers.find(key);
  if (it == numbers.end()) {
    // The schema guarantees presence after load; reaching this is a programming error.
    std::fprintf(stderr, "scenario %s: numeric assumption '%.*s' not defined\n", name.c_str(),
                 static_cast<int>(key.size()), key.data());
    std::abort();
  }
  return it->second;
}

const std::vector<std::string>& Scenario::names(std::string_view key) const {
  auto it = texts.find(key);
  if (it == texts.end()) {
    std::fprintf(stderr, "scenario %s: text assumption '%.*s' not defined\n", name.c_str(),
                 static_cast<int>(key.size()), key.data());
    std::abort();
  }
  return it->second;
}

bool Scenario::set_num(std::string_view key, double value) {
  auto it = numbers.find(key);
  if (it == numbers.end()) return false;
  it->second = value;
  for (Assumption& a : assumptions) {
    if (a.key == key) {
      std::ostringstream text;
      text << value;
      a.value_text = text.str();
    }
  }
  return true;
}

namespace {

std::string format_number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Reads one [[figures]] entry; returns an error or empty.
std::string read_figure(const toml::table& t, const std::string& where, PaperFigure* f) {
  const auto metric = t["metric"].value<std::string>();
  const auto design = t["design"].value<std::string>();
  const auto baseline = t["baseline"].value<std::string>();
  const auto context = t["context"].value<double>();
  const auto value = t["value"].value<double>();
  const auto tolerance = t["tolerance"].value<double>();
  const auto source = t["source"].value<std::string>();
  if (!metric) return where + ": missing 'metric'";
  if (!design) return where + ": missing 'design'";
  if (!context || *context <= 0) return where + ": missing or non-positive 'context'";
  if (!value) return where + ": missing 'value'";
  if (!tolerance || *tolerance <= 0) return where + ": missing or non-positive 'tolerance'";
  if (!source) return where + ": missing 'source'";
  static const char* kMetrics[] = {"throughput_gain", "throughput_ratio", "ttft_ratio", "tbt_ratio",
                                   "throughput_tps", "batch_per_gpu"};
  if (std::find_if(std::begin(kMetrics), std::end(kMetrics),
                   [&](const char* m) { return *metric == m; }) == std::end(kMetrics)) {
    return where + ": unknown metric '" + *metric + "'";
  }
  f->metric = *metric;
  f->design = *design;
  f->baseline = baseline.value_or("");
  f->context = *context;
  f->value = *value;
  f->tolerance = *tolerance;
  f->calibrated = t["calibrated"].value_or(false);
  f->fit_key = t["fit"].value_or(std::string{});
  f->fit_min = t["fit_min"].value_or(0.0);
  f->fit_max = t["fit_max"].value_or(0.0);
  if (!f->fit_key.empty() && !(f->fit_min < f->fit_max)) {
    return where + ": 'fit' needs fit_min < fit_max";
  }
  f->source = *source;
  return {};
}

bool parse_design_name_ok(const std::string& n) {
  return n == "hbm" || n == "rdma-bulk" || n == "ess" || n == "sac" || n == "ours";
}

}  // namespace

Result<Scenario> parse_scenario(std::string_view toml_text, std::string_view origin) {
  using R = Result<Scenario>;
  const std::string where(origin);
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << where << ": TOML error at line " << e.source().begin.line << ": " << e.description();
    return R::fail(msg.str());
  }
  Scenario s;
  s.origin = where;
  s.name = root["name"].value_or(std::string{});
  if (s.name.empty()) return R::fail(where + ": missing top-level 'name'");
  s.description = root["description"].value_or(std::string{});
  s.paper = root["paper"].value_or(std::string{});
  if (const toml::array* ctx = root["contexts"].as_array()) {
    for (const auto& c : *ctx) {
      const auto v = c.value<double>();
      if (!v || *v < 1) return R::fail(where + ": 'contexts' must hold positive token counts");
      s.contexts.push_back(*v);
    }
  }
  if (s.contexts.empty()) s.contexts = {32768, 65536, 131072};

  const toml::table* assumptions = root["assumptions"].as_table();
  if (assumptions == nullptr) return R::fail(where + ": missing [assumptions] table");
  const auto& schema = assumption_schema();
  for (const auto& [key, node] : *assumptions) {
    const std::string k(key.str());
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&](const ParamSpec& p) { return k == p.key; });
    if (spec == schema.end()) return R::fail(where + ": unknown assumption '" + k + "'");
    const toml::table* entry = node.as_table();
    if (entry == nullptr) return R::fail(where + ": assumption '" + k + "' must be { value = ..., why = \"...\" }");
    const auto why = (*entry)["why"].value<std::string>();
    if (!why || why->empty()) return R::fail(where + ": assumption '" + k + "' has no 'why'");
    Assumption a{k, "", *why, (*entry)["calibrated"].value_or(false)};
    const toml::node* value = entry->get("value");
    if (value == nullptr) return R::fail(where + ": assumption '" + k + "' has no 'value'");
    if (spec->is_text) {
      std::vector<std::string> names;
      if (auto text = value->value<std::string>()) {
        names.push_back(*text);
      } else if (const toml::array* arr = value->as_array()) {
        for (const auto& item : *arr) {
          auto text_item = item.value<std::string>();
          if (!text_item) return R::fail(where + ": assumption '" + k + "' must list profile names");
          names.push_back(*text_item);
        }
      }
      if (names.empty()) return R::fail(where + ": assumption '" + k + "' must name a profile");
      for (const auto& n : names) a.value_text += (a.value_text.empty() ? "" : " + ") + n;
      s.texts[k] = names;
    } else {
      const auto v = value->value<double>();
      if (!v) return R::fail(where + ": assumption '" + k + "' must be a number");
      if (!std::isfinite(*v) || *v < spec->min || *v > spec->max) {
        return R::fail(where + ": assumption '" + k + "' = " + format_number(*v) + " is outside [" +
                       format_number(spec->min) + ", " + format_number(spec->max) + "]");
      }
      a.value_text = format_number(*v);
      s.numbers[k] = *v;
    }
    s.assumptions.push_back(std::move(a));
  }
  for (const ParamSpec& p : schema) {
    const bool present = p.is_text ? s.texts.count(p.key) != 0 : s.numbers.count(p.key) != 0;
    if (!present) return R::fail(where + ": missing assumption '" + std::string(p.key) + "' (" + p.doc + ")");
  }
  std::sort(s.assumptions.begin(), s.assumptions.end(),
            [](const Assumption& a, const Assumption& b) { return a.key < b.key; });

  if (const toml::array* figs = root["figures"].as_array()) {
    int i = 0;
    for (const auto& node : *figs) {
      const toml::table* t = node.as_table();
      const std::string fw = where + ": figures[" + std::to_string(i++) + "]";
      if (t == nullptr) return R::fail(fw + " is not a table");
      PaperFigure f;
      if (std::string err = read_figure(*t, fw, &f); !err.empty()) return R::fail(err);
      if (!f.fit_key.empty() && s.numbers.count(f.fit_key) == 0) {
        return R::fail(fw + ": 'fit' names '" + f.fit_key + "', not a numeric assumption");
      }
      if (!parse_design_name_ok(f.design) || (!f.baseline.empty() && !parse_design_name_ok(f.baseline))) {
        return R::fail(fw + ": unknown design '" + f.design + "' or baseline '" + f.baseline +
                       "' (hbm, rdma-bulk, ess, sac, ours)");
      }
      s.figures.push_back(f);
    }
  }
  return s;
}

Result<Scenario> load_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Result<Scenario>::fail("cannot open scenario file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path);
}

}  // namespace cxlkv::sim
