// PoolWorkload: a real region carved by the real allocator into prefixes of random bytes, and the
// block tables of those prefixes; with it the top-k index sets that select from them (topk_trace.h,
// included). Used by cxlkv-bench-gpu and the GPU tests. Host-only: never touches a GPU; it exits on failure, so never use it outside a
// benchmark's or test's set-up.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "region.h"
#include "slab_allocator.h"
#include "topk_trace.h"

namespace cxlkv::testing {

struct PoolWorkload {
  std::unique_ptr<cxl::Region> region;
  std::unique_ptr<cxl::Region> metadata;
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

// Transparent huge pages backing shared memory now, from /proc/meminfo (kB), and the shmem
// THP policy.
std::string huge_page_report();

}  // namespace cxlkv::testing
