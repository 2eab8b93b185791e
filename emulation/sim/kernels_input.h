// Measured GPU gather rates written by the GPU benchmark (kernels/), read with --kernels FILE:
//   {"gather_gbps": 50.1, "bulk_h2d_gbps": 55.0, "device": "H100"}
// Called by the CLI; designs.cc applies the rates to the PCIe hop in place of the profile's.
#pragma once

#include <string>
#include <string_view>

#include "fabric/result.h"

namespace cxlkv::sim {

using cxlkv::emu::Result;

struct KernelRates {
  std::string origin;
  std::string device;
  double gather_gbps = 0;
  double bulk_h2d_gbps = 0;  // 0 when the file has none
};

// Reads the file; a missing or non-positive gather_gbps is an error naming file and field.
Result<KernelRates> load_kernel_rates(const std::string& path);
Result<KernelRates> parse_kernel_rates(std::string_view json_text, std::string_view origin);

}  // namespace cxlkv::sim
