// The GPU benchmark's pool workload (see pool_workload.h).
#include "pool_workload.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "gather_types.h"
#include "pool_region.h"

namespace cxlkv::testing {
namespace {
[[noreturn]] void die(const std::string& what, const Status& st) {
  std::fprintf(stderr, "cxlkv-bench-gpu: %s: %s\n", what.c_str(), st.to_string().c_str());
  std::exit(1);
}
}  // namespace

PoolWorkload::~PoolWorkload() {
  allocator.reset();
  metadata.reset();
  region.reset();
  (void)cxl::Region::remove(spec);  // and its metadata region
}

std::unique_ptr<PoolWorkload> make_pool(uint64_t pool_bytes, const std::string& layout_spec, uint32_t slab_pages,
                                        uint32_t context, uint32_t max_prefixes, unsigned threads,
                                        const std::string& backing) {
  auto w = std::make_unique<PoolWorkload>();
  auto layout = Layout::parse(layout_spec);
  if (!layout) die("layout", layout.status());
  w->spec.backend = backing == "shm" ? cxl::Backend::kShm : cxl::Backend::kFile;
  w->spec.path = backing == "shm" ? "/cxlkv-gpubench-" + std::to_string(getpid()) : backing;
  w->spec.size = pool_bytes;
  auto region = cxl::Region::create(w->spec, *layout, slab_pages);
  if (!region) die("create region", region.status());
  w->region = std::move(*region);
  auto metadata = format_pool(*w->region);
  if (!metadata) die("format", metadata.status());
  w->metadata = std::move(*metadata);
  auto alloc = SlabAllocator::open(*w->region, *w->metadata);
  if (!alloc) die("allocator", alloc.status());
  w->allocator = std::move(*alloc);
  const SlabGeometry& g = w->allocator->geometry();
  w->pages_per_prefix = context / g.page_tokens;
  const uint32_t slabs_per_prefix = (w->pages_per_prefix + slab_pages - 1) / slab_pages;
  const uint32_t prefixes = std::min<uint32_t>(max_prefixes, g.slab_count / slabs_per_prefix);
  if (prefixes == 0) die("pool", Status(Code::kExhausted, "the pool holds no whole prefix; raise --pool-gib"));
  std::vector<uint32_t> slabs;
  for (uint32_t r = 0; r < prefixes; ++r) {
    std::vector<uint64_t> bases(w->pages_per_prefix);
    uint32_t slab = 0;
    for (uint32_t p = 0; p < w->pages_per_prefix; ++p) {
      if (p % slab_pages == 0) {
        slab = *w->allocator->allocate();
        slabs.push_back(slab);
      }
      bases[p] = kernels::page_base_offset(g.slab_offset(slab), g.stream_offset[0], p % slab_pages, g.page_tokens, g.stride[0]);
    }
    w->page_base.push_back(std::move(bases));
  }
  // Random bytes in every allocated slab, in parallel.
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      for (size_t i = t; i < slabs.size(); i += threads) {
        auto* p = reinterpret_cast<uint64_t*>(w->allocator->slab_address(slabs[i]));
        for (uint64_t j = 0; j < g.slab_bytes / 8; ++j) {
          x ^= x << 13; x ^= x >> 7; x ^= x << 17;
          p[j] = x;
        }
      }
    });
  for (auto& th : pool) th.join();
  w->filled_bytes = uint64_t(slabs.size()) * g.slab_bytes;
  return w;
}

std::string huge_page_report() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line, out;
  while (std::getline(meminfo, line))
    if (line.rfind("ShmemHugePages", 0) == 0 || line.rfind("AnonHugePages", 0) == 0 ||
        line.rfind("HugePages_Total", 0) == 0 || line.rfind("HugePages_Free", 0) == 0)
      out += line.substr(0, line.find(':')) + "=" + std::to_string(std::atol(line.substr(line.find(':') + 1).c_str())) + "kB ";
  std::ifstream policy("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string p;
  std::getline(policy, p);
  return out + "shmem_enabled=[" + p + "]";
}

}  // namespace cxlkv::testing
