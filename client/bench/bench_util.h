// Small helpers shared by the client benchmarks: a clock, percentiles, and the region size a
// layout needs for a number of pages. Benchmark code only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "slab_geometry.h"

namespace cxlkv::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The q-quantile (0..1) of samples, by nearest rank; sorts a copy.
inline double percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t i = size_t(q * double(samples.size() - 1) + 0.5);
  return samples[std::min(i, samples.size() - 1)];
}

// Bytes of a region that holds `pages` pages of `layout` with E = slab_pages, plus some slack.
inline uint64_t region_bytes_for(const Layout& layout, uint32_t slab_pages, uint64_t pages) {
  const SlabGeometry probe = SlabGeometry::plan(64ull << 30, 4096, layout, slab_pages);
  const uint64_t slabs = (pages + slab_pages - 1) / slab_pages + 2;
  const uint64_t bytes = slabs * probe.slab_bytes + slabs * (8 + 128ull * slab_pages) + (8ull << 20);
  return (bytes + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
}

}  // namespace cxlkv::bench
