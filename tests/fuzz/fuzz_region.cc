// Fuzz target: opening a region the daemon did not write as it expects (shm: its file under /dev/shm). A template region (a few
// committed and reserved pages, E = 2) is made once; each input overwrites the start of its
// metadata (region header, allocator header, slab states, page records) and, when the first
// byte's low four bits are all set, cuts the file short at the input's length. Then what the daemon does at start: open the region and
// check its header, open the allocator, recover the page records. Each must end in a clear error
// or a consistent pool, never a crash; the template is restored after every input.
#include <sys/mman.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>

#include "fuzz_pool.h"
#include "pool_service.h"

using namespace cxlkv;
using namespace cxlkv::pool;

namespace {

constexpr uint64_t kRegionBytes = 4 << 20;
std::string shm_name, path;  // the region's shm name and its file
std::vector<uint8_t> original;  // the template region's bytes
size_t meta_bytes = 0;          // what an input may overwrite and recovery may write: through the page records

void write_file(const uint8_t* data, size_t size, uint64_t length) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  if (!f) std::abort();
  if (std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  if (::truncate(path.c_str(), off_t(length)) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  fuzz::FuzzRegion r = fuzz::make_region("region", kRegionBytes, 2);
  shm_name = r.spec.path;
  path = "/dev/shm" + shm_name;
  std::atexit([] { std::remove(path.c_str()); });
  {
    auto service = PoolService::open(*r.region, *r.allocator, PoolOptions{});
    if (!service) std::abort();
    std::vector<wire::Placement> out(8);
    PageKey keys[5] = {};
    for (int i = 0; i < 5; ++i) keys[i].bytes[0] = uint8_t(i + 1);
    const auto now = Clock::now();
    auto lease = (*service)->reserve(1, 7, PageKey{}, keys, 3, out.data(), now);
    const uint64_t sums[3] = {};
    if (!lease || !(*service)->commit(1, *lease, sums, 3, now)) std::abort();
    if (!(*service)->reserve(1, 7, keys[2], keys + 3, 2, out.data(), now)) std::abort();  // left reserved
  }
  const SlabGeometry& g = r.allocator->geometry();
  meta_bytes = g.record_offset(uint64_t{g.slab_count} * g.slab_pages);
  const uint8_t* base = r.region->base();
  original.assign(base, base + kRegionBytes);
  r.allocator.reset();
  r.region.reset();
  fuzz::maybe_write_seeds(
      {{"template-metadata", std::vector<uint8_t>(original.begin(), original.begin() + std::min<size_t>(meta_bytes, 1 << 16))},
       {"header-page", std::vector<uint8_t>(original.begin(), original.begin() + 4096)}});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const size_t n = std::min(size, meta_bytes);
  const bool truncate = size > 0 && (data[0] & 0x0f) == 0x0f;
  write_file(data, n, truncate ? size : kRegionBytes);
  cxl::RegionSpec spec;
  spec.backend = cxl::Backend::kShm;
  spec.path = shm_name;
  auto layout = Layout::parse(fuzz::kLayout);
  if (auto region = cxl::Region::open(spec, &*layout)) {
    if (auto allocator = SlabAllocator::open(**region)) {
      RecoveryReport report;
      if (auto service = PoolService::open(**region, **allocator, PoolOptions{}, &report)) {
        const PoolStats s = (*service)->stats();
        if (s.slabs_free > s.slabs_total) std::abort();  // recovery must leave a consistent pool
      }
    }
  }
  // Restore: the metadata always; everything after a cut (the file grew back with zeros).
  write_file(original.data(), truncate ? original.size() : meta_bytes, kRegionBytes);
  return 0;
}
