// TopkTrace: the trace model of DSA's top-k selections over decode steps. Per layer, step 0
// picks k distinct tokens of the context uniformly; each later step keeps round(overlap x k) of
// the previous step's set (a uniform subset) and adds the rest as new tokens not in it. Uniform
// picks are the worst case for locality (DSA keeps recent and sink tokens together; this does
// not), so counts of lines and ranges are upper bounds. Used by cxlkv-bench and cxlkv-bulk-fetch.
// Invariant per layer and step: |set| = k, set[0..kept) are in the previous set,
// set[kept..k) are not and are sorted ascending (the misses a fetcher must bring in).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cxlkv::baseline {

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

}  // namespace cxlkv::baseline
