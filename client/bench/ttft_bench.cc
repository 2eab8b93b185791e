// cxlkv-bench-ttft: time to first token on a cache hit, measured on the GPU, for the two designs
// (docs/performance.md "TTFT measured on the GPU"). Against a running cxlkv-poold over a region in
// host memory that the GPU maps (the stand-in for a CXL device behind the same link):
//   cxl:  lookup through the daemon, then for every layer the indexer keys of the whole prefix
//         (and, with split rows, the latent scales) into HBM and the first step's top-k latent
//         rows gathered from the pool; layer l's gather waits only for layer l's keys, so the
//         keys of later layers stream while it runs.
//   bulk: lookup, then the whole prefix (every stream of every layer: the slabs that hold it)
//         copied into HBM by the copy engine; the first step then reads HBM.
// The model's compute (indexer scores, attention) is left out of both: the same in each design.
// The top-k indices are random and ready on the GPU before the clock starts. Batches of requests
// over a few distinct prefixes; each request holds its own lease and buffers. Every figure is
// checked: gathered rows and fetched keys against what the writer wrote, bulk copies against the
// pool (each buffer overwritten before the last repetition, so the check is of that one). Prints a
// table; --json writes the figures, with the largest batch's rates of the top-k gather alone
// (gather_gbps) and the bulk copy (bulk_h2d_gbps): the fields cxlkv-sim and cxlkv-bench --kernels read.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "bench_util.h"
#include "cuda_or_die.h"
#include "cxlkv/client.h"
#include "cxlkv/gpu.h"
#include "prefix_io.h"

using namespace cxlkv;
using json = nlohmann::json;

