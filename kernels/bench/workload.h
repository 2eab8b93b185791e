// The GPU benchmark's workload: a real region carved by the real allocator into prefixes, the
// block tables of those prefixes, and top-k index sets (uniform, sorted, and overlapping traces).
// Host-only; used by gpu_bench.cc and the GPU tests.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "region.h"
#include "slab_allocator.h"

namespace cxlkv::bench {

struct PoolWorkload {
  std::unique_ptr<cxl::Region> region;
  std::unique_ptr<SlabAllocator> allocator;
  cxl::RegionSpec spec;
  uint32_t pages_per_prefix = 0;
  // page_base[r][p]: offset of page p's layer-0 run of the latent stream, prefix r.
  std::vector<std::vector<uint64_t>> page_base;
  uint64_t filled_bytes = 0;

  ~PoolWorkload();
};

// Creates a shm region of pool_bytes with `layout_spec`, allocates as many prefixes of
// `context` tokens as fit (at most max_prefixes), and fills their slabs with random bytes using
// `threads` threads. Exits the process with a message on failure (benchmark edge).
// `backing` is "shm" (a shm region named after the pid) or a file path (the file backend: e.g. on
// a hugetlbfs mount, for huge-page backing).
std::unique_ptr<PoolWorkload> make_pool(uint64_t pool_bytes, const std::string& layout_spec, uint32_t slab_pages,
                                        uint32_t context, uint32_t max_prefixes, unsigned threads,
                                        const std::string& backing = "shm");

// k distinct indices in [0, n), in random order.
std::vector<int32_t> unique_random(uint32_t k, uint32_t n, std::mt19937_64& rng);

// Next top-k set of an overlapping trace: round(overlap x k) indices kept from `prev` (a random
// choice), the rest new, distinct, and not in `prev`; in random order.
std::vector<int32_t> next_overlapping(const std::vector<int32_t>& prev, double overlap, uint32_t n, std::mt19937_64& rng);

// Transparent huge pages backing shared memory now, from /proc/meminfo (kB), and the shmem
// THP policy.
std::string huge_page_report();

}  // namespace cxlkv::bench
