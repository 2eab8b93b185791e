// Top-k traces: the index sets DSA's top-k selection would pick over decode steps, in two orders.
// TopkTrace (own splitmix64 stream, all layers, kept first and misses sorted) drives cxlkv-bench,
// cxlkv-bulk-fetch and the baseline tests; unique_random / next_overlapping (the caller's
// mt19937_64, one set, random order) drive cxlkv-bench-gpu and the GPU tests. Never change either
// sequence: benchmark results and tests are compared across runs by seed.
//
// TopkTrace: per layer, step 0 picks k distinct tokens of the context uniformly; each later step
// keeps round(overlap x k) of the previous step's set (a uniform subset) and adds the rest as new
// tokens not in it. Uniform picks are the worst case for locality (DSA keeps recent and sink tokens
// together; this does not), so counts of lines and ranges are upper bounds.
// Invariant per layer and step: |set| = k, set[0..kept) are in the previous set,
// set[kept..k) are not and are sorted ascending (the misses a fetcher must bring in).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace cxlkv::testing {

class TopkTrace {
 public:
  // k is capped at the context. overlap in [0, 1].
  TopkTrace(uint32_t context, uint32_t layers, uint32_t k, double overlap, uint64_t seed);

  // Moves to the next step (the first call makes step 0). No allocation after construction.
  void next_step();
  int step() const { return step_; }
  uint32_t k() const { return k_; }
  uint32_t layers() const { return layers_; }
  // This step's set of `layer`: kept tokens first, then the new ones, sorted.
  std::span<const int32_t> set(uint32_t layer) const { return {sets_.data() + size_t{layer} * k_, k_}; }
  // Tokens of the set that were in the previous step's set (0 at step 0).
  uint32_t kept(uint32_t layer) const { return kept_[layer]; }
  std::span<const int32_t> misses(uint32_t layer) const { return set(layer).subspan(kept_[layer]); }

 private:
  uint64_t next_random();

  uint32_t context_, layers_, k_;
  double overlap_;
  uint64_t rng_;
  int step_ = -1;
  std::vector<int32_t> sets_;    // [layers][k]
  std::vector<uint32_t> kept_;   // [layers]
  std::vector<uint32_t> mark_;   // [context], stamps
  uint32_t stamp_ = 0;
};

// k distinct indices in [0, n), in random order (draws from `rng`).
std::vector<int32_t> unique_random(uint32_t k, uint32_t n, std::mt19937_64& rng);

// Next top-k set of an overlapping trace: round(overlap x k) indices kept from `prev` (a random
// choice), the rest new, distinct, and not in `prev`; in random order. Unlike TopkTrace, keep is
// not capped when n < 2k (the caller keeps n >= 2k).
std::vector<int32_t> next_overlapping(const std::vector<int32_t>& prev, double overlap, uint32_t n, std::mt19937_64& rng);

}  // namespace cxlkv::testing
