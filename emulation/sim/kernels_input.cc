// Measured GPU gather rates (see kernels_input.h).
#include "kernels_input.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace cxlkv::sim {

Result<KernelRates> parse_kernel_rates(std::string_view json_text, std::string_view origin) {
  using R = Result<KernelRates>;
  const std::string where(origin);
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return R::fail(where + ": not a JSON object");
  KernelRates k;
  k.origin = where;
  if (!j.contains("gather_gbps") || !j["gather_gbps"].is_number()) {
    return R::fail(where + ": missing numeric field 'gather_gbps'");
  }
  k.gather_gbps = j["gather_gbps"].get<double>();
  if (!(k.gather_gbps > 0)) {
    return R::fail(where + ": field 'gather_gbps' must be > 0, found " + std::to_string(k.gather_gbps));
  }
  if (j.contains("bulk_h2d_gbps")) {
    if (!j["bulk_h2d_gbps"].is_number() || !(j["bulk_h2d_gbps"].get<double>() > 0)) {
      return R::fail(where + ": field 'bulk_h2d_gbps' must be a number > 0");
    }
    k.bulk_h2d_gbps = j["bulk_h2d_gbps"].get<double>();
  }
  if (j.contains("device") && j["device"].is_string()) k.device = j["device"].get<std::string>();
  return k;
}

Result<KernelRates> load_kernel_rates(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Result<KernelRates>::fail("cannot open kernels file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_kernel_rates(text.str(), path);
}

}  // namespace cxlkv::sim
