// cxlkv-bench: one workload through three designs, side by side: CXL top-k by load/store (CPU
// gather here; the GPU gather projected from rates measured on an H100), the RDMA bulk-fetch
// baseline, and its ranged variant (both over cxlkv-bulkd; TCP on this machine). For each: bytes
// moved, operations, time measured here, time projected per hardware profile, TTFT on a cache hit,
// time per step and tokens/s. Needs a running cxlkv-poold and cxlkv-bulkd on the same region
// (scripts/bench-compare starts both). Writes a table to stdout, --json / --csv to files.
#include <cstdio>
#include <algorithm>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "fabric/fabric_model.h"
#include "measure.h"
#include "progress.h"
#include "projection.h"
#include "report.h"
#include "sim/kernels_input.h"
#include "tcp_reader.h"
#include "prefix_io.h"

#ifndef CXLKV_SOURCE_ROOT
#define CXLKV_SOURCE_ROOT "."
#endif

namespace {

using namespace cxlkv;

int fail(const std::string& what, const std::string& why) {
  std::fprintf(stderr, "\ncxlkv-bench: %s: %s\n", what.c_str(), why.c_str());
  return 1;
}

std::string ctx_label(uint32_t c) { return c % 1024 == 0 ? fmt::format("{}K", c / 1024) : std::to_string(c); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-bench: CXL top-k load/store vs RDMA bulk and ranged fetch, measured here and projected per profile"};
  ClientOptions client;
  client.endpoint = "unix:/tmp/cxlkv-poold.sock";
  client.tenant = "bench";
  client.token = "bench";
  client.model = "deepseek-v3.2";
  std::string bulkd = "127.0.0.1:7400", json_path, csv_path;
  std::string profiles_path = std::string(CXLKV_SOURCE_ROOT) + "/emulation/fabric/profiles.toml";
  std::string kernels_path = std::string(CXLKV_SOURCE_ROOT) + "/docs/data/gpu-bench-h100-e8.json";
  std::vector<uint32_t> contexts = {8192, 16384, 32768, 65536, 131072};
  bench::RequestSpec spec;
  spec.steps = 16;
  bench::ReportConfig config;
  uint32_t requests = 1, seed = 1, warmup = 1;
  bool no_verify = false;
  app.add_option("--endpoint", client.endpoint, "pool daemon endpoint");
  app.add_option("--tenant", client.tenant, "tenant");
  app.add_option("--token", client.token, "tenant token");
  app.add_option("--model", client.model, "model");
  app.add_option("--bulkd", bulkd, "cxlkv-bulkd host:port serving the daemon's region");
  app.add_option("--contexts", contexts, "context lengths in tokens (whole pages)")->delimiter(',');
  app.add_option("--requests", requests, "requests per context (one at a time)");
  app.add_option("--topk", spec.topk, "top-k entries per layer per step");
  app.add_option("--steps", spec.steps, "decode steps S per request (the first is part of TTFT)")->check(CLI::Range(1u, 100000u));
  app.add_option("--overlap", spec.overlap, "step-to-step top-k overlap of the trace model")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", seed, "seed of prompts and traces");
  app.add_option("--warmup", warmup, "unrecorded requests at the smallest context first (first-touch costs)");
  app.add_option("--profiles", profiles_path, "hardware profiles (fabric model)");
  app.add_option("--kernels", kernels_path, "GPU gather rates measured elsewhere (gather_gbps, bulk_h2d_gbps); '' for none");
  app.add_option("--cxl-profile", config.cxl_profile, "CXL profile of the table and headline");
  app.add_option("--rdma-profile", config.rdma_profile, "RDMA profile of the table and headline");
  app.add_option("--json", json_path, "write the full results as JSON here");
  app.add_option("--csv", csv_path, "write the summary as CSV here");
  app.add_flag("--no-verify", no_verify, "skip byte-exact checks of the baseline's fetches");
  CLI11_PARSE(app, argc, argv);
  spec.verify = !no_verify;
  config.steps = spec.steps;
  config.topk = spec.topk;
  config.requests = requests;
  config.overlap = spec.overlap;

  auto profiles = fabric::load_profiles(profiles_path);
  if (!profiles) return fail("profiles", profiles.error());
  if (!profiles->link(config.cxl_profile)) return fail("--cxl-profile", profiles->link(config.cxl_profile).error());
  if (!profiles->link(config.rdma_profile)) return fail("--rdma-profile", profiles->link(config.rdma_profile).error());
  std::unique_ptr<bench::GpuRates> gpu;
  if (!kernels_path.empty()) {
    auto k = sim::load_kernel_rates(kernels_path);
    if (!k) return fail("--kernels", k.error());
    gpu = std::make_unique<bench::GpuRates>(bench::GpuRates{k->origin, k->device, k->gather_gbps, k->bulk_h2d_gbps});
    config.gpu_note = fmt::format("{:.1f} / {:.1f} GB/s measured on {} ({}), not on this machine", k->gather_gbps,
                                  k->bulk_h2d_gbps, k->device, kernels_path.substr(kernels_path.rfind("docs/") == std::string::npos
                                                                                        ? 0 : kernels_path.rfind("docs/")));
  }

  auto c = Client::connect(client);
  if (!c) return fail("connect to " + client.endpoint, c.status().to_string());
  auto reader = baseline::TcpReader::connect(bulkd);
  if (!reader) return fail("connect to cxlkv-bulkd " + bulkd, reader.status().to_string());

  // Buffers for the largest context, allocated once, outside every timed region.
  uint32_t max_ctx = 0;
  for (uint32_t x : contexts) max_ctx = std::max(max_ctx, x);
  const PoolView& view = (*c)->view();
  const baseline::LocalLayout local = baseline::LocalLayout::of(view);
  bench::Workspace ws;
  const uint64_t max_pages = max_ctx / view.page_tokens;
  auto prefix = baseline::LocalBuffer::create(max_pages * local.page_bytes);
  auto rows = baseline::LocalBuffer::create(uint64_t{view.layers} * spec.topk * 4096);
  if (!prefix || !rows) return fail("local buffers", (prefix ? rows.status() : prefix.status()).to_string());
  ws.prefix = std::move(*prefix);
  ws.rows = std::move(*rows);

  std::vector<bench::RequestResult> results;
  bench::Progress progress(int((contexts.size() * requests + warmup) * 4));
  std::vector<std::pair<uint32_t, uint32_t>> plan;  // (context, request); request ~0u = warm-up
  for (uint32_t i = 0; i < warmup; ++i) plan.push_back({*std::min_element(contexts.begin(), contexts.end()), ~0u - i});
  for (uint32_t ctx : contexts)
    for (uint32_t r = 0; r < requests; ++r) plan.push_back({ctx, r});
  for (auto [ctx, r] : plan) {
    {
      const bool warm = r >= ~0u - warmup;
      const std::string tag = warm ? fmt::format("{} warm-up", ctx_label(ctx)) : fmt::format("{} req {}", ctx_label(ctx), r);
      progress.show(tag + ": writing the prefix");
      spec.keys = (*c)->page_keys(testing::synthetic_prompt(ctx, seed * 7919 + ctx + r));
      spec.seed = seed * 131 + ctx + r;
      if (spec.keys.empty()) return fail("--contexts", fmt::format("{} tokens make no whole page", ctx));
      auto w = testing::write_prefix(**c, spec.keys);
      if (!w) return fail("write " + tag, w.status().to_string());
      progress.advance(tag + ": cxl-topk");
      bench::RequestResult rr{ctx, r, {}, {}};
      auto cxl = bench::measure_cxl_topk(**c, spec, ws);
      if (!cxl) return fail("cxl-topk " + tag, cxl.status().to_string());
      progress.advance(tag + ": rdma-bulk (tcp)");
      auto bulk = bench::measure_rdma_bulk(**c, **reader, spec, ws);
      if (!bulk) return fail("rdma-bulk " + tag, bulk.status().to_string());
      progress.advance(tag + ": rdma-ranged (tcp)");
      auto ranged = bench::measure_rdma_ranged(**c, **reader, spec, ws);
      if (!ranged) return fail("rdma-ranged " + tag, ranged.status().to_string());
      for (auto* run : {&*cxl, &*bulk, &*ranged}) {
        rr.runs.push_back(*run);
        for (auto& [design, proj] : bench::project(*profiles, *run, gpu.get())) rr.projected[design] = proj;
      }
      if (!warm) results.push_back(std::move(rr));
      auto removed = (*c)->remove(spec.keys);
      if (!removed) return fail("remove " + tag, removed.status().to_string());
      progress.advance(tag + ": done");
    }
  }
  progress.finish();

  const auto summary = bench::summarize(results);
  std::printf("%s", bench::table(summary, config).c_str());
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << bench::to_json(results, summary, config).dump(2) << "\n";
    if (!out) return fail("--json", "cannot write " + json_path);
  }
  if (!csv_path.empty()) {
    std::ofstream out(csv_path);
    out << bench::to_csv(summary, config);
    if (!out) return fail("--csv", "cannot write " + csv_path);
  }
  return 0;
}