namespace {

template <typename T>
T value_or_die(Result<T> r, const std::string& what) {
  if (!r) {
    fmt::print(stderr, "cxlkv-bench-ttft: {}: {}\n", what, r.status().to_string());
    std::exit(1);
  }
  return std::move(*r);
}

void ok_or_die(const Status& st, const std::string& what) {
  if (!st) {
    fmt::print(stderr, "cxlkv-bench-ttft: {}: {}\n", what, st.to_string());
    std::exit(1);
  }
}

struct Options {
  ClientOptions client;
  uint32_t tokens = 131072;
  uint32_t prefixes = 4;
  std::vector<uint32_t> batches = {1, 16};
  uint32_t k = 2048;
  int reps = 5;
  uint32_t seed = 1;
  std::string json_path;
  std::vector<std::string> keys_engines = {"auto", "sm", "ce"};  // GpuPool::FetchEngine, a row each
};

// The streams a TTFT touches, by name, and the bytes a design moves per request.
struct Streams {
  int latent = -1, indexer = -1, scales = -1;  // scales: split rows only
  uint32_t latent_bytes = 0, indexer_bytes = 0, scales_bytes = 0;
  GpuRowSplice splice;  // split rows: the scales put back after NoPE's 512 B
  uint32_t row_bytes() const { return latent_bytes + scales_bytes; }  // FlashMLA's 656 B row
};

Streams find_streams(const Client& c) {
  Streams s;
  const Layout& layout = c.layout();
  s.latent = layout.find_stream("latent");
  s.indexer = layout.find_stream("indexer");
  s.scales = layout.find_stream("latent_scales");
  if (s.latent < 0 || s.indexer < 0) {
    fmt::print(stderr, "cxlkv-bench-ttft: layout {} has no latent and indexer streams (use deepseek-v3.2[-split])\n",
               layout.name());
    std::exit(2);
  }
  s.latent_bytes = layout.stream(s.latent).entry_bytes;
  s.indexer_bytes = layout.stream(s.indexer).entry_bytes;
  if (s.scales >= 0) {
    s.scales_bytes = layout.stream(s.scales).entry_bytes;
    s.splice = GpuRowSplice{s.scales_bytes, 512};
  }
  return s;
}

// Writes each distinct prefix that the pool does not hold whole yet, one thread per prefix,
// each with a client of its own (no populate: it touches only its pages).
void write_prefixes(const Options& o, const std::vector<std::vector<PageKey>>& keys) {
  const double t0 = bench::now_s();
  std::vector<std::thread> writers;
  std::vector<Status> results(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    writers.emplace_back([&, i] {
      ClientOptions co = o.client;
      co.populate = false;
      auto c = Client::connect(co);
      if (!c) return void(results[i] = c.status());
      auto lease = (*c)->lookup(keys[i]);
      if (lease && lease->pages() == keys[i].size()) return;  // cached by an earlier run
      if (lease) (void)lease->release();
      auto written = testing::write_prefix(**c, keys[i]);
      results[i] = written ? Status::ok() : written.status();
    });
  for (auto& t : writers) t.join();
  for (size_t i = 0; i < results.size(); ++i) ok_or_die(results[i], fmt::format("writing prefix {}", i));
  fmt::print("prefixes: {} x {} tokens in the pool ({:.1f} s)\n", keys.size(), o.tokens, bench::now_s() - t0);
}

// One request's GPU buffers: its indices, the keys (and scales) of every layer, the gathered rows.
struct RequestBuffers {
  int32_t* indices = nullptr;  // [layers][k]
  uint8_t* keys = nullptr;     // [layers][prefix tokens][indexer bytes]
  uint8_t* scales = nullptr;   // [layers][prefix tokens][scales bytes], split rows only
  uint8_t* rows = nullptr;     // [layers][k][row bytes]
  std::vector<int32_t> host_indices;
};

struct Bench {
  Options o;
  Client* client = nullptr;
  GpuPool* gpu = nullptr;
  Streams s;
  uint32_t layers = 0, pages = 0;
  uint64_t prefix_tokens = 0;
  std::vector<std::vector<PageKey>> keys;  // per distinct prefix
  std::vector<RequestBuffers> requests;    // per request of the largest batch
  uint8_t* bulk = nullptr;                 // one request's slabs, reused by every request
  uint64_t bulk_capacity = 0;
  cudaStream_t keys_stream{}, gather_stream{}, bulk_stream{};
  std::vector<cudaEvent_t> layer_ready;
};

void allocate(Bench& b, uint32_t max_batch) {
  std::mt19937 rng(b.o.seed * 7919u + 1);
  b.requests.resize(max_batch);
  for (auto& r : b.requests) {
    r.host_indices.resize(size_t(b.layers) * b.o.k);
    for (uint32_t l = 0; l < b.layers; ++l) {
      // k distinct entries of the prefix, as DSA's top-k picks them (here at random).
      std::vector<int32_t> pick(b.o.k);
      std::uniform_int_distribution<int32_t> any(0, int32_t(b.prefix_tokens) - 1);
      for (auto& x : pick) x = any(rng);
      std::sort(pick.begin(), pick.end());
      pick.erase(std::unique(pick.begin(), pick.end()), pick.end());
      while (pick.size() < b.o.k) pick.push_back(-1);  // a duplicate drawn: the slot stays empty
      std::copy(pick.begin(), pick.end(), r.host_indices.begin() + size_t(l) * b.o.k);
    }
    CUDA_OR_DIE(cudaMalloc(&r.indices, r.host_indices.size() * sizeof(int32_t)));
    CUDA_OR_DIE(cudaMemcpy(r.indices, r.host_indices.data(), r.host_indices.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
    CUDA_OR_DIE(cudaMalloc(&r.keys, size_t(b.layers) * b.prefix_tokens * b.s.indexer_bytes));
    if (b.s.scales >= 0) CUDA_OR_DIE(cudaMalloc(&r.scales, size_t(b.layers) * b.prefix_tokens * b.s.scales_bytes));
    CUDA_OR_DIE(cudaMalloc(&r.rows, size_t(b.layers) * b.o.k * b.s.row_bytes()));
  }
  const PoolView& v = b.client->view();
  b.bulk_capacity = uint64_t((b.pages + v.slab_pages - 1) / v.slab_pages + 1) * v.slab_bytes;
  CUDA_OR_DIE(cudaMalloc(&b.bulk, b.bulk_capacity));
  CUDA_OR_DIE(cudaStreamCreateWithFlags(&b.keys_stream, cudaStreamNonBlocking));
  CUDA_OR_DIE(cudaStreamCreateWithFlags(&b.gather_stream, cudaStreamNonBlocking));
  CUDA_OR_DIE(cudaStreamCreateWithFlags(&b.bulk_stream, cudaStreamNonBlocking));
  b.layer_ready.resize(b.layers);
  for (auto& e : b.layer_ready) CUDA_OR_DIE(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
}

std::vector<ReadLease> lookup_all(Bench& b, uint32_t batch) {
  std::vector<ReadLease> leases;
  for (uint32_t r = 0; r < batch; ++r) {
    auto lease = value_or_die(b.client->lookup(b.keys[r % b.keys.size()]), "lookup");
    if (lease.pages() != b.pages) {
      fmt::print(stderr, "cxlkv-bench-ttft: lookup found {} of {} pages (evicted? make the region larger)\n",
                 lease.pages(), b.pages);
      std::exit(1);
    }
    leases.push_back(std::move(lease));
  }
  return leases;
}

// Request r's first-step gather of layer l: its top-k latent rows (with split rows, its scales
// of that layer spliced in from HBM).
GpuGatherItem gather_item(Bench& b, const GpuBlockTable& table, uint32_t r, uint32_t l) {
  RequestBuffers& rb = b.requests[r];
  return GpuGatherItem{&table, l, rb.indices + size_t(l) * b.o.k, b.o.k, rb.rows + size_t(l) * b.o.k * b.s.row_bytes(),
                       rb.scales ? rb.scales + size_t(l) * b.prefix_tokens * b.s.scales_bytes : nullptr};
}

struct Timing {
  double total_ms = 0, lookup_ms = 0;
};

// The cxl design's TTFT for `batch` requests: lookups, block tables, then layer by layer the
// keys (and scales) of every request on one stream (fetch_pages by `engine`) and the gathers on
// another.
Timing run_cxl(Bench& b, uint32_t batch, GpuPool::FetchEngine engine) {
  const double t0 = bench::now_s();
  std::vector<ReadLease> leases = lookup_all(b, batch);
  const double t1 = bench::now_s();  // the lookups; the block tables' upload is the design's own
  std::vector<GpuBlockTable> tables;
  for (auto& l : leases) tables.push_back(value_or_die(b.gpu->upload(l, b.s.latent), "upload"));
  const size_t key_layer = size_t(b.prefix_tokens) * b.s.indexer_bytes;
  const size_t scale_layer = size_t(b.prefix_tokens) * b.s.scales_bytes;
  std::vector<GpuGatherItem> items(batch);
  for (uint32_t l = 0; l < b.layers; ++l) {
    for (uint32_t r = 0; r < batch; ++r) {
      RequestBuffers& rb = b.requests[r];
      ok_or_die(b.gpu->fetch_pages(leases[r], b.s.indexer, l, 0, b.pages, rb.keys + l * key_layer, b.keys_stream, engine),
                "fetch indexer keys");
      if (b.s.scales >= 0)
        ok_or_die(b.gpu->fetch_pages(leases[r], b.s.scales, l, 0, b.pages, rb.scales + l * scale_layer, b.keys_stream,
                                     engine),
                  "fetch latent scales");
      items[r] = gather_item(b, tables[r], r, l);
    }
    CUDA_OR_DIE(cudaEventRecord(b.layer_ready[l], b.keys_stream));
    CUDA_OR_DIE(cudaStreamWaitEvent(b.gather_stream, b.layer_ready[l], 0));
    ok_or_die(b.gpu->gather_topk(items, b.gather_stream, b.s.splice), "gather_topk");
  }
  CUDA_OR_DIE(cudaStreamSynchronize(b.gather_stream));
  const double t2 = bench::now_s();
  for (auto& l : leases) ok_or_die(l.check_reuse(), "check_reuse after the copies");
  if (uint32_t bad = value_or_die(b.gpu->bad_index_count(), "bad_index_count"); bad != 0) {
    fmt::print(stderr, "cxlkv-bench-ttft: {} indices past the prefix\n", bad);
    std::exit(1);
  }
  return {(t2 - t0) * 1e3, (t1 - t0) * 1e3};
}

// The first step's gathers alone, every layer of `batch` requests on one stream with the keys
// (and scales) already in HBM: the scattered-gather rate of this run, in pool bytes per second
// (the median of 3 timings by CUDA events).
// The top-k gather of every layer alone, one launch per layer as a decode step runs it: its rate
// with the library's reuse check after each launch (the default, overlapped with the gather's
// tail), with the check as a plain launch after it, with one check for the whole step (per-step
// mode: check_reads after the last layer), and without, taking turns.
struct GatherRates {
  double checked_gbps = 0, after_gbps = 0, per_step_gbps = 0, unchecked_gbps = 0;
};

GatherRates gather_only_gbps(Bench& b, uint32_t batch) {
  std::vector<ReadLease> leases = lookup_all(b, batch);
  std::vector<GpuBlockTable> tables;
  for (auto& l : leases) tables.push_back(value_or_die(b.gpu->upload(l, b.s.latent), "upload"));
  std::vector<GpuGatherItem> items;
  for (uint32_t l = 0; l < b.layers; ++l)
    for (uint32_t r = 0; r < batch; ++r) items.push_back(gather_item(b, tables[r], r, l));
  cudaEvent_t start{}, stop{};
  CUDA_OR_DIE(cudaEventCreate(&start));
  CUDA_OR_DIE(cudaEventCreate(&stop));
  using Mode = GpuPool::ReuseCheck;
  constexpr Mode kModes[4] = {Mode::kOverlapped, Mode::kAfter, Mode::kPerStep, Mode::kOff};
  std::vector<double> ms[4];  // by kModes
  for (int rep = 0; rep < 28; ++rep) {  // the first four are warm-ups
    const int mode = rep % 4;
    b.gpu->set_reuse_check(kModes[mode]);
    CUDA_OR_DIE(cudaEventRecord(start, b.gather_stream));
    for (uint32_t l = 0; l < b.layers; ++l)
      ok_or_die(b.gpu->gather_topk(std::span(items).subspan(size_t(l) * batch, batch), b.gather_stream, b.s.splice),
                "gather_topk");
    ok_or_die(b.gpu->check_reads(b.gather_stream), "check_reads");  // per-step mode's one check; else none queued
    CUDA_OR_DIE(cudaEventRecord(stop, b.gather_stream));
    CUDA_OR_DIE(cudaEventSynchronize(stop));
    float t = 0;
    CUDA_OR_DIE(cudaEventElapsedTime(&t, start, stop));
    if (rep > 3) ms[mode].push_back(t);
  }
  b.gpu->set_reuse_check(Mode::kOverlapped);
  CUDA_OR_DIE(cudaEventDestroy(start));
  CUDA_OR_DIE(cudaEventDestroy(stop));
  if (uint32_t reused = value_or_die(b.gpu->reused_count(), "reused_count"); reused != 0)
    ok_or_die(Status(Code::kCorrupt, fmt::format("{} gathers of live leases poisoned", reused)), "the reuse check");
  for (auto& l : leases) ok_or_die(l.check_reuse(), "check_reuse after the gathers");
  const double bytes = double(batch) * b.layers * b.o.k * b.s.latent_bytes;
  auto gbps = [&](int mode) { return bytes / (bench::percentile(ms[mode], 0.5) / 1e3) / 1e9; };
  return {gbps(0), gbps(1), gbps(2), gbps(3)};
}

// Overwrites every buffer the designs fill, so that verify() sees what the last repetition
// wrote and not an earlier engine's bytes.
void poison(Bench& b, uint32_t batch) {
  for (uint32_t r = 0; r < batch; ++r) {
    RequestBuffers& rb = b.requests[r];
    CUDA_OR_DIE(cudaMemset(rb.keys, 0xa5, size_t(b.layers) * b.prefix_tokens * b.s.indexer_bytes));
    if (rb.scales) CUDA_OR_DIE(cudaMemset(rb.scales, 0xa5, size_t(b.layers) * b.prefix_tokens * b.s.scales_bytes));
    CUDA_OR_DIE(cudaMemset(rb.rows, 0xa5, size_t(b.layers) * b.o.k * b.s.row_bytes()));
  }
  CUDA_OR_DIE(cudaMemset(b.bulk, 0xa5, b.bulk_capacity));
  CUDA_OR_DIE(cudaDeviceSynchronize());
}

// The slabs of a lease, in page order, each once.
std::vector<uint64_t> slab_offsets(const ReadLease& lease) {
  std::vector<uint64_t> out;
  for (const Placement& p : lease.placements())
    if (out.empty() || out.back() != p.slab_offset) out.push_back(p.slab_offset);
  return out;
}

// The bulk design's TTFT for `batch` requests: lookups, then every request's slabs into HBM.
Timing run_bulk(Bench& b, uint32_t batch, uint64_t* copied) {
  const double t0 = bench::now_s();
  std::vector<ReadLease> leases = lookup_all(b, batch);
  const double t1 = bench::now_s();
  const PoolView& v = b.client->view();
  *copied = 0;
  for (uint32_t r = 0; r < batch; ++r) {
    const std::vector<uint64_t> slabs = slab_offsets(leases[r]);
    if (slabs.size() * v.slab_bytes > b.bulk_capacity) {
      fmt::print(stderr, "cxlkv-bench-ttft: request {}'s prefix lies in {} slabs, the bulk buffer holds {} (a prefix "
                 "rewritten piecemeal in a reused pool? start from a fresh region)\n", r, slabs.size(),
                 b.bulk_capacity / v.slab_bytes);
      std::exit(1);
    }
    for (size_t i = 0; i < slabs.size(); ++i)
      CUDA_OR_DIE(cudaMemcpyAsync(b.bulk + i * v.slab_bytes, v.base + slabs[i], v.slab_bytes, cudaMemcpyHostToDevice,
                              b.bulk_stream));
    *copied += slabs.size() * v.slab_bytes;
  }
  CUDA_OR_DIE(cudaStreamSynchronize(b.bulk_stream));
  const double t2 = bench::now_s();
  for (auto& l : leases) ok_or_die(l.check_reuse(), "check_reuse after the copies");
  return {(t2 - t0) * 1e3, (t1 - t0) * 1e3};
}

// Checks a batch's results: every request's gathered rows of the first and last layer, its keys
// of those layers (sampled pages), and the last request's bulk copy of its first and last slab.
void verify(Bench& b, uint32_t batch) {
  const size_t key_layer = size_t(b.prefix_tokens) * b.s.indexer_bytes;
  const size_t row_layer = size_t(b.o.k) * b.s.row_bytes();
  std::vector<uint8_t> host(std::max(key_layer, row_layer));
  const uint32_t pt = b.client->page_tokens();
  for (uint32_t r = 0; r < batch; ++r) {
    const auto& keys = b.keys[r % b.keys.size()];
    for (uint32_t l : {0u, b.layers - 1}) {
      CUDA_OR_DIE(cudaMemcpy(host.data(), b.requests[r].rows + l * row_layer, row_layer, cudaMemcpyDeviceToHost));
      const int32_t* idx = b.requests[r].host_indices.data() + size_t(l) * b.o.k;
      for (uint32_t i = 0; i < b.o.k; ++i) {
        if (idx[i] < 0) continue;
        const uint8_t* row = host.data() + size_t(i) * b.s.row_bytes();
        const uint32_t page = uint32_t(idx[i]) / pt, token = uint32_t(idx[i]) % pt;
        bool ok;
        if (b.s.scales < 0) {
          ok = testing::entry_matches(row, b.s.latent_bytes, testing::entry_seed(keys[page], b.s.latent, l, token));
        } else {  // NoPE + RoPE with the scales spliced in after NoPE
          const uint32_t at = b.s.splice.side_at;
          uint8_t entry[1024];
          std::memcpy(entry, row, at);
          std::memcpy(entry + at, row + at + b.s.scales_bytes, b.s.latent_bytes - at);
          ok = testing::entry_matches(entry, b.s.latent_bytes, testing::entry_seed(keys[page], b.s.latent, l, token)) &&
               testing::entry_matches(row + at, b.s.scales_bytes, testing::entry_seed(keys[page], b.s.scales, l, token));
        }
        if (!ok) {
          fmt::print(stderr, "cxlkv-bench-ttft: request {} layer {} row {} (index {}) differs from what was written\n", r, l,
                     i, idx[i]);
          std::exit(1);
        }
      }
      CUDA_OR_DIE(cudaMemcpy(host.data(), b.requests[r].keys + l * key_layer, key_layer, cudaMemcpyDeviceToHost));
      for (uint32_t p = 0; p < b.pages; p += std::max(1u, b.pages / 17))
        for (uint32_t t = 0; t < pt; t += 13)
          if (!testing::entry_matches(host.data() + (size_t(p) * pt + t) * b.s.indexer_bytes, b.s.indexer_bytes,
                                      testing::entry_seed(keys[p], b.s.indexer, l, t))) {
            fmt::print(stderr, "cxlkv-bench-ttft: request {} layer {} indexer key of page {} token {} differs\n", r, l, p, t);
            std::exit(1);
          }
    }
  }
  // The bulk buffer holds the last request's slabs: compare its first and last slab with the pool.
  auto lease = value_or_die(b.client->lookup(b.keys[(batch - 1) % b.keys.size()]), "lookup");
  const std::vector<uint64_t> slabs = slab_offsets(lease);
  const PoolView& v = b.client->view();
  std::vector<uint8_t> slab(v.slab_bytes);
  for (size_t i : {size_t{0}, slabs.size() - 1}) {
    CUDA_OR_DIE(cudaMemcpy(slab.data(), b.bulk + i * v.slab_bytes, v.slab_bytes, cudaMemcpyDeviceToHost));
    if (std::memcmp(slab.data(), v.base + slabs[i], v.slab_bytes) != 0) {
      fmt::print(stderr, "cxlkv-bench-ttft: bulk copy of slab {} differs from the pool\n", i);
      std::exit(1);
    }
  }
}

const char* engine_name(GpuPool::FetchEngine e) {
  return e == GpuPool::FetchEngine::kSmLoads ? "sm" : e == GpuPool::FetchEngine::kCopyEngines ? "ce" : "auto";
}

json measure_batch(Bench& b, uint32_t batch, GpuPool::FetchEngine engine) {
  const PoolView& v = b.client->view();
  // Counted bytes per request: what each design must move before its first step.
  const double keys_bytes = double(b.prefix_tokens) * b.layers * (b.s.indexer_bytes + b.s.scales_bytes);
  const double rows_bytes = double(b.o.k) * b.layers * b.s.latent_bytes;
  double page_bytes = 0;
  for (int s = 0; s < b.client->layout().stream_count(); ++s)
    page_bytes += double(b.client->layout().stream(s).entry_bytes) * v.page_tokens * b.layers;
  const double bulk_bytes = page_bytes * b.pages;
  const double counted_ratio = bulk_bytes / (keys_bytes + rows_bytes);

  std::vector<double> cxl_ms, cxl_lookup_ms, bulk_ms, bulk_lookup_ms;
  uint64_t copied = 0;
  for (int rep = 0; rep < b.o.reps + 1; ++rep) {  // the first of each is a warm-up
    if (rep == b.o.reps) poison(b, batch);          // verify() then checks the last one's bytes
    Timing c{}, k{};
    if (rep % 2 == 0) {
      c = run_cxl(b, batch, engine);
      k = run_bulk(b, batch, &copied);
    } else {
      k = run_bulk(b, batch, &copied);
      c = run_cxl(b, batch, engine);
    }
    if (rep == 0) continue;
    cxl_ms.push_back(c.total_ms);
    cxl_lookup_ms.push_back(c.lookup_ms);
    bulk_ms.push_back(k.total_ms);
    bulk_lookup_ms.push_back(k.lookup_ms);
  }
  verify(b, batch);
  const GatherRates gather = gather_only_gbps(b, batch);
  const double gather_gbps = gather.checked_gbps;
  const double cxl = bench::percentile(cxl_ms, 0.5), bulk = bench::percentile(bulk_ms, 0.5);
  const double ratio = bulk / cxl;
  // Rates of the data paths, from the medians less their lookups (for cxlkv-sim).
  const double cxl_data_s = (cxl - bench::percentile(cxl_lookup_ms, 0.5)) / 1e3;
  const double bulk_data_s = (bulk - bench::percentile(bulk_lookup_ms, 0.5)) / 1e3;
  fmt::print("{:>8} {:>6} {:>4} | {:>10.2f} {:>8.2f} | {:>10.2f} {:>8.2f} | {:>6.2f}x {:>8.2f}x {:>6.2f} | {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n",
             b.prefix_tokens, batch, engine_name(engine), cxl, bench::percentile(cxl_lookup_ms, 0.5), bulk,
             bench::percentile(bulk_lookup_ms, 0.5), ratio, counted_ratio, ratio / counted_ratio, gather_gbps,
             gather.after_gbps, gather.per_step_gbps, gather.unchecked_gbps);
  return json{{"prefix_tokens", b.prefix_tokens},
              {"batch", batch},
              {"keys_engine", engine_name(engine)},
              {"k", b.o.k},
              {"layers", b.layers},
              {"layout", b.client->layout().name()},
              {"cxl_ttft_ms", cxl_ms},
              {"cxl_lookup_ms", cxl_lookup_ms},
              {"bulk_ttft_ms", bulk_ms},
              {"bulk_lookup_ms", bulk_lookup_ms},
              {"cxl_ttft_ms_median", cxl},
              {"bulk_ttft_ms_median", bulk},
              {"bulk_over_cxl", ratio},
              {"counted_bytes_cxl_per_request", keys_bytes + rows_bytes},
              {"counted_bytes_bulk_per_request", bulk_bytes},
              {"copied_bytes_bulk_batch", copied},
              {"counted_ratio", counted_ratio},
              {"ratio_over_counted", ratio / counted_ratio},
              {"cxl_data_gbps", batch * (keys_bytes + rows_bytes) / cxl_data_s / 1e9},
              {"gather_only_gbps", gather_gbps},
              {"gather_only_unchecked_gbps", gather.unchecked_gbps},
              {"gather_only_check_after_gbps", gather.after_gbps},
              {"gather_only_check_per_step_gbps", gather.per_step_gbps},
              {"bulk_data_gbps", double(copied) / bulk_data_s / 1e9}};
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  Options& o = b.o;
  o.client.tenant = "t";
  o.client.token = "x";
  o.client.model = "ttft";
  CLI::App app{"cxlkv-bench-ttft: TTFT on a cache hit measured on the GPU, top-k from the pool against the whole "
               "prefix into HBM, through a running cxlkv-poold (layout deepseek-v3.2 or deepseek-v3.2-split)"};
  app.add_option("--endpoint", o.client.endpoint, "daemon endpoint, unix:/path or tcp:host:port")->required();
  app.add_option("--tenant", o.client.tenant, "tenant")->capture_default_str();
  app.add_option("--token", o.client.token, "tenant token")->capture_default_str();
  app.add_option("--model", o.client.model, "model (the namespace is tenant x model)")->capture_default_str();
  app.add_option("--tokens", o.tokens, "prefix length in tokens (whole pages)")->capture_default_str()->check(CLI::Range(64u, 1u << 20));
  app.add_option("--prefixes", o.prefixes, "distinct prefixes; request r uses prefix r mod this")
      ->capture_default_str()->check(CLI::Range(1u, 64u));
  app.add_option("--batches", o.batches, "batch sizes (requests whose first token is due together)")
      ->capture_default_str()->delimiter(',')->check(CLI::Range(1u, 64u));
  app.add_option("-k", o.k, "top-k entries per layer (DSA: 2048)")->capture_default_str()->check(CLI::Range(1u, 4096u));
  app.add_option("--reps", o.reps, "timed repetitions of each design (alternated; one warm-up before)")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--seed", o.seed, "seed of the synthetic prompts and indices")->capture_default_str();
  app.add_option("--keys-engines", o.keys_engines,
                 "how fetch_pages moves the keys (and scales) in the cxl design, a row each: auto (the library's "
                 "choice), sm (SM loads), ce (copy engines)")
      ->capture_default_str()->delimiter(',')->check(CLI::IsMember({"auto", "sm", "ce"}));
  app.add_option("--json", o.json_path, "write every figure to this file");
  CLI11_PARSE(app, argc, argv);

  auto client = value_or_die(Client::connect(o.client), "connect to " + o.client.endpoint);
  b.client = client.get();
  b.s = find_streams(*client);
  b.layers = client->layout().layers();
  b.pages = o.tokens / client->page_tokens();
  b.prefix_tokens = uint64_t{b.pages} * client->page_tokens();
  if (b.prefix_tokens < o.k) {
    fmt::print(stderr, "cxlkv-bench-ttft: -k {} is more than the prefix's {} tokens\n", o.k, b.prefix_tokens);
    return 2;
  }
  for (uint32_t i = 0; i < o.prefixes; ++i)
    b.keys.push_back(client->page_keys(testing::synthetic_prompt(uint32_t(b.prefix_tokens), o.seed + i)));
  write_prefixes(o, b.keys);
  auto gpu = value_or_die(GpuPool::attach(*client), "GpuPool::attach");
  b.gpu = gpu.get();
  cudaDeviceProp prop{};
  CUDA_OR_DIE(cudaGetDeviceProperties(&prop, 0));
  allocate(b, *std::max_element(o.batches.begin(), o.batches.end()));

  fmt::print("{} on {}, layout {}, k {}, {} reps (medians, ms)\n", "TTFT on a hit", prop.name, client->layout().name(),
             o.k, o.reps);
  fmt::print("{:>8} {:>6} {:>4} | {:>10} {:>8} | {:>10} {:>8} | {:>7} {:>9} {:>6} | {:>9} {:>9} {:>9} {:>9}\n", "tokens", "batch", "keys",
             "cxl", "lookup", "bulk", "lookup", "bulk/cxl", "counted", "share", "gather GB/s", "chk after", "per step", "unchecked");
  json runs = json::array();
  for (uint32_t batch : o.batches) {
    for (const std::string& e : o.keys_engines)
      runs.push_back(measure_batch(b, batch, e == "sm"   ? GpuPool::FetchEngine::kSmLoads
                                             : e == "ce" ? GpuPool::FetchEngine::kCopyEngines
                                                         : GpuPool::FetchEngine::kAuto));
  }
  if (!o.json_path.empty()) {
    // The rates the simulator takes, from the largest batch (the busiest link): the top-k gather
    // alone (a scattered gather, as cxlkv-bench-gpu's gather_gbps) and the bulk copy.
    const auto& rates = *std::max_element(runs.begin(), runs.end(), [](const json& a, const json& c) {
      return a["batch"].get<uint32_t>() < c["batch"].get<uint32_t>();
    });
    std::ofstream out(o.json_path);
    out << json{{"device", prop.name},
                {"gather_gbps", rates["gather_only_gbps"]},
                {"bulk_h2d_gbps", rates["bulk_data_gbps"]},
                {"rates_from", fmt::format("batch {}: the top-k gather of every layer alone; the whole prefix",
                                           rates["batch"].get<uint32_t>())},
                {"runs", runs}}
               .dump(2)
        << "\n";
    if (!out) return fmt::print(stderr, "cxlkv-bench-ttft: writing {} failed\n", o.json_path), 1;
  }
  return 0;
}
