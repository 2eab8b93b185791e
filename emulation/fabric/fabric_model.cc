// Loading, validation and projection for the fabric model (see fabric_model.h).
#include "fabric_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace cxlkv::fabric {
namespace {

// One numeric field a profile kind must (or may) carry.
struct FieldSpec {
  const char* name;
  bool required;
  bool zero_allowed;
};

// Reads `field` of profile `kind.name` as { value = N, source = "..." }; writes it to *out.
// Returns an empty string or the error.
std::string read_number(const toml::table& profile, const std::string& where, const FieldSpec& spec,
                        double* out) {
  const toml::node* node = profile.get(spec.name);
  if (node == nullptr) {
    if (spec.required) return where + ": missing field '" + spec.name + "'";
    *out = 0;
    return {};
  }
  const toml::table* entry = node->as_table();
  if (entry == nullptr) {
    return where + ": field '" + spec.name + "' must be { value = <number>, source = \"...\" }";
  }
  const auto value = (*entry)["value"].value<double>();
  if (!value) return where + ": field '" + spec.name + "' has no numeric 'value'";
  const auto source = (*entry)["source"].value<std::string>();
  if (!source || source->empty()) {
    return where + ": field '" + spec.name + "' has no 'source' string (every number needs one)";
  }
  if (!std::isfinite(*value) || *value < 0 || (*value == 0 && !spec.zero_allowed)) {
    std::ostringstream msg;
    msg << where << ": field '" << spec.name << "' must be "
        << (spec.zero_allowed ? ">= 0" : "> 0") << ", found " << *value;
    return msg.str();
  }
  *out = *value;
  return {};
}

std::string read_gpu(const toml::table& t, const std::string& name, GpuProfile* gpu) {
  const std::string where = "profile gpu." + name;
  gpu->name = name;
  gpu->description = t["description"].value_or(std::string{});
  const std::pair<FieldSpec, double*> fields[] = {
      {{"hbm_gb", true, false}, &gpu->hbm_gb},
      {{"hbm_gbps", true, false}, &gpu->hbm_gbps},
      {{"bf16_tflops", true, false}, &gpu->bf16_tflops},
      {{"fp8_tflops", true, false}, &gpu->fp8_tflops},
  };
  for (const auto& [spec, out] : fields) {
    if (std::string err = read_number(t, where, spec, out); !err.empty()) return err;
  }
  return {};
}

std::string read_link(const toml::table& t, const std::string& kind_name, LinkKind kind,
                      const std::string& name, LinkProfile* link) {
  const std::string where = "profile " + kind_name + "." + name;
  link->name = name;
  link->kind = kind;
  link->description = t["description"].value_or(std::string{});
  const bool is_cxl = kind == LinkKind::kCxl;
  const bool is_rdma = kind == LinkKind::kRdma;
  const bool is_pcie = kind == LinkKind::kPcie;
  const std::pair<FieldSpec, double*> fields[] = {
      {{"bandwidth_gbps", true, false}, &link->bandwidth_gbps},
      {{"latency_ns", true, false}, &link->latency_ns},
      {{"gather_gbps", is_pcie, false}, &link->gather_gbps},
      {{"line_bytes", is_cxl, false}, &link->line_bytes},
      {{"message_rate_mps", is_rdma, false}, &link->message_rate_mps},
  };
  for (const auto& [spec, out] : fields) {
    if (std::string err = read_number(t, where, spec, out); !err.empty()) return err;
  }
  return {};
}

std::string known_names(const auto& map) {
  std::string names;
  for (const auto& [name, unused] : map) names += (names.empty() ? "" : ", ") + name;
  return names.empty() ? "(none)" : names;
}

}  // namespace

const char* to_string(LinkKind kind) {
  switch (kind) {
    case LinkKind::kCxl: return "cxl";
    case LinkKind::kRdma: return "rdma";
    case LinkKind::kPcie: return "pcie";
    case LinkKind::kDram: return "dram";
  }
  return "?";
}

Result<GpuProfile> Profiles::gpu(std::string_view name) const {
  auto it = gpus.find(std::string(name));
  if (it == gpus.end()) {
    return Result<GpuProfile>::fail("no GPU profile '" + std::string(name) + "' in " + origin +
                                    " (known: " + known_names(gpus) + ")");
  }
  return it->second;
}

