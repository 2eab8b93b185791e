// cxlkv-bench-gpu: GPU top-k gather from a registered pool region, in one run on the device:
//   bulk host-to-device copy rate (the ceiling), the decode-step pattern (batch x layers, top-k
//   per request over 128K-token prefixes in slabs from the real allocator), the stress pattern
//   (k uniformly random entries over the pool, unsorted and sorted), and the hot buffer on
//   overlapping traces. Every kernel output is compared byte for byte with the CPU reference.
// Prints tables; --json writes every figure (the simulator reads gather_gbps / bulk_h2d_gbps).
#include <CLI/CLI.hpp>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <tuple>

#include "cuda_or_die.h"
#include "gather.h"
#include "gpu_region.h"
#include "hot_buffer.h"
#include "reference.h"
#include "pool_workload.h"

using namespace cxlkv;
using namespace cxlkv::kernels;
namespace bench = cxlkv::testing;  // the pool workload and top-k traces, from testkit/
using json = nlohmann::json;

namespace {

template <typename T>
T* device_copy(const std::vector<T>& v) {
  T* d = nullptr;
  CUDA_OR_DIE(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
  if (!v.empty()) CUDA_OR_DIE(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

struct Timer {
  cudaEvent_t a, b;
  Timer() { CUDA_OR_DIE(cudaEventCreate(&a)); CUDA_OR_DIE(cudaEventCreate(&b)); }
  ~Timer() { cudaEventDestroy(a); cudaEventDestroy(b); }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Times `launch` reps times (after 3 warm-ups), rotating over sets; returns median seconds.
template <typename F>
double time_median(int reps, int sets, F&& launch) {
  Timer t;
  for (int i = 0; i < 3; ++i) launch(i % sets);
  CUDA_OR_DIE(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    CUDA_OR_DIE(cudaEventRecord(t.a));
    launch(i % sets);
    CUDA_OR_DIE(cudaEventRecord(t.b));
    CUDA_OR_DIE(cudaEventSynchronize(t.b));
    float m = 0;
    CUDA_OR_DIE(cudaEventElapsedTime(&m, t.a, t.b));
    ms.push_back(m);
  }
  return median(ms) / 1e3;
}

// A batch of gather segments with R index sets, on the device and on the host (for reference).
struct GatherCase {
  uint32_t segments = 0, k = 0;
  std::vector<std::vector<int32_t>> host_indices;        // [set][segment x k]
  std::vector<std::vector<GatherSegment>> host_segments; // [set][segment], host pointers
  std::vector<GatherSegment*> device_segments;           // [set]
  std::vector<int32_t*> device_indices;
  uint8_t* device_out = nullptr;
  GatherOrderScratch order;  // for the ordered variants (k <= kMaxOrderedK)
  uint64_t valid_entries = 0;  // per launch (set 0)
};

struct Bench {
  bench::PoolWorkload* w = nullptr;
  const uint8_t* dev_pool = nullptr;
  StreamShape shape;
  std::vector<uint64_t*> dev_page_base;  // per prefix
  std::vector<uint64_t> all_pages;       // concatenated block table (stress)
  uint64_t* dev_all_pages = nullptr;
  uint32_t* dev_errors = nullptr;
  double bulk_gbps = 0;
  // Split rows (--split): each prefix's latent_scales stream, [prefix][layer][token][16 B], on the
  // host (for the reference) and in GPU memory (what a decode worker fetches in bulk at admission).
  std::vector<uint8_t> host_side;
  uint8_t* dev_side = nullptr;
  uint64_t side_layer_bytes = 0;  // one prefix's one layer
  uint32_t layers = 0;
  json out;
};

// Builds a case: segment s uses page table `tables[s]` (host, device) with `pages` pages, layer
// layers[s], and index set generator gen(set, s).
template <typename Gen>
GatherCase make_case(Bench& b, uint32_t segments, uint32_t k, int sets,
                     const std::vector<std::pair<const uint64_t*, const uint64_t*>>& tables,
                     const std::vector<uint32_t>& pages, const std::vector<uint32_t>& layers, Gen&& gen,
                     const std::vector<uint32_t>& prefix_of = {}) {
  GatherCase c;
  c.segments = segments;
  c.k = k;
  CUDA_OR_DIE(cudaMalloc(&c.device_out, uint64_t{segments} * k * b.shape.row_bytes()));
  if (k <= kMaxOrderedK) {
    CUDA_OR_DIE(cudaMalloc(&c.order.indices, uint64_t{segments} * k * sizeof(int32_t)));
    CUDA_OR_DIE(cudaMalloc(&c.order.rows, uint64_t{segments} * k * sizeof(uint32_t)));
    CUDA_OR_DIE(cudaMalloc(&c.order.segments, uint64_t{segments} * sizeof(GatherSegment)));
  }
  for (int set = 0; set < sets; ++set) {
    std::vector<int32_t> idx;
    idx.reserve(uint64_t{segments} * k);
    for (uint32_t s = 0; s < segments; ++s) {
      auto v = gen(set, s);
      idx.insert(idx.end(), v.begin(), v.end());
    }
    int32_t* d_idx = device_copy(idx);
    std::vector<GatherSegment> hs(segments), ds(segments);
    for (uint32_t s = 0; s < segments; ++s) {
      hs[s] = GatherSegment{tables[s].first, nullptr, nullptr, pages[s], layers[s], k, 0};
      ds[s] = GatherSegment{tables[s].second, d_idx + uint64_t{s} * k, c.device_out + uint64_t{s} * k * b.shape.row_bytes(),
                            pages[s], layers[s], k, 0};
      if (b.shape.side_bytes) {
        const uint64_t at = (uint64_t{prefix_of.at(s)} * b.layers + layers[s]) * b.side_layer_bytes;
        hs[s].side = b.host_side.data() + at;
        ds[s].side = b.dev_side + at;
      }
    }
    c.host_indices.push_back(std::move(idx));
    c.host_segments.push_back(std::move(hs));
    c.device_segments.push_back(device_copy(ds));
    c.device_indices.push_back(d_idx);
  }
  for (int32_t i : c.host_indices[0]) c.valid_entries += i >= 0;
  return c;
}

void free_case(GatherCase& c) {
  cudaFree(c.device_out);
  cudaFree(c.order.indices);
  cudaFree(c.order.rows);
  cudaFree(c.order.segments);
  for (auto* p : c.device_segments) cudaFree(p);
  for (auto* p : c.device_indices) cudaFree(p);
}

// Runs set 0 once on poisoned output and compares every byte with the CPU reference.
template <typename F>
bool verify(Bench& b, GatherCase& c, F&& launch) {
  const uint64_t bytes = uint64_t{c.segments} * c.k * b.shape.row_bytes();
  CUDA_OR_DIE(cudaMemset(c.device_out, 0xA5, bytes));
  CUDA_OR_DIE(cudaMemset(b.dev_errors, 0, sizeof(uint32_t)));
  launch(0);
  CUDA_OR_DIE(cudaDeviceSynchronize());
  std::vector<uint8_t> got(bytes), want(bytes, 0xA5);
  CUDA_OR_DIE(cudaMemcpy(got.data(), c.device_out, bytes, cudaMemcpyDeviceToHost));
  auto segs = c.host_segments[0];
  for (uint32_t s = 0; s < c.segments; ++s) {
    segs[s].indices = c.host_indices[0].data() + uint64_t{s} * c.k;
    segs[s].out = want.data() + uint64_t{s} * c.k * b.shape.row_bytes();
  }
  reference_gather(b.w->region->base(), b.shape, segs.data(), c.segments);
  uint32_t errors = 0;
  CUDA_OR_DIE(cudaMemcpy(&errors, b.dev_errors, sizeof errors, cudaMemcpyDeviceToHost));
  return got == want && errors == 0;
}

struct Variant {
  std::string name;
  GatherTuning tuning;
  bool warp_per_entry = false;
  bool ordered = false;  // launch_order_segments first, timed with the gather
  bool bulk = false;     // launch_gather_topk_bulk with bulk_tuning
  BulkGatherTuning bulk_tuning{};
};

std::vector<Variant> variants() {
  std::vector<Variant> v{{"warp/entry", {}, true}};
  for (uint32_t threads : {256u, 512u})
    for (uint32_t loads : {2u, 4u, 8u})
      v.push_back({fmt::format("flat t{} l{}", threads, loads), GatherTuning{threads, loads, 8, 0}, false});
  for (uint32_t epb : {16u, 32u, 64u})
    for (uint32_t loads : {4u, 8u})
      v.push_back({fmt::format("window t256 l{} e{}", loads, epb), GatherTuning{256, loads, 8, epb}, false});
  v.push_back({"window t256 l8 e16 il", GatherTuning{256, 8, 8, 16, true}, false});
  for (uint32_t epb : {0u, 16u, 64u})
    for (uint32_t loads : {4u, 8u})
      v.push_back({fmt::format("ordered il t256 l{} e{}", loads, epb), GatherTuning{256, loads, 8, epb, true}, false, true});
  // Bulk copy unit: copiers per SM = threads x blocks, each with `stages` entries in flight. A
  // sweep of 14 shapes (64-256 entries in flight per SM, ordered or not) all landed at 18-22 GB/s
  // on an H100 (docs/performance.md); these three stand for it.
  for (auto [threads, stages, blocks, ordered] : {std::tuple{32u, 2u, 4u, false}, {128u, 1u, 2u, false}, {64u, 4u, 1u, true}})
    v.push_back({fmt::format("bulk{} t{} s{} b{}", ordered ? " ordered" : "", threads, stages, blocks), {}, false, ordered,
                 true, BulkGatherTuning{threads, stages, blocks, true}});
  return v;
}

void launch_variant(Bench& b, GatherCase& c, const Variant& v, int set) {
  if (v.warp_per_entry) {
    CUDA_OR_DIE(launch_gather_topk_warp_per_entry(b.dev_pool, b.shape, c.device_segments[set], c.segments, c.k, b.dev_errors, 0));
    return;
  }
  const GatherSegment* segs = c.device_segments[set];
  if (v.ordered) {
    CUDA_OR_DIE(launch_order_segments(segs, c.segments, c.k, c.order, 0));
    segs = c.order.segments;
  }
  if (v.bulk) CUDA_OR_DIE(launch_gather_topk_bulk(b.dev_pool, b.shape, segs, c.segments, c.k, b.dev_errors, v.bulk_tuning, 0));
  else CUDA_OR_DIE(launch_gather_topk(b.dev_pool, b.shape, segs, c.segments, c.k, b.dev_errors, v.tuning, 0));
}

// Times every variant on a case, verifies the yardstick and the best; returns the JSON row.
json run_case(Bench& b, GatherCase& c, const std::string& label, int reps, int sets) {
  json row = {{"case", label}, {"entries", c.valid_entries}, {"bytes", c.valid_entries * b.shape.entry_bytes}};
  double best_gbps = 0, yard_gbps = 0;
  std::string best_name;
  Variant best{};
  for (const auto& v : variants()) {
    if (v.ordered && !c.order.indices) continue;
    if (b.shape.side_bytes && (v.warp_per_entry || v.bulk)) continue;  // they build whole-entry rows only
    auto launch = [&](int set) { launch_variant(b, c, v, set); };
    const double s = time_median(reps, sets, launch);
    const double gbps = c.valid_entries * b.shape.entry_bytes / s / 1e9;
    row["variants"][v.name] = {{"us", s * 1e6}, {"gbps", gbps}};
    if (v.warp_per_entry) {
      yard_gbps = gbps;
      if (!verify(b, c, launch)) { fmt::print(stderr, "MISMATCH: {} {}\n", label, v.name); std::exit(2); }
    } else if (gbps > best_gbps) {
      best_gbps = gbps, best_name = v.name, best = v;
    }
  }
  const bool ok = verify(b, c, [&](int set) { launch_variant(b, c, best, set); });
  if (!ok) { fmt::print(stderr, "MISMATCH: {} {}\n", label, best_name); std::exit(2); }
  row["best"] = best_name;
  row["gbps"] = best_gbps;
  row["ratio_to_bulk"] = best_gbps / b.bulk_gbps;
  row["yardstick_gbps"] = yard_gbps;
  row["verified"] = true;
  const double us = c.valid_entries * b.shape.entry_bytes / best_gbps / 1e3;
  fmt::print("{:<34} {:>9} {:>9.1f} {:>8.1f} {:>7.2f} {:>9.1f} {:>8.1f}  {} ok\n", label, c.valid_entries, us,
             best_gbps, best_gbps / b.bulk_gbps, c.valid_entries / us, yard_gbps, best_name);
  return row;
}

// The copy-engine alternative: one cudaMemcpyBatchAsync of every selected entry (656 B each).
// Measured beside the kernels so the choice of SM loads over copy engines is a measured one.
json run_copy_engine(Bench& b, GatherCase& c, int reps, int sets) {
  std::vector<std::vector<void*>> dsts(sets);
  std::vector<std::vector<const void*>> srcs(sets);
  std::vector<std::vector<size_t>> sizes(sets);
  for (int set = 0; set < sets; ++set)
    for (uint32_t s = 0; s < c.segments; ++s) {
      const GatherSegment& seg = c.host_segments[set][s];
      for (uint32_t i = 0; i < c.k; ++i) {
        const int32_t idx = c.host_indices[set][uint64_t{s} * c.k + i];
        if (idx < 0) continue;
        srcs[set].push_back(b.w->region->base() + seg.page_base[idx >> b.shape.page_shift] +
                            uint64_t{seg.layer} * b.shape.layer_step + uint64_t(idx & 63) * b.shape.stride);
        dsts[set].push_back(c.device_out + (uint64_t{s} * c.k + i) * b.shape.entry_bytes);
        sizes[set].push_back(b.shape.entry_bytes);
      }
    }
  cudaMemcpyAttributes attr{};
  attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  size_t attr_index = 0;
  cudaStream_t stream;
  CUDA_OR_DIE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto launch = [&](int set) {
    CUDA_OR_DIE(cudaMemcpyBatchAsync(dsts[set].data(), srcs[set].data(), sizes[set].data(), sizes[set].size(), &attr,
                                 &attr_index, 1, stream));
  };
  for (int i = 0; i < 2; ++i) launch(i % sets);
  CUDA_OR_DIE(cudaStreamSynchronize(stream));
  std::vector<double> wall;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    launch(i % sets);
    CUDA_OR_DIE(cudaStreamSynchronize(stream));
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  CUDA_OR_DIE(cudaStreamDestroy(stream));
  const double s = median(wall);
  const double gbps = c.valid_entries * b.shape.entry_bytes / s / 1e9;
  fmt::print("{:<34} {:>9} {:>9.1f} {:>8.1f} {:>7.2f}  copy engine, one cudaMemcpyBatchAsync (wall time)\n", "  same, copy engines",
             c.valid_entries, s * 1e6, gbps, gbps / b.bulk_gbps);
  return {{"us", s * 1e6}, {"gbps", gbps}};
}

// Every command-line setting; --split changes some defaults (apply_split_defaults).
struct Options {
  double pool_gib = 32;
  uint32_t slab_pages = 1, stride = 656, entry_bytes = 656, context = 131072, topk = 2048, steps = 32, max_prefixes = 64;
  int reps = 20, sets = 4;
  std::vector<uint32_t> batches = {1, 16, 64}, all_layer_batches = {1, 16};
  std::vector<uint32_t> stress_k = {2048, 16384, 131072, 1048576};
  std::vector<double> overlaps = {0.5, 0.8, 0.95};
  uint32_t hot_requests = 16, hot_factor = 3;
  bool skip_stress = false, skip_hot = false, copy_engine = false, dense_probe = false, split = false;
  std::vector<uint32_t> spacings;
  std::string json_path, backing = "shm";
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("--pool-gib", o.pool_gib, "Pool region size, GiB")->capture_default_str();
  app.add_option("--slab-pages", o.slab_pages, "Pages per slab (E)")->capture_default_str();
  app.add_option("--stride", o.stride, "Latent entry stride in the pool, bytes (656 = packed, 704 = 11 lines)")->capture_default_str();
  app.add_option("--entry-bytes", o.entry_bytes,
                 "Bytes gathered per entry from the start of its slot (<= stride, a multiple of 16; 640 with "
                 "stride 768 = five whole 128 B lines)")->capture_default_str();
  app.add_option("--context", o.context, "Prefix length, tokens")->capture_default_str();
  app.add_option("--topk", o.topk, "Entries per request per layer")->capture_default_str();
  app.add_option("--batches", o.batches, "Decode batches, one layer")->delimiter(',')->capture_default_str();
  app.add_option("--all-layer-batches", o.all_layer_batches, "Decode batches, all layers in one launch")->delimiter(',')->capture_default_str();
  app.add_option("--stress-k", o.stress_k, "Stress pattern: uniformly random entries over the pool")->delimiter(',')->capture_default_str();
  app.add_option("--overlaps", o.overlaps, "Hot buffer: step-to-step top-k overlap")->delimiter(',')->capture_default_str();
  app.add_option("--hot-requests", o.hot_requests, "Hot buffer: requests")->capture_default_str();
  app.add_option("--hot-factor", o.hot_factor, "Hot buffer rows = factor x top-k")->capture_default_str();
  app.add_option("--steps", o.steps, "Hot buffer: decode steps per trace")->capture_default_str();
  app.add_option("--reps", o.reps, "Timed repetitions (median reported)")->capture_default_str();
  app.add_option("--sets", o.sets, "Index sets rotated between repetitions (defeats L2 reuse)")->capture_default_str();
  app.add_option("--max-prefixes", o.max_prefixes, "Distinct prefixes allocated at most")->capture_default_str();
  app.add_option("--json", o.json_path, "Write every figure to this JSON file");
  app.add_option("--backing", o.backing, "shm, or a file path for the file backend (e.g. on hugetlbfs)")->capture_default_str();
  app.add_flag("--skip-stress", o.skip_stress, "Leave out the stress pattern");
  app.add_flag("--skip-hot", o.skip_hot, "Leave out the hot buffer traces");
  app.add_flag("--dense-probe", o.dense_probe, "Also gather the first top-k tokens (contiguous runs): the SM-load ceiling");
  app.add_flag("--split", o.split,
               "Layout deepseek-v3.2-split: gather 640 B per entry from the pool and put each token's 16 B of "
               "scales (its latent_scales stream, copied to GPU memory first) back in at byte 512, giving 656 B "
               "rows; no stress pattern");
  app.add_option("--spacing-probe", o.spacings,
                 "Also gather, batch 16, one layer, k tokens s apart from a random page of each prefix, for each s "
                 "(1 = dense runs; 7 = one entry per 4 KiB)")->delimiter(',');
  app.add_flag("--copy-engine", o.copy_engine, "Also time the decode pattern through cudaMemcpyBatchAsync");
}

// The split layout keeps 640 B of each entry in the pool, so the packed defaults shrink to it;
// its scales come from GPU memory, which the stress pattern and the copy engines do not model.
void apply_split_defaults(Options& o) {
  if (o.stride == 656) o.stride = 640;
  if (o.entry_bytes == 656) o.entry_bytes = 640;
  o.skip_stress = true;
  o.copy_engine = false;
}

// Copies each prefix's latent_scales stream (stream 1), token by token, as a decode worker holds
// it after its bulk fetch at admission: [prefix][layer][token][16 B].
void copy_side_rows(Bench& b, const Options& o) {
  const bench::PoolWorkload& w = *b.w;
  const SlabGeometry& g = w.allocator->geometry();
  b.shape.side_bytes = 16;
  b.shape.side_at = 512;
  b.side_layer_bytes = uint64_t{w.pages_per_prefix} * g.page_tokens * 16;
  b.host_side.resize(w.page_base.size() * g.layers * b.side_layer_bytes);
  for (size_t r = 0; r < w.page_base.size(); ++r)
    for (uint32_t l = 0; l < g.layers; ++l)
      for (uint32_t p = 0; p < w.pages_per_prefix; ++p) {
        const uint32_t pos = p % o.slab_pages;
        const uint64_t slab = w.page_base[r][p] - g.page_run_offset(0, 0, pos);
        std::memcpy(b.host_side.data() + (r * g.layers + l) * b.side_layer_bytes + uint64_t{p} * g.page_tokens * 16,
                    w.region->base() + slab + g.page_run_offset(1, l, pos), uint64_t{g.page_tokens} * 16);
      }
  b.dev_side = device_copy(b.host_side);
}

// Fills the pool, registers it with the GPU, sets the gather shape and copies the block tables to
// the device; returns 0, or the exit status after printing why.
int set_up_pool(Bench& b, const Options& o, std::unique_ptr<bench::PoolWorkload>& w,
                std::unique_ptr<GpuRegistration>& reg) {
  auto t0 = std::chrono::steady_clock::now();
  w = bench::make_pool(uint64_t(o.pool_gib * (1ull << 30)),
                       fmt::format("{}:latent_stride={}", o.split ? "deepseek-v3.2-split" : "deepseek-v3.2", o.stride),
                       o.slab_pages, o.context, o.max_prefixes, o.threads, o.backing);
  b.w = w.get();
  const SlabGeometry& g = w->allocator->geometry();
  const double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  auto registered = GpuRegistration::register_range(w->region->base(), w->region->size());
  if (!registered) { fmt::print(stderr, "cxlkv-bench-gpu: {}\n", registered.status().to_string()); return 1; }
  reg = std::move(*registered);
  const double reg_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  b.dev_pool = reg->device();
  if (o.entry_bytes > o.stride || o.entry_bytes % 16 || o.entry_bytes == 0) {
    fmt::print(stderr, "cxlkv-bench-gpu: --entry-bytes {} must be a multiple of 16 in (0, stride {}]\n", o.entry_bytes, o.stride);
    return 2;
  }
  b.shape = StreamShape{o.entry_bytes, o.stride, uint64_t{o.slab_pages} * g.page_tokens * o.stride, g.page_tokens, 6};
  b.layers = g.layers;
  if (o.split) copy_side_rows(b, o);
  const uint32_t prefixes = uint32_t(w->page_base.size());
  fmt::print("pool: {:.0f} GiB {} region, E = {}, stride {}, {} B gathered per entry{}, {} prefixes of {} tokens ({:.1f} GB "
             "filled in {:.1f} s), registered in {:.1f} s; {}\n", o.pool_gib, o.backing, o.slab_pages, o.stride, o.entry_bytes,
             o.split ? " (+ 16 B of scales from GPU memory at byte 512: 656 B rows; rates per pool byte)" : "", prefixes,
             o.context, w->filled_bytes / 1e9, fill_s, reg_s, bench::huge_page_report());
  b.out["pool"] = {{"gib", o.pool_gib}, {"slab_pages", o.slab_pages}, {"stride", o.stride}, {"entry_bytes", o.entry_bytes}, {"split", o.split}, {"prefixes", prefixes},
                   {"context", o.context}, {"register_s", reg_s}, {"huge_pages", bench::huge_page_report()}};
  for (auto& t : w->page_base) b.dev_page_base.push_back(device_copy(t));
  for (auto& t : w->page_base) b.all_pages.insert(b.all_pages.end(), t.begin(), t.end());
  b.dev_all_pages = device_copy(b.all_pages);
  CUDA_OR_DIE(cudaMalloc(&b.dev_errors, sizeof(uint32_t)));
  CUDA_OR_DIE(cudaMemset(b.dev_errors, 0, sizeof(uint32_t)));
  return 0;
}

// Ceiling: bulk copy of 1 GiB out of the registered region.
void measure_bulk_copy(Bench& b) {
  const SlabGeometry& g = b.w->allocator->geometry();
  const uint64_t bytes = std::min<uint64_t>(1ull << 30, b.w->filled_bytes);
  uint8_t* dst = nullptr;
  CUDA_OR_DIE(cudaMalloc(&dst, bytes));
  const uint8_t* src = b.w->region->base() + g.slab_area_offset;
  const double s = time_median(10, 1, [&](int) { CUDA_OR_DIE(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, 0)); });
  b.bulk_gbps = bytes / s / 1e9;
  CUDA_OR_DIE(cudaFree(dst));
  b.out["bulk_h2d_gbps"] = b.bulk_gbps;
  fmt::print("bulk host-to-device copy (1 GiB from the registered region): {:.1f} GB/s\n\n", b.bulk_gbps);
}

// One decode-step case: batch requests x layers segments, top-k per segment.
// dense: the first k tokens of the prefix (whole page runs), the SM-load ceiling on this link.
// spacing s > 0: tokens start + i x s, start a random page with room for the k tokens.
void measure_decode_case(Bench& b, const Options& o, std::mt19937_64& rng, uint32_t batch, uint32_t layers, bool sorted,
                         bool dense = false, uint32_t spacing = 0) {
  const bench::PoolWorkload& w = *b.w;
  const SlabGeometry& g = w.allocator->geometry();
  const uint32_t prefixes = uint32_t(w.page_base.size());
  const uint32_t topk = o.topk, context = o.context;
  const uint32_t segments = batch * layers;
  std::vector<std::pair<const uint64_t*, const uint64_t*>> tables;
  std::vector<uint32_t> pages, lay, prefix_of;
  for (uint32_t r = 0; r < batch; ++r)
    for (uint32_t l = 0; l < layers; ++l) {
      tables.emplace_back(w.page_base[r % prefixes].data(), b.dev_page_base[r % prefixes]);
      pages.push_back(w.pages_per_prefix);
      lay.push_back(layers == 1 ? 30 : l);
      prefix_of.push_back(r % prefixes);
    }
  auto c = make_case(b, segments, topk, o.sets, tables, pages, lay,
                     [&](int, uint32_t) {
                       auto v = bench::unique_random(topk, context, rng);
                       if (sorted) std::sort(v.begin(), v.end());
                       if (dense) for (uint32_t i = 0; i < topk; ++i) v[i] = int32_t(i);
                       if (spacing) {
                         const uint64_t span = uint64_t{topk - 1} * spacing + 1;
                         const uint64_t room = span < context ? (context - span) / g.page_tokens : 0;
                         const uint64_t start = room ? rng() % (room + 1) * g.page_tokens : 0;
                         for (uint32_t i = 0; i < topk; ++i) v[i] = int32_t(std::min<uint64_t>(start + uint64_t{i} * spacing, context - 1));
                       }
                       return v;
                     },
                     prefix_of);
  auto row = run_case(b, c, fmt::format("decode batch {} x {} layer{}{}", batch, layers, layers > 1 ? "s" : "",
                                        spacing ? fmt::format(" spacing {}", spacing) : dense ? " dense" : sorted ? " sorted" : ""),
                      o.reps, o.sets);
  if (spacing) row["spacing"] = spacing;
  row["batch"] = batch;
  row["layers"] = layers;
  row["sorted"] = sorted;
  if (o.copy_engine && layers == 1) row["copy_engine"] = run_copy_engine(b, c, o.reps, o.sets);
  b.out["decode"].push_back(row);
  free_case(c);
}

// (a) decode-step pattern: random then sorted top-k, one layer and all layers, then the probes.
void measure_decode(Bench& b, const Options& o, std::mt19937_64& rng) {
  const uint32_t layers = b.w->allocator->geometry().layers;
  for (bool sorted : {false, true}) {
    for (uint32_t batch : o.batches) measure_decode_case(b, o, rng, batch, 1, sorted);
    for (uint32_t batch : o.all_layer_batches) measure_decode_case(b, o, rng, batch, layers, sorted);
  }
  if (o.dense_probe) measure_decode_case(b, o, rng, 16, 1, true, true);
  for (uint32_t spacing : o.spacings) measure_decode_case(b, o, rng, 16, 1, true, false, spacing);
}

// (b) stress: k uniformly random entries over every page of the pool, spread over the layers.
void measure_stress(Bench& b, const Options& o, std::mt19937_64& rng) {
  const SlabGeometry& g = b.w->allocator->geometry();
  const uint32_t all_tokens = uint32_t(std::min<uint64_t>(b.all_pages.size() * g.page_tokens, INT32_MAX));
  for (bool sorted : {false, true})
    for (uint32_t k : o.skip_stress ? std::vector<uint32_t>{} : o.stress_k) {
      const uint32_t segs = g.layers, per = std::max<uint32_t>(1, k / segs);
      std::vector<std::pair<const uint64_t*, const uint64_t*>> tables(segs, {b.all_pages.data(), b.dev_all_pages});
      std::vector<uint32_t> pages(segs, uint32_t(b.all_pages.size())), lay(segs);
      for (uint32_t l = 0; l < segs; ++l) lay[l] = l;
      auto c = make_case(b, segs, per, o.sets, tables, pages, lay, [&](int, uint32_t) {
        auto v = bench::unique_random(per, all_tokens, rng);
        if (sorted) std::sort(v.begin(), v.end());
        return v;
      });
      auto row = run_case(b, c, fmt::format("stress k={} {}", per * segs, sorted ? "sorted" : "random"), o.reps, o.sets);
      row["k"] = per * segs;
      row["sorted"] = sorted;
      b.out["stress"].push_back(row);
      free_case(c);
    }
}

// The device side of one hot-buffer trace: a HotSegment per request (layer 30 of its prefix), each
// with its own rows, and the step's indices and results for all requests.
struct HotTrace {
  std::vector<HotSegment> segments;  // host copy: device pointers
  HotSegment* device_segments = nullptr;
  int32_t* indices = nullptr;  // [request][top-k]
  int32_t* row_of = nullptr;   // [request][top-k]
  uint32_t* counts = nullptr;  // [request] hits, misses
  std::vector<void*> allocations;
};

HotTrace make_hot_trace(Bench& b, const Options& o, uint32_t capacity) {
  const bench::PoolWorkload& w = *b.w;
  const uint32_t prefixes = uint32_t(w.page_base.size());
  const uint32_t requests = o.hot_requests, topk = o.topk;
  HotTrace t;
  t.segments.resize(requests);
  CUDA_OR_DIE(cudaMalloc(&t.indices, uint64_t{requests} * topk * 4));
  CUDA_OR_DIE(cudaMalloc(&t.row_of, uint64_t{requests} * topk * 4));
  CUDA_OR_DIE(cudaMalloc(&t.counts, uint64_t{requests} * 8));
  auto dev_fill = [&](size_t bytes, int value) {
    void* p = nullptr;
    CUDA_OR_DIE(cudaMalloc(&p, bytes));
    CUDA_OR_DIE(cudaMemset(p, value, bytes));
    t.allocations.push_back(p);
    return p;
  };
  for (uint32_t r = 0; r < requests; ++r) {
    HotSegment& h = t.segments[r];
    h.gather = GatherSegment{b.dev_page_base[r % prefixes], t.indices + uint64_t{r} * topk, nullptr, w.pages_per_prefix, 30, topk, 0};
    if (o.split) h.gather.side = b.dev_side + ((r % prefixes) * b.layers + 30) * b.side_layer_bytes;
    h.slot_of = static_cast<int32_t*>(dev_fill(uint64_t{o.context} * 4, 0xff));
    h.token_of = static_cast<int32_t*>(dev_fill(uint64_t{capacity} * 4, 0xff));
    h.last_used = static_cast<int32_t*>(dev_fill(uint64_t{capacity} * 4, 0xff));
    h.rows = static_cast<uint8_t*>(dev_fill(uint64_t{capacity} * b.shape.row_bytes(), 0));
    h.row_of = t.row_of + uint64_t{r} * topk;
    h.hits = t.counts + 2 * r;
    h.misses = t.counts + 2 * r + 1;
    h.capacity = capacity;
    h.tokens = o.context;
  }
  t.device_segments = device_copy(t.segments);
  return t;
}

void free_hot_trace(HotTrace& t) {
  for (void* p : t.allocations) cudaFree(p);
  cudaFree(t.device_segments), cudaFree(t.indices), cudaFree(t.row_of), cudaFree(t.counts);
}

// The rate of the decode gather at batch 16, one layer, random top-k, measured earlier in this run
// (0 if it was not).
double decode_gather_gbps(const Bench& b) {
  if (!b.out.contains("decode")) return 0;
  for (const auto& row : b.out["decode"])
    if (row["batch"] == 16 && row["layers"] == 1 && !row["sorted"] && !row.contains("spacing")) return row["gbps"].get<double>();
  return 0;
}

// Compares one step's hits, misses and row of each top-k slot, for every request, with the CPU
// reference, advancing it; adds the step's totals to hits and misses. False on the first
// difference, after printing it.
bool check_hot_step(Bench& b, const Options& o, HotTrace& t, std::vector<HotBufferState>& ref,
                    const std::vector<std::vector<int32_t>>& prev, double overlap, uint32_t step, uint64_t& hits,
                    uint64_t& misses) {
  const bench::PoolWorkload& w = *b.w;
  const uint32_t prefixes = uint32_t(w.page_base.size());
  const uint32_t requests = o.hot_requests, topk = o.topk;
  std::vector<int32_t> row_of(uint64_t{requests} * topk);
  std::vector<uint32_t> counts(2 * requests);
  CUDA_OR_DIE(cudaMemcpy(row_of.data(), t.row_of, row_of.size() * 4, cudaMemcpyDeviceToHost));
  CUDA_OR_DIE(cudaMemcpy(counts.data(), t.counts, counts.size() * 4, cudaMemcpyDeviceToHost));
  for (uint32_t r = 0; r < requests; ++r) {
    GatherSegment seg{w.page_base[r % prefixes].data(), prev[r].data(), nullptr, w.pages_per_prefix, 30, topk, 0};
    if (o.split) seg.side = b.host_side.data() + ((r % prefixes) * b.layers + 30) * b.side_layer_bytes;
    auto want = reference_hot_step(ref[r], w.region->base(), b.shape, seg, int32_t(step));
    if (want.hits != counts[2 * r] || want.misses != counts[2 * r + 1] ||
        !std::equal(want.row_of.begin(), want.row_of.end(), row_of.begin() + uint64_t{r} * topk)) {
      fmt::print(stderr, "MISMATCH: hot buffer overlap {} step {} request {}\n", overlap, step, r);
      return false;
    }
    hits += want.hits, misses += want.misses;
  }
  return true;
}

// One trace at one step-to-step overlap: o.steps decode steps, each checked against the CPU
// reference, the first left out of the rates. False on a mismatch, after printing it.
bool measure_hot_trace(Bench& b, const Options& o, double overlap, std::mt19937_64& rng) {
  const uint32_t requests = o.hot_requests, topk = o.topk, context = o.context, steps = o.steps;
  const uint32_t capacity = o.hot_factor * topk;
  std::vector<HotBufferState> ref(requests);
  std::vector<std::vector<int32_t>> prev(requests);
  for (uint32_t r = 0; r < requests; ++r) ref[r].reset(capacity, context, b.shape.row_bytes());
  HotTrace trace = make_hot_trace(b, o, capacity);
  Timer t;
  double hit_sum = 0, fetched_sum = 0;
  std::vector<double> step_us;
  for (uint32_t step = 0; step < steps; ++step) {
    std::vector<int32_t> idx;
    for (uint32_t r = 0; r < requests; ++r) {
      prev[r] = step == 0 ? bench::unique_random(topk, context, rng) : bench::next_overlapping(prev[r], overlap, context, rng);
      idx.insert(idx.end(), prev[r].begin(), prev[r].end());
    }
    CUDA_OR_DIE(cudaMemcpy(trace.indices, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OR_DIE(cudaEventRecord(t.a));
    CUDA_OR_DIE(launch_hot_step(b.dev_pool, b.shape, trace.device_segments, requests, int32_t(step), b.dev_errors, 0));
    CUDA_OR_DIE(cudaEventRecord(t.b));
    CUDA_OR_DIE(cudaEventSynchronize(t.b));
    float ms = 0;
    CUDA_OR_DIE(cudaEventElapsedTime(&ms, t.a, t.b));
    uint64_t hits = 0, misses = 0;
    if (!check_hot_step(b, o, trace, ref, prev, overlap, step, hits, misses)) return false;
    if (step > 0) {
      hit_sum += double(hits) / (uint64_t{requests} * topk);
      fetched_sum += double(misses) / (uint64_t{requests} * topk);
      step_us.push_back(ms * 1e3);
    }
  }
  // The rows themselves, byte for byte, after the last step.
  for (uint32_t r = 0; r < requests; ++r) {
    std::vector<uint8_t> rows(uint64_t{capacity} * b.shape.row_bytes());
    CUDA_OR_DIE(cudaMemcpy(rows.data(), trace.segments[r].rows, rows.size(), cudaMemcpyDeviceToHost));
    if (rows != ref[r].rows) { fmt::print(stderr, "MISMATCH: hot buffer rows, request {}\n", r); return false; }
  }
  const double hit_rate = hit_sum / (steps - 1), fetch_ratio = fetched_sum / (steps - 1);
  const double fetched_bytes = fetch_ratio * requests * topk * b.shape.entry_bytes;
  // The step's bytes at this run's decode gather rate: what the fetch alone costs on this link.
  const double gather_gbps = decode_gather_gbps(b);
  const double floor_us = gather_gbps > 0 ? fetched_bytes / (gather_gbps * 1e3) : 0;
  fmt::print("{:<24} {:>9.3f} {:>10.0f}KB {:>14.3f} {:>10.1f} {:>12.1f}  ok\n", fmt::format("overlap {:.2f}, {} req", overlap, requests),
             hit_rate, fetched_bytes / 1e3, fetch_ratio, median(step_us), floor_us);
  b.out["hot"].push_back({{"overlap", overlap}, {"requests", requests}, {"capacity_rows", capacity},
                          {"hit_rate", hit_rate}, {"fetch_ratio", fetch_ratio}, {"us_per_step", median(step_us)},
                          {"link_floor_us", floor_us}, {"verified", true}});
  free_hot_trace(trace);
  return true;
}

// (c) hot buffer on overlapping traces. False on a mismatch, after printing it.
bool measure_hot_buffer(Bench& b, const Options& o, std::mt19937_64& rng) {
  fmt::print("\n{:<24} {:>9} {:>12} {:>14} {:>10} {:>12}\n", "hot buffer trace", "hit rate", "fetch/step", "x all top-k", "us/step",
             "link floor us");
  for (double overlap : o.skip_hot ? std::vector<double>{} : o.overlaps)
    if (!measure_hot_trace(b, o, overlap, rng)) return false;
  return true;
}

// The simulator's gather_gbps is the decode row of batch 16, one layer, unsorted top-k.
void write_report(Bench& b, const std::string& json_path) {
  for (auto& row : b.out["decode"])
    if (row["batch"] == 16 && row["layers"] == 1 && !row["sorted"]) b.out["gather_gbps"] = row["gbps"];
  if (!json_path.empty()) std::ofstream(json_path) << b.out.dump(2) << "\n";
}

void free_bench(Bench& b) {
  for (auto* p : b.dev_page_base) cudaFree(p);
  cudaFree(b.dev_all_pages);
  cudaFree(b.dev_side);
  cudaFree(b.dev_errors);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-bench-gpu: top-k gather from a registered pool region into GPU memory"};
  Options o;
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);

  std::string why;
  if (!gpu_available(&why)) { fmt::print(stderr, "cxlkv-bench-gpu: no GPU: {}\n", why); return 1; }
  cudaDeviceProp prop{};
  CUDA_OR_DIE(cudaGetDeviceProperties(&prop, 0));
  Bench b;
  b.out["device"] = prop.name;
  fmt::print("device: {} ({} SMs)\n", prop.name, prop.multiProcessorCount);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  if (o.split) apply_split_defaults(o);
  std::unique_ptr<bench::PoolWorkload> w;
  std::unique_ptr<GpuRegistration> reg;
  if (int status = set_up_pool(b, o, w, reg); status != 0) return status;
  measure_bulk_copy(b);

  std::mt19937_64 rng(20261123);
  fmt::print("{:<34} {:>9} {:>9} {:>8} {:>7} {:>9} {:>8}  {}\n", "pattern", "entries", "us", "GB/s", "x bulk",
             "ent/us", "warp/e", "best variant");
  measure_decode(b, o, rng);
  measure_stress(b, o, rng);
  if (!measure_hot_buffer(b, o, rng)) return 2;

  write_report(b, o.json_path);
  free_bench(b);
  reg.reset();
  return 0;
}
