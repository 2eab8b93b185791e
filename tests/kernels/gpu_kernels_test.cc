// The CUDA kernels against their CPU references, byte for byte, on fresh random data in a region
// carved by the real allocator. Without a CUDA device the whole binary reports a skip (exit 77)
// and says why.
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "cxlkv/layout.h"
#include "gather.h"
#include "gpu_region.h"
#include "hot_buffer.h"
#include "reference.h"
#include "sparse_fetch.h"
#include "pool_workload.h"

using namespace cxlkv;
using namespace cxlkv::kernels;

namespace {

#define CUDA_REQUIRE(call) REQUIRE((call) == cudaSuccess)

template <typename T>
T* to_device(const std::vector<T>& v) {
  T* d = nullptr;
  CUDA_REQUIRE(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
  CUDA_REQUIRE(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

struct Pool {
  std::unique_ptr<testing::PoolWorkload> w;
  std::unique_ptr<GpuRegistration> reg;
  StreamShape shape;
  std::vector<uint64_t*> dev_tables;
  // preset "deepseek-v3.2" or "deepseek-v3.2-split" (latent 640 B: the shape is the pool entry's).
  Pool(uint32_t stride, uint32_t slab_pages, const std::string& preset = "deepseek-v3.2") {
    // 1 GiB, 4K-token prefixes (64 pages, ~200 MB each): several prefixes and slabs.
    w = testing::make_pool(1ull << 30, preset + ":latent_stride=" + std::to_string(stride), slab_pages, 4096, 4, 4);
    auto r = GpuRegistration::register_range(w->region->base(), w->region->size());
    REQUIRE(r.is_ok());
    reg = std::move(*r);
    const auto& g = w->allocator->geometry();
    shape = StreamShape{Layout::parse(preset)->stream(0).entry_bytes, stride, uint64_t{slab_pages} * 64 * stride, 64, 6};
    for (auto& t : w->page_base) dev_tables.push_back(to_device(t));
    REQUIRE(g.stride[0] == stride);
  }
  ~Pool() {
    for (auto* p : dev_tables) cudaFree(p);
  }
};

}  // namespace

namespace {

// A batch of gather segments over a Pool, one random layer each: unique random indices per
// segment, with `mark` planting the bad ones; host segments writing into `want` for the
// reference, device segments into d_out; with side_bytes, a random side array per segment
// ([tokens][side_bytes], host and device); the scratch of an ordered launch.
struct GatherBatch {
  uint32_t k, segments;
  size_t out_bytes;
  std::vector<int32_t> idx;
  std::vector<uint8_t> side, want, got;
  std::vector<GatherSegment> host, dev;
  int32_t* d_idx = nullptr;
  uint8_t *d_out = nullptr, *d_side = nullptr;
  uint32_t* d_err = nullptr;
  GatherSegment* d_segs = nullptr;
  GatherOrderScratch order;

  template <typename Mark>
  GatherBatch(Pool& pool, const StreamShape& shape, uint32_t k_, uint32_t segments_, std::mt19937_64& rng, Mark&& mark)
      : k(k_), segments(segments_), out_bytes(size_t{segments_} * k_ * shape.row_bytes()) {
    const uint32_t tokens = pool.w->pages_per_prefix * 64;
    for (uint32_t s = 0; s < segments; ++s) {
      auto v = testing::unique_random(k, tokens, rng);
      mark(v, tokens);
      idx.insert(idx.end(), v.begin(), v.end());
    }
    side.resize(size_t{segments} * tokens * shape.side_bytes);
    for (auto& b : side) b = uint8_t(rng());
    d_idx = to_device(idx);
    d_side = to_device(side);
    CUDA_REQUIRE(cudaMalloc(&d_out, out_bytes));
    CUDA_REQUIRE(cudaMalloc(&d_err, 4));
    want.assign(out_bytes, 0x5A);
    got.resize(out_bytes);
    host.resize(segments), dev.resize(segments);
    for (uint32_t s = 0; s < segments; ++s) {
      const uint32_t r = s % pool.w->page_base.size(), layer = uint32_t(rng() % 61);
      const size_t out_at = size_t{s} * k * shape.row_bytes(), side_at = size_t{s} * tokens * shape.side_bytes;
      host[s] = GatherSegment{pool.w->page_base[r].data(), idx.data() + s * k, want.data() + out_at,
                              pool.w->pages_per_prefix, layer, k, 0};
      dev[s] = GatherSegment{pool.dev_tables[r], d_idx + s * k, d_out + out_at, pool.w->pages_per_prefix, layer, k, 0};
      if (shape.side_bytes) host[s].side = side.data() + side_at, dev[s].side = d_side + side_at;
    }
    d_segs = to_device(dev);
    CUDA_REQUIRE(cudaMalloc(&order.indices, idx.size() * sizeof(int32_t)));
    CUDA_REQUIRE(cudaMalloc(&order.rows, idx.size() * sizeof(uint32_t)));
    CUDA_REQUIRE(cudaMalloc(&order.segments, segments * sizeof(GatherSegment)));
  }
  ~GatherBatch() {
    cudaFree(order.indices), cudaFree(order.rows), cudaFree(order.segments);
    cudaFree(d_segs), cudaFree(d_idx), cudaFree(d_out), cudaFree(d_err), cudaFree(d_side);
  }
  // Poisons the output and the error count, runs `launch`, and reads both back into got / the
  // returned count.
  template <typename Launch>
  uint32_t run(Launch&& launch) {
    CUDA_REQUIRE(cudaMemset(d_out, 0x5A, out_bytes));
    CUDA_REQUIRE(cudaMemset(d_err, 0, 4));
    launch();
    CUDA_REQUIRE(cudaDeviceSynchronize());
    CUDA_REQUIRE(cudaMemcpy(got.data(), d_out, out_bytes, cudaMemcpyDeviceToHost));
    uint32_t errors = 0;
    CUDA_REQUIRE(cudaMemcpy(&errors, d_err, 4, cudaMemcpyDeviceToHost));
    return errors;
  }
};

}  // namespace

TEST_CASE("GPU top-k gather equals the CPU reference byte for byte, -1 rows untouched, bad indices counted") {
  const uint32_t stride = GENERATE(656u, 704u);
  const uint32_t slab_pages = GENERATE(1u, 8u);
  CAPTURE(stride, slab_pages);
  Pool pool(stride, slab_pages);
  std::mt19937_64 rng(std::random_device{}());
  const uint32_t k = 2048, segments = 6;
  GatherBatch b(pool, pool.shape, k, segments, rng, [](std::vector<int32_t>& v, uint32_t tokens) {
    v[5] = -1;
    v[9] = int32_t(tokens + 3);  // past the prefix: counted, never read
    v[11] = -7;                  // negative but not -1: counted too
  });
  CHECK(reference_gather(pool.w->region->base(), pool.shape, b.host.data(), segments) == 2 * segments);
  // 0-2: flat tunings; 3: the warp-per-entry yardstick; 4: interleaved blocks; 5-6: ordered
  // segments (sorted on the GPU, rows kept), interleaved, flat and windowed; 7-9: the bulk copy
  // unit, segment-major with few copiers (each copier reuses its slot over several rounds),
  // interleaved with two and four stages, the last over ordered segments.
  const BulkGatherTuning bulk[3] = {{32, 1, 1, false}, {64, 2, 2, true}, {32, 4, 1, true}};
  for (int variant = 0; variant < 10; ++variant) {
    CAPTURE(variant);
    GatherTuning tuning{variant < 2 ? 256u : 512u, variant % 2 ? 8u : 2u, 8};
    tuning.interleave_segments = variant >= 4;
    if (variant == 6) tuning.entries_per_block = 16;
    const uint32_t errors = b.run([&] {
      const GatherSegment* segs = b.d_segs;
      if (variant == 5 || variant == 6 || variant == 9) {
        CUDA_REQUIRE(launch_order_segments(b.d_segs, segments, k, b.order, 0));
        segs = b.order.segments;
      }
      if (variant == 3) CUDA_REQUIRE(launch_gather_topk_warp_per_entry(pool.reg->device(), pool.shape, b.d_segs, segments, k, b.d_err, 0));
      else if (variant >= 7) CUDA_REQUIRE(launch_gather_topk_bulk(pool.reg->device(), pool.shape, segs, segments, k, b.d_err, bulk[variant - 7], 0));
      else CUDA_REQUIRE(launch_gather_topk(pool.reg->device(), pool.shape, segs, segments, k, b.d_err, tuning, 0));
    });
    CHECK(errors == 2 * segments);
    CHECK(b.got == b.want);
  }
  CHECK(launch_order_segments(b.d_segs, segments, kMaxOrderedK + 1, b.order, 0) == cudaErrorInvalidValue);
  StreamShape not_16 = pool.shape;
  not_16.entry_bytes = 660;  // not a whole number of the bulk unit's 16 B granules
  CHECK(launch_gather_topk_bulk(pool.reg->device(), not_16, b.d_segs, segments, k, b.d_err, bulk[1], 0) == cudaErrorInvalidValue);
}

TEST_CASE("GPU gather of split rows puts each token's scales back in at byte 512, as the CPU reference") {
  const uint32_t slab_pages = GENERATE(1u, 8u);
  CAPTURE(slab_pages);
  Pool pool(640, slab_pages, "deepseek-v3.2-split");
  REQUIRE(pool.shape.entry_bytes == 640);
  StreamShape shape = pool.shape;
  shape.side_bytes = 16;
  shape.side_at = 512;
  std::mt19937_64 rng(std::random_device{}());
  const uint32_t k = 2048, segments = 5;
  // Side arrays (the scales of one layer of a prefix, [tokens][16 B]): random, one per segment.
  GatherBatch b(pool, shape, k, segments, rng, [](std::vector<int32_t>& v, uint32_t tokens) {
    v[7] = -1;
    v[8] = int32_t(tokens);  // past the prefix: counted, never read
  });
  CHECK(reference_gather(pool.w->region->base(), shape, b.host.data(), segments) == segments);
  // 0: flat; 1: windowed, interleaved; 2: ordered (sorted on the GPU, rows kept) with the library's tuning.
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    GatherTuning tuning{512, 4, 8};
    if (variant == 1) tuning = GatherTuning{256, 8, 8, 16, true};
    if (variant == 2) tuning = kOrderedGatherTuning;
    const uint32_t errors = b.run([&] {
      const GatherSegment* segs = b.d_segs;
      if (variant == 2) {
        CUDA_REQUIRE(launch_order_segments(b.d_segs, segments, k, b.order, 0));
        segs = b.order.segments;
      }
      CUDA_REQUIRE(launch_gather_topk(pool.reg->device(), shape, segs, segments, k, b.d_err, tuning, 0));
    });
    CHECK(errors == segments);
    CHECK(b.got == b.want);
  }
  // Whole-entry kernels refuse split rows rather than build rows of the wrong shape.
  CHECK(launch_gather_topk_warp_per_entry(pool.reg->device(), shape, b.d_segs, segments, k, b.d_err, 0) == cudaErrorInvalidValue);
  CHECK(launch_gather_topk_bulk(pool.reg->device(), shape, b.d_segs, segments, k, b.d_err, BulkGatherTuning{}, 0) ==
        cudaErrorInvalidValue);
  StreamShape past_entry = shape;
  past_entry.side_at = 656;  // beyond the 640 B entry
  CHECK(launch_gather_topk(pool.reg->device(), past_entry, b.d_segs, segments, k, b.d_err, GatherTuning{}, 0) == cudaErrorInvalidValue);
}

TEST_CASE("GPU sparse-fetch split and assembly equal the CPU reference, hot rows or none") {
  constexpr uint32_t kRow = 656, kSegs = 5, kMaxK = 700, kHotRows = 1400;
  std::mt19937 rng(std::random_device{}());
  const bool with_hot = GENERATE(false, true);
  CAPTURE(with_hot);
  std::vector<std::vector<int32_t>> topk(kSegs), row_of(kSegs);
  std::vector<std::vector<uint8_t>> tail(kSegs), hot(kSegs), out(kSegs);
  std::vector<SparseFetchSegment> host(kSegs), dev(kSegs);
  std::vector<void*> owned;
  auto up = [&](const auto& v) {
    auto* d = to_device(v);
    owned.push_back(d);
    return d;
  };
  for (uint32_t s = 0; s < kSegs; ++s) {
    SparseFetchSegment& h = host[s];
    h.k = s == 0 ? kMaxK : 1 + rng() % kMaxK;
    h.prefix_tokens = 64 * (1 + rng() % 40);
    h.tail_tokens = s == 1 ? 0 : rng() % 50;
    for (uint32_t i = 0; i < h.k; ++i) {
      const uint32_t kind = rng() % 10;  // mostly prefix, some tail, some -1 and some bad
      topk[s].push_back(kind < 6 ? int32_t(rng() % h.prefix_tokens)
                        : kind < 8 ? int32_t(h.prefix_tokens + rng() % (h.tail_tokens + 1))  // may be one past
                        : kind < 9 ? -1 : (rng() % 2 ? -7 : int32_t(h.prefix_tokens + h.tail_tokens + rng() % 9)));
      row_of[s].push_back(rng() % 5 ? int32_t(rng() % kHotRows) : -1);
    }
    tail[s].resize(size_t{std::max(h.tail_tokens, 1u)} * kRow);
    hot[s].resize(size_t{kHotRows} * kRow);
    out[s].resize(size_t{h.k} * kRow);
    for (auto* v : {&tail[s], &hot[s], &out[s]})
      for (auto& b : *v) b = uint8_t(rng());
    dev[s] = h;
    dev[s].topk = up(topk[s]);
    dev[s].row_of = with_hot ? up(row_of[s]) : nullptr;
    dev[s].hot_rows = up(hot[s]);
    dev[s].tail = up(tail[s]);
    dev[s].out = up(out[s]);
    h.topk = topk[s].data();
    h.row_of = with_hot ? row_of[s].data() : nullptr;
    h.hot_rows = hot[s].data();
    h.tail = tail[s].data();
    h.out = out[s].data();
  }
  std::vector<int32_t> want_split(size_t{kSegs} * kMaxK, 0x7777), got_split(want_split);
  const uint64_t want_bad = reference_split_prefix(host.data(), kSegs, kMaxK, want_split.data());
  reference_assemble_rows(host.data(), kSegs, kRow);
  SparseFetchSegment* d_segs = up(dev);
  int32_t* d_split = up(got_split);
  uint32_t* d_bad = up(std::vector<uint32_t>{0});
  CUDA_REQUIRE(launch_split_prefix(d_segs, kSegs, kMaxK, d_split, d_bad, 0));
  CUDA_REQUIRE(launch_assemble_rows(d_segs, kSegs, kMaxK, kRow, 0));
  CUDA_REQUIRE(cudaDeviceSynchronize());
  uint32_t bad = 0;
  CUDA_REQUIRE(cudaMemcpy(&bad, d_bad, 4, cudaMemcpyDeviceToHost));
  CUDA_REQUIRE(cudaMemcpy(got_split.data(), d_split, got_split.size() * 4, cudaMemcpyDeviceToHost));
  CHECK(want_bad > 0);
  CHECK(bad == want_bad);
  CHECK(got_split == want_split);
  for (uint32_t s = 0; s < kSegs; ++s) {
    CAPTURE(s, host[s].k, host[s].prefix_tokens, host[s].tail_tokens);
    std::vector<uint8_t> got(out[s].size());
    CUDA_REQUIRE(cudaMemcpy(got.data(), dev[s].out, got.size(), cudaMemcpyDeviceToHost));
    CHECK(got == out[s]);
  }
  for (void* p : owned) cudaFree(p);
}

TEST_CASE("GPU run copy equals the CPU reference") {
  Pool pool(656, 8);
  const auto& g = pool.w->allocator->geometry();
  // The indexer keys of layer 7 for the first 40 pages of prefix 0: one run per slab.
  std::vector<uint64_t> src;
  std::vector<uint32_t> bytes;
  std::vector<uint64_t> dst;
  uint64_t total = 0;
  for (uint32_t p = 0; p < 40; p += 8) {
    const uint64_t slab_offset = pool.w->page_base[0][p] - g.stream_offset[0];
    src.push_back(slab_offset + g.page_run_offset(1, 7, 0));
    bytes.push_back(8 * 64 * 132);
    dst.push_back(total);
    total += bytes.back();
  }
  std::vector<uint8_t> want(total), got(total);
  reference_copy_runs(pool.w->region->base(), src.data(), bytes.data(), uint32_t(src.size()), want.data());
  uint64_t* d_src = to_device(src);
  uint32_t* d_bytes = to_device(bytes);
  uint64_t* d_dst = to_device(dst);
  uint8_t* d_out = nullptr;
  CUDA_REQUIRE(cudaMalloc(&d_out, total));
  CUDA_REQUIRE(cudaMemset(d_out, 0x33, total));
  CUDA_REQUIRE(launch_copy_runs(pool.reg->device(), d_src, d_bytes, d_dst, uint32_t(src.size()), d_out, 0));
  CUDA_REQUIRE(cudaMemcpy(got.data(), d_out, total, cudaMemcpyDeviceToHost));
  CHECK(got == want);
  cudaFree(d_src), cudaFree(d_bytes), cudaFree(d_dst), cudaFree(d_out);
}

TEST_CASE("GPU hot buffer resolves, evicts and fetches exactly as the CPU reference, step after step") {
  // Whole 656 B entries, or split rows (640 B from the pool, 16 B of scales from GPU memory).
  const bool split = GENERATE(false, true);
  // Where the step numbers start: the victims' select takes one pass of 11 bits over the span of
  // the rows' last uses (never used = -1), two from a million, three near INT32_MAX.
  const int32_t first_step = GENERATE(0, 1000000, INT32_MAX - 16);
  CAPTURE(split, first_step);
  Pool pool(split ? 640 : 656, 1, split ? "deepseek-v3.2-split" : "deepseek-v3.2");
  StreamShape shape = pool.shape;
  if (split) shape.side_bytes = 16, shape.side_at = 512;
  REQUIRE(shape.row_bytes() == 656);
  std::mt19937_64 rng(std::random_device{}());
  const uint32_t k = 512, capacity = 3 * k, tokens = pool.w->pages_per_prefix * 64, requests = 3;
  std::vector<std::vector<uint8_t>> side(requests, std::vector<uint8_t>(size_t{tokens} * 16));
  std::vector<uint8_t*> d_side(requests);
  std::vector<HotBufferState> ref(requests);
  std::vector<HotSegment> hs(requests);
  int32_t *d_idx = nullptr, *d_row_of = nullptr;
  uint32_t *d_counts = nullptr, *d_err = nullptr;
  CUDA_REQUIRE(cudaMalloc(&d_idx, requests * k * 4));
  CUDA_REQUIRE(cudaMalloc(&d_row_of, requests * k * 4));
  CUDA_REQUIRE(cudaMalloc(&d_counts, requests * 8));
  CUDA_REQUIRE(cudaMalloc(&d_err, 4));
  CUDA_REQUIRE(cudaMemset(d_err, 0, 4));
  std::vector<void*> owned;
  auto fill = [&](size_t bytes, int v) {
    void* p = nullptr;
    CUDA_REQUIRE(cudaMalloc(&p, bytes));
    CUDA_REQUIRE(cudaMemset(p, v, bytes));
    owned.push_back(p);
    return p;
  };
  for (uint32_t r = 0; r < requests; ++r) {
    ref[r].reset(capacity, tokens, 656);
    hs[r].gather = GatherSegment{pool.dev_tables[r], d_idx + r * k, nullptr, pool.w->pages_per_prefix, 11, k, 0};
    for (auto& b : side[r]) b = uint8_t(rng());
    d_side[r] = to_device(side[r]);
    if (split) hs[r].gather.side = d_side[r];
    hs[r].slot_of = static_cast<int32_t*>(fill(tokens * 4, 0xff));
    hs[r].token_of = static_cast<int32_t*>(fill(capacity * 4, 0xff));
    hs[r].last_used = static_cast<int32_t*>(fill(capacity * 4, 0xff));
    hs[r].rows = static_cast<uint8_t*>(fill(size_t{capacity} * 656, 0));
    hs[r].row_of = d_row_of + r * k;
    hs[r].hits = d_counts + 2 * r;
    hs[r].misses = d_counts + 2 * r + 1;
    hs[r].capacity = capacity;
    hs[r].tokens = tokens;
  }
  HotSegment* d_hs = to_device(hs);
  std::vector<std::vector<int32_t>> cur(requests);
  for (int32_t step = first_step; step < first_step + 12; ++step) {
    std::vector<int32_t> idx;
    for (uint32_t r = 0; r < requests; ++r) {
      cur[r] = step == first_step ? testing::unique_random(k, tokens, rng) : testing::next_overlapping(cur[r], 0.7, tokens, rng);
      cur[r][3] = -1;
      idx.insert(idx.end(), cur[r].begin(), cur[r].end());
    }
    CUDA_REQUIRE(cudaMemcpy(d_idx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice));
    CUDA_REQUIRE(launch_hot_step(pool.reg->device(), shape, d_hs, requests, step, d_err, 0));
    std::vector<int32_t> row_of(idx.size());
    std::vector<uint32_t> counts(2 * requests);
    CUDA_REQUIRE(cudaMemcpy(row_of.data(), d_row_of, row_of.size() * 4, cudaMemcpyDeviceToHost));
    CUDA_REQUIRE(cudaMemcpy(counts.data(), d_counts, counts.size() * 4, cudaMemcpyDeviceToHost));
    for (uint32_t r = 0; r < requests; ++r) {
      CAPTURE(step, r);
      GatherSegment seg{pool.w->page_base[r].data(), cur[r].data(), nullptr, pool.w->pages_per_prefix, 11, k, 0};
      seg.side = side[r].data();
      auto want = reference_hot_step(ref[r], pool.w->region->base(), shape, seg, step);
      CHECK(counts[2 * r] == want.hits);
      CHECK(counts[2 * r + 1] == want.misses);
      CHECK(std::equal(want.row_of.begin(), want.row_of.end(), row_of.begin() + r * k));
      std::vector<uint8_t> rows(size_t{capacity} * 656);
      CUDA_REQUIRE(cudaMemcpy(rows.data(), hs[r].rows, rows.size(), cudaMemcpyDeviceToHost));
      CHECK(rows == ref[r].rows);
    }
  }
  for (void* p : owned) cudaFree(p);
  for (auto* p : d_side) cudaFree(p);
  cudaFree(d_hs), cudaFree(d_idx), cudaFree(d_row_of), cudaFree(d_counts), cudaFree(d_err);
}

int main(int argc, char** argv) {
  std::string why;
  if (!gpu_available(&why)) {
    std::printf("SKIP: GPU kernel tests need a CUDA device: %s\n", why.c_str());
    return 77;  // meson's exit code for a skipped test
  }
  return Catch::Session().run(argc, argv);
}
