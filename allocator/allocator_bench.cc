// cxlkv-bench-allocator: allocate/free throughput and the time to create and map regions.
// Prints a table; every figure goes to docs/performance.md with this command line.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "region.h"
#include "slab_allocator.h"

using namespace cxlkv;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

cxl::RegionSpec spec_for(const std::string& backend, const std::string& dir, uint64_t bytes, int i) {
  cxl::RegionSpec spec;
  spec.backend = *cxl::parse_backend(backend);
  spec.size = bytes;
  const std::string tag = fmt::format("cxlkv-bench-{}-{}", getpid(), i);
  spec.path = spec.backend == cxl::Backend::kFile ? dir + "/" + tag : "/" + tag;
  spec.numa_node = 0;
  return spec;
}

int die(const Status& st) {
  fmt::print(stderr, "cxlkv-bench-allocator: {}\n", st.to_string());
  return 1;
}

// The metadata region beside `data` (its default place), made, and both allocator areas formatted.
Result<std::unique_ptr<cxl::Region>> make_metadata(cxl::Region& data) {
  auto spec = cxl::Region::metadata_spec_for(data.spec());
  if (!spec) return spec.status();
  const SlabGeometry g = SlabGeometry::plan(data.size(), data.data_offset(), data.layout(), data.slab_pages());
  auto metadata = cxl::Region::create_metadata(*spec, data, g.metadata_bytes());
  if (!metadata) return metadata.status();
  if (Status st = SlabAllocator::format(data, **metadata); !st) return st;
  return metadata;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-bench-allocator: slab allocate/free ops/s and region create/map time"};
  std::string backend = "shm", dir = "/dev/shm", layout_spec = "deepseek-v3.2";
  std::vector<uint64_t> sizes_gib = {1, 8, 32};
  uint64_t ops = 2'000'000;
  uint32_t slab_pages = 1;
  app.add_option("--backend", backend, "Region backend: shm, file or numa")->capture_default_str();
  app.add_option("--dir", dir, "Folder for file-backed regions")->capture_default_str();
  app.add_option("--layout", layout_spec, "Layout of the regions")->capture_default_str();
  app.add_option("--slab-pages", slab_pages, "Pages per slab (E)")->capture_default_str();
  app.add_option("--sizes-gib", sizes_gib, "Region sizes to create and map, GiB")->capture_default_str();
  app.add_option("--ops", ops, "Allocate+free pairs to time")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto layout = Layout::parse(layout_spec);
  if (!layout) return die(layout.status());

  fmt::print("region create + map ({} backend, layout {}, E = {})\n", backend, layout->name(), slab_pages);
  fmt::print("{:>8} {:>10} {:>12} {:>12} {:>12}\n", "GiB", "slabs", "create ms", "format ms", "open ms");
  int i = 0;
  for (uint64_t gib : sizes_gib) {
    auto spec = spec_for(backend, dir, gib << 30, i++);
    auto t0 = Clock::now();
    auto region = cxl::Region::create(spec, *layout, slab_pages);
    if (!region) return die(region.status());
    const double create_s = seconds_since(t0);
    t0 = Clock::now();
    auto metadata = make_metadata(**region);
    if (!metadata) return die(metadata.status());
    const double format_s = seconds_since(t0);
    metadata->reset();
    region->reset();
    t0 = Clock::now();
    auto reopened = cxl::Region::open(spec, &*layout);
    if (!reopened) return die(reopened.status());
    auto remapped = cxl::Region::open_metadata(*cxl::Region::metadata_spec_for(spec), **reopened);
    if (!remapped) return die(remapped.status());
    auto alloc = SlabAllocator::open(**reopened, **remapped);
    if (!alloc) return die(alloc.status());
    const double open_s = seconds_since(t0);
    fmt::print("{:>8} {:>10} {:>12.2f} {:>12.2f} {:>12.2f}\n", gib, (*alloc)->stats().total, create_s * 1e3,
               format_s * 1e3, open_s * 1e3);
    alloc->reset();
    remapped->reset();
    reopened->reset();
    (void)cxl::Region::remove(spec);
  }

  // Throughput: a small layout gives many slabs, so the free stack is deep and cold.
  auto spec = spec_for(backend, dir, 1ull << 30, i++);
  auto small = *Layout::parse("custom:name=bench,layers=1,page_tokens=64,stream=k/64/64/sparse");
  auto region = cxl::Region::create(spec, small, 1);
  if (!region) return die(region.status());
  auto metadata = make_metadata(**region);
  if (!metadata) return die(metadata.status());
  auto alloc = std::move(*SlabAllocator::open(**region, **metadata));
  const uint32_t batch = std::min<uint32_t>(alloc->stats().total, 4096);
  std::vector<uint32_t> held(batch);
  uint64_t done = 0;
  auto t0 = Clock::now();
  while (done < ops) {
    for (uint32_t k = 0; k < batch; ++k) held[k] = *alloc->allocate();
    for (uint32_t k = 0; k < batch; ++k) (void)alloc->free(held[k]);
    done += batch;
  }
  const double s = seconds_since(t0);
  fmt::print("\nallocate+free ({} slabs, batches of {}): {:.2f} M pairs/s, {:.0f} ns per allocate+free (each persists its state word)\n",
             alloc->stats().total, batch, done / s / 1e6, s / done * 1e9);
  alloc.reset();
  metadata->reset();
  region->reset();
  (void)cxl::Region::remove(spec);
  return 0;
}
