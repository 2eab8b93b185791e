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

struct Options {
  ClientOptions client;
  std::string bulkd = "127.0.0.1:7400", json_path, csv_path;
  std::string profiles_path = std::string(CXLKV_SOURCE_ROOT) + "/emulation/fabric/profiles.toml";
  std::string kernels_path = std::string(CXLKV_SOURCE_ROOT) + "/docs/data/gpu-bench-h100-e8.json";
  std::vector<uint32_t> contexts = {8192, 16384, 32768, 65536, 131072};
  bench::RequestSpec spec;
  bench::ReportConfig config;
  uint32_t requests = 1, seed = 1, warmup = 1;
  bool no_verify = false;
};

Options default_options() {
  Options o;
  o.client.endpoint = "unix:/tmp/cxlkv-poold.sock";
  o.client.tenant = "bench";
  o.client.token = "bench";
  o.client.model = "deepseek-v3.2";
  o.spec.steps = 16;
  return o;
}

void add_options(CLI::App& app, Options& o) {
  app.add_option("--endpoint", o.client.endpoint, "pool daemon endpoint");
  app.add_option("--tenant", o.client.tenant, "tenant");
  app.add_option("--token", o.client.token, "tenant token");
  app.add_option("--model", o.client.model, "model");
  app.add_option("--bulkd", o.bulkd, "cxlkv-bulkd host:port serving the daemon's region");
  app.add_option("--contexts", o.contexts, "context lengths in tokens (whole pages)")->delimiter(',');
  app.add_option("--requests", o.requests, "requests per context (one at a time)");
  app.add_option("--topk", o.spec.topk, "top-k entries per layer per step");
  app.add_option("--steps", o.spec.steps, "decode steps S per request (the first is part of TTFT)")->check(CLI::Range(1u, 100000u));
  app.add_option("--overlap", o.spec.overlap, "step-to-step top-k overlap of the trace model")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", o.seed, "seed of prompts and traces");
  app.add_option("--warmup", o.warmup, "unrecorded requests at the smallest context first (first-touch costs)");
  app.add_option("--profiles", o.profiles_path, "hardware profiles (fabric model)");
  app.add_option("--kernels", o.kernels_path, "GPU gather rates measured elsewhere (gather_gbps, bulk_h2d_gbps); '' for none");
  app.add_option("--cxl-profile", o.config.cxl_profile, "CXL profile of the table and headline");
  app.add_option("--rdma-profile", o.config.rdma_profile, "RDMA profile of the table and headline");
  app.add_option("--json", o.json_path, "write the full results as JSON here");
  app.add_option("--csv", o.csv_path, "write the summary as CSV here");
  app.add_flag("--no-verify", o.no_verify, "skip byte-exact checks of the baseline's fetches");
}

// The report restates the request settings it was measured with.
void finish_options(Options& o) {
  o.spec.verify = !o.no_verify;
  o.config.steps = o.spec.steps;
  o.config.topk = o.spec.topk;
  o.config.requests = o.requests;
  o.config.overlap = o.spec.overlap;
}

// Loads the GPU gather rates measured elsewhere (none when --kernels is ''); returns 0, or the
// exit status after printing why.
int load_gpu_rates(Options& o, std::unique_ptr<bench::GpuRates>& gpu) {
  if (o.kernels_path.empty()) return 0;
  auto k = sim::load_kernel_rates(o.kernels_path);
  if (!k) return fail("--kernels", k.error());
  gpu = std::make_unique<bench::GpuRates>(bench::GpuRates{k->origin, k->device, k->gather_gbps, k->bulk_h2d_gbps});
  o.config.gpu_note = fmt::format("{:.1f} / {:.1f} GB/s measured on {} ({}), not on this machine", k->gather_gbps,
                                  k->bulk_h2d_gbps, k->device, o.kernels_path.substr(o.kernels_path.rfind("docs/") == std::string::npos
                                                                                          ? 0 : o.kernels_path.rfind("docs/")));
  return 0;
}

// Buffers for the largest context, allocated once, outside every timed region; returns 0, or the
// exit status after printing why.
int allocate_workspace(const PoolView& view, const Options& o, bench::Workspace& ws) {
  uint32_t max_ctx = 0;
  for (uint32_t x : o.contexts) max_ctx = std::max(max_ctx, x);
  const baseline::LocalLayout local = baseline::LocalLayout::of(view);
  const uint64_t max_pages = max_ctx / view.page_tokens;
  auto prefix = baseline::LocalBuffer::create(max_pages * local.page_bytes);
  auto rows = baseline::LocalBuffer::create(uint64_t{view.layers} * o.spec.topk * 4096);
  if (!prefix || !rows) return fail("local buffers", (prefix ? rows.status() : prefix.status()).to_string());
  ws.prefix = std::move(*prefix);
  ws.rows = std::move(*rows);
  return 0;
}

// What one request needs besides its context and number: the connections, the profiles its runs
// are projected on, the buffers and the progress line.
struct RequestRun {
  Client& client;
  baseline::TcpReader& reader;
  const fabric::Profiles& profiles;
  const bench::GpuRates* gpu;
  bench::Workspace& ws;
  bench::Progress& progress;
};

