// cxlkv-bench's results and their output: the per-request runs with projections, the summary
// per (context, design) that the table, the CSV and scripts/plot-bench read, and the headline
// against the 10x TTFT bar. Called by main.cc; formatting only, no measuring.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "measure.h"
#include "projection.h"

namespace cxlkv::bench {

// One request of one context, every design.
struct RequestResult {
  uint32_t context = 0;  // tokens (whole pages)
  uint32_t request = 0;
  std::vector<DesignRun> runs;
  std::map<std::string, std::vector<Projected>> projected;  // design -> per profile
};

// Mean over the requests of one context, for one design.
struct SummaryRow {
  uint32_t context = 0;
  std::string design;
  bool measured = true;
  double ttft_bytes = 0, step_bytes = 0, ttft_messages = 0, step_messages = 0;
  double measured_ttft_s = 0, measured_step_s = 0, measured_tokens_per_s = 0;
  std::map<std::string, Projected> projected;  // profile -> projection
};

struct ReportConfig {
  std::string cxl_profile = "cxl-type3-ddr5";
  std::string rdma_profile = "rdma-400g";
  uint32_t steps = 0, topk = 0, requests = 0;
  double overlap = 0;
  std::string gpu_note;  // where the GPU rates came from, or "" if none
};

std::vector<SummaryRow> summarize(const std::vector<RequestResult>& results);
// The default profile of a design under `config` ("cxl-type3-ddr5" for cxl-*, "rdma-400g" for rdma-*).
const std::string& default_profile(const ReportConfig& config, const std::string& design);

// The human table, with the assumptions and the headline under it.
std::string table(const std::vector<SummaryRow>& rows, const ReportConfig& config);
nlohmann::json to_json(const std::vector<RequestResult>& results, const std::vector<SummaryRow>& rows, const ReportConfig& config);
std::string to_csv(const std::vector<SummaryRow>& rows, const ReportConfig& config);
// The assumptions every output states.
std::vector<std::string> assumptions(const ReportConfig& config);

}  // namespace cxlkv::bench
