// Fuzz target: opening a region the daemon did not write as it expects (shm: its files under
// /dev/shm). A template pool (a few committed and reserved pages, E = 2) is made once: the data
// region and its metadata region. An input is one control byte, then bytes that overwrite one of
// them: the metadata region from its start (region header, allocator header, slab words, page
// records), or, when the control byte's bit 4 is set, the data region after its header (the
// published allocator header and slab words: what a client can store into); when the control
// byte's low four bits are all set, that file is also cut short at the payload's end. Then what
// the daemon does at start: open the region and check its header, open the metadata region and
// the allocator, recover the page records. Each must end in a clear error or a consistent pool,
// never a crash; the template is restored after every input.
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
std::string shm_name, data_path, meta_path;  // the region's shm name and its two files
std::vector<uint8_t> data_original, meta_original;  // the template's bytes
size_t data_meta_bytes = 0;  // of the data region, what an input may overwrite: through the published words

void write_file(const std::string& path, const uint8_t* data, size_t size, uint64_t length) {
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
  data_path = "/dev/shm" + shm_name;
  meta_path = data_path + ".meta";
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
  data_meta_bytes = g.state_offset + 8ull * g.slab_count;
  data_original.assign(r.region->base(), r.region->base() + kRegionBytes);
  meta_original.assign(r.metadata->base(), r.metadata->base() + r.metadata->size());
  r.allocator.reset();
  r.metadata.reset();
  r.region.reset();
  auto seed = [](uint8_t control, const std::vector<uint8_t>& from, size_t at, size_t bytes) {
    std::vector<uint8_t> v{control};
    v.insert(v.end(), from.begin() + ptrdiff_t(at), from.begin() + ptrdiff_t(std::min(from.size(), at + bytes)));
    return v;
  };
  fuzz::maybe_write_seeds({{"template-metadata", seed(0, meta_original, 0, 1 << 16)},
                           {"header-page", seed(0, meta_original, 0, 4096)},
                           {"data-published", seed(0x10, data_original, cxl::kRegionHeaderBytes,
                                                   data_meta_bytes - cxl::kRegionHeaderBytes)}});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool into_data = (data[0] & 0x10) != 0, truncate = (data[0] & 0x0f) == 0x0f;
  const uint8_t* payload = data + 1;
  const std::string& path = into_data ? data_path : meta_path;
  const size_t at = into_data ? cxl::kRegionHeaderBytes : 0;
  const size_t n = std::min(size - 1, into_data ? data_meta_bytes - at : meta_original.size());
  // The payload at `at` (write_file writes from the start, so the bytes before it as they were).
  std::vector<uint8_t> bytes(into_data ? data_original.begin() : meta_original.begin(),
                             (into_data ? data_original.begin() : meta_original.begin()) + ptrdiff_t(at));
  bytes.insert(bytes.end(), payload, payload + n);
  write_file(path, bytes.data(), bytes.size(), truncate ? at + size - 1 : (into_data ? data_original : meta_original).size());
  cxl::RegionSpec spec;
  spec.backend = cxl::Backend::kShm;
  spec.path = shm_name;
  auto layout = Layout::parse(fuzz::kLayout);
  if (auto region = cxl::Region::open(spec, &*layout)) {
    if (auto metadata = cxl::Region::open_metadata(*cxl::Region::metadata_spec_for(spec), **region)) {
      if (auto allocator = SlabAllocator::open(**region, **metadata)) {
        RecoveryReport report;
        if (auto service = PoolService::open(**region, **allocator, PoolOptions{}, &report)) {
          const PoolStats s = (*service)->stats();
          if (s.slabs_free > s.slabs_total) std::abort();  // recovery must leave a consistent pool
        }
      }
    }
  }
  // Restore what an input or the open (which rewrites the published copies and recovers the
  // records) may have changed: the metadata region whole, the data region through its published
  // words, or whole after a cut (the file grew back with zeros).
  write_file(meta_path, meta_original.data(), meta_original.size(), meta_original.size());
  write_file(data_path, data_original.data(), into_data && truncate ? data_original.size() : data_meta_bytes,
             data_original.size());
  return 0;
}