// Writes one prefix, runs the three designs over it, projects them and removes the prefix;
// warm-up requests (r ~0u - i) are left out of results. Returns 0, or the exit status after
// printing why.
int run_request(RequestRun& run, Options& o, uint32_t ctx, uint32_t r, std::vector<bench::RequestResult>& results) {
  bench::RequestSpec& spec = o.spec;
  Client& c = run.client;
  const bool warm = r >= ~0u - o.warmup;
  const std::string tag = warm ? fmt::format("{} warm-up", ctx_label(ctx)) : fmt::format("{} req {}", ctx_label(ctx), r);
  run.progress.show(tag + ": writing the prefix");
  spec.keys = c.page_keys(testing::synthetic_prompt(ctx, o.seed * 7919 + ctx + r));
  spec.seed = o.seed * 131 + ctx + r;
  if (spec.keys.empty()) return fail("--contexts", fmt::format("{} tokens make no whole page", ctx));
  auto w = testing::write_prefix(c, spec.keys);
  if (!w) return fail("write " + tag, w.status().to_string());
  run.progress.advance(tag + ": cxl-topk");
  bench::RequestResult rr{ctx, r, {}, {}};
  auto cxl = bench::measure_cxl_topk(c, spec, run.ws);
  if (!cxl) return fail("cxl-topk " + tag, cxl.status().to_string());
  run.progress.advance(tag + ": rdma-bulk (tcp)");
  auto bulk = bench::measure_rdma_bulk(c, run.reader, spec, run.ws);
  if (!bulk) return fail("rdma-bulk " + tag, bulk.status().to_string());
  run.progress.advance(tag + ": rdma-ranged (tcp)");
  auto ranged = bench::measure_rdma_ranged(c, run.reader, spec, run.ws);
  if (!ranged) return fail("rdma-ranged " + tag, ranged.status().to_string());
  for (auto* design_run : {&*cxl, &*bulk, &*ranged}) {
    rr.runs.push_back(*design_run);
    for (auto& [design, proj] : bench::project(run.profiles, *design_run, run.gpu)) rr.projected[design] = proj;
  }
  if (!warm) results.push_back(std::move(rr));
  auto removed = c.remove(spec.keys);
  if (!removed) return fail("remove " + tag, removed.status().to_string());
  run.progress.advance(tag + ": done");
  return 0;
}

// The table on stdout, then --json and --csv; returns 0, or the exit status after printing why.
int write_outputs(const Options& o, const std::vector<bench::RequestResult>& results) {
  const auto summary = bench::summarize(results);
  std::printf("%s", bench::table(summary, o.config).c_str());
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << bench::to_json(results, summary, o.config).dump(2) << "\n";
    if (!out) return fail("--json", "cannot write " + o.json_path);
  }
  if (!o.csv_path.empty()) {
    std::ofstream out(o.csv_path);
    out << bench::to_csv(summary, o.config);
    if (!out) return fail("--csv", "cannot write " + o.csv_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-bench: CXL top-k load/store vs RDMA bulk and ranged fetch, measured here and projected per profile"};
  Options o = default_options();
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  finish_options(o);

  auto profiles = fabric::load_profiles(o.profiles_path);
  if (!profiles) return fail("profiles", profiles.error());
  if (!profiles->link(o.config.cxl_profile)) return fail("--cxl-profile", profiles->link(o.config.cxl_profile).error());
  if (!profiles->link(o.config.rdma_profile)) return fail("--rdma-profile", profiles->link(o.config.rdma_profile).error());
  std::unique_ptr<bench::GpuRates> gpu;
  if (int status = load_gpu_rates(o, gpu); status != 0) return status;

  auto c = Client::connect(o.client);
  if (!c) return fail("connect to " + o.client.endpoint, c.status().to_string());
  auto reader = baseline::TcpReader::connect(o.bulkd);
  if (!reader) return fail("connect to cxlkv-bulkd " + o.bulkd, reader.status().to_string());

  bench::Workspace ws;
  if (int status = allocate_workspace((*c)->view(), o, ws); status != 0) return status;

  std::vector<bench::RequestResult> results;
  bench::Progress progress(int((o.contexts.size() * o.requests + o.warmup) * 4));
  std::vector<std::pair<uint32_t, uint32_t>> plan;  // (context, request); request ~0u = warm-up
  for (uint32_t i = 0; i < o.warmup; ++i) plan.push_back({*std::min_element(o.contexts.begin(), o.contexts.end()), ~0u - i});
  for (uint32_t ctx : o.contexts)
    for (uint32_t r = 0; r < o.requests; ++r) plan.push_back({ctx, r});
  RequestRun run{**c, **reader, *profiles, gpu.get(), ws, progress};
  for (auto [ctx, r] : plan)
    if (int status = run_request(run, o, ctx, r, results); status != 0) return status;
  progress.finish();

  return write_outputs(o, results);
}