Result<LinkProfile> Profiles::link(std::string_view name) const {
  auto it = links.find(std::string(name));
  if (it == links.end()) {
    return Result<LinkProfile>::fail("no link profile '" + std::string(name) + "' in " + origin +
                                     " (known: " + known_names(links) + ")");
  }
  return it->second;
}

Result<Profiles> parse_profiles(std::string_view toml_text, std::string_view origin) {
  using R = Result<Profiles>;
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ": TOML error at line " << e.source().begin.line << ": " << e.description();
    return R::fail(msg.str());
  }
  Profiles profiles;
  profiles.origin = std::string(origin);
  const std::pair<const char*, LinkKind> link_kinds[] = {
      {"cxl", LinkKind::kCxl}, {"rdma", LinkKind::kRdma},
      {"pcie", LinkKind::kPcie}, {"dram", LinkKind::kDram}};
  for (const auto& [key, node] : root) {
    const std::string kind(key.str());
    const toml::table* group = node.as_table();
    if (group == nullptr) return R::fail(profiles.origin + ": top-level '" + kind + "' is not a table");
    const bool is_gpu = kind == "gpu";
    const auto lk = std::find_if(std::begin(link_kinds), std::end(link_kinds),
                                 [&](const auto& p) { return kind == p.first; });
    if (!is_gpu && lk == std::end(link_kinds)) {
      return R::fail(profiles.origin + ": unknown profile kind '" + kind +
                     "' (expected gpu, cxl, rdma, pcie or dram)");
    }
    for (const auto& [pkey, pnode] : *group) {
      const std::string name(pkey.str());
      const toml::table* table = pnode.as_table();
      if (table == nullptr) return R::fail(profiles.origin + ": profile " + kind + "." + name + " is not a table");
      std::string err;
      if (is_gpu) {
        GpuProfile gpu;
        err = read_gpu(*table, name, &gpu);
        if (err.empty()) profiles.gpus.emplace(name, gpu);
      } else {
        if (profiles.links.count(name) != 0) {
          return R::fail(profiles.origin + ": link profile name '" + name + "' used twice");
        }
        LinkProfile link;
        err = read_link(*table, kind, lk->second, name, &link);
        if (err.empty()) profiles.links.emplace(name, link);
      }
      if (!err.empty()) return R::fail(profiles.origin + ": " + err);
    }
  }
  if (profiles.gpus.empty()) return R::fail(profiles.origin + ": no [gpu.*] profile");
  if (profiles.links.empty()) return R::fail(profiles.origin + ": no link profile");
  return profiles;
}

Result<Profiles> load_profiles(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Result<Profiles>::fail("cannot open profiles file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_profiles(text.str(), path);
}

namespace {
double rate_bytes_per_s(const LinkProfile& link, Pattern pattern) {
  const double gbps =
      (pattern == Pattern::kGather && link.gather_gbps > 0) ? link.gather_gbps : link.bandwidth_gbps;
  return gbps * 1e9;
}

double wire_bytes(const std::vector<Hop>& path, const OpCounts& ops) {
  double line = 0;
  for (const Hop& hop : path) line = std::max(line, hop.link.line_bytes);
  return std::max(ops.bytes, ops.lines * line);
}
}  // namespace

double path_rate_bytes_per_s(const std::vector<Hop>& path, Pattern pattern) {
  double rate = 0;
  for (const Hop& hop : path) {
    const double r = rate_bytes_per_s(hop.link, pattern) * hop.parallel;
    rate = (rate == 0) ? r : std::min(rate, r);
  }
  return rate;
}

double path_latency_s(const std::vector<Hop>& path) {
  double s = 0;
  for (const Hop& hop : path) s += hop.link.latency_ns * 1e-9;
  return s;
}

double project_seconds(const std::vector<Hop>& path, const OpCounts& ops) {
  if (path.empty()) return 0;
  const double rate = path_rate_bytes_per_s(path, ops.pattern);
  double transfer = rate > 0 ? wire_bytes(path, ops) / rate : 0;
  for (const Hop& hop : path) {
    if (hop.link.message_rate_mps > 0) {
      transfer = std::max(transfer, ops.messages / (hop.link.message_rate_mps * 1e6 * hop.parallel));
    }
  }
  return transfer + ops.round_trips * path_latency_s(path);
}

double project_seconds(const LinkProfile& link, const OpCounts& ops) {
  return project_seconds(std::vector<Hop>{Hop{link, 1}}, ops);
}

}  // namespace cxlkv::fabric
