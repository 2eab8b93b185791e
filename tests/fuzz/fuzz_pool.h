// What the fuzz targets share: a small formatted pool region of their own under /dev/shm (removed
// at exit), and the seed writer (CXLKV_FUZZ_WRITE_SEEDS=dir makes a target write its seed corpus
// there and exit, so the checked-in corpus can be remade). Fuzz builds only (meson -Dfuzzing=true).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/layout.h"
#include "region.h"
#include "slab_allocator.h"

namespace cxlkv::fuzz {

// 2 layers, latent 64 B + indexer 32 B: 12 KiB pages, so a region of a few MiB has many slabs.
inline constexpr const char* kLayout =
    "custom:name=fuzz,layers=2,page_tokens=64,stream=latent/64/64/sparse,stream=indexer/32/32/bulk";

struct FuzzRegion {
  cxl::RegionSpec spec;
  std::unique_ptr<cxl::Region> region;
  std::unique_ptr<cxl::Region> metadata;  // its metadata region (spec.path + ".meta")
  std::unique_ptr<SlabAllocator> allocator;
};

// Files the target removes when it exits (a fuzzer ends through exit(), never returning from main).
inline std::vector<std::string>& files_removed_at_exit() {
  static auto* files = new std::vector<std::string>();  // never destroyed: the atexit handler reads it
  return *files;
}
inline void remove_at_exit(std::string file) {
  static const bool registered = [] {
    std::atexit([] {
      for (const std::string& f : files_removed_at_exit()) std::remove(f.c_str());
    });
    return true;
  }();
  (void)registered;
  files_removed_at_exit().push_back(std::move(file));
}

// A fresh shm region of `bytes` (its file: /dev/shm + spec.path) and its metadata region
// (/dev/shm + spec.path + ".meta"), E = `slab_pages`, formatted, both removed at exit;
// aborts on failure (a target that cannot set up must not report a clean run).
inline FuzzRegion make_region(const std::string& tag, uint64_t bytes, uint32_t slab_pages) {
  FuzzRegion f;
  f.spec.backend = cxl::Backend::kShm;
  f.spec.path = "/cxlkv-fuzz-" + tag + "-" + std::to_string(getpid());
  f.spec.size = bytes;
  (void)cxl::Region::remove(f.spec);
  auto layout = Layout::parse(kLayout);
  auto r = cxl::Region::create(f.spec, *layout, slab_pages);
  const SlabGeometry g = SlabGeometry::plan(bytes, cxl::kRegionHeaderBytes, *layout, slab_pages);
  auto m = r ? cxl::Region::create_metadata(*cxl::Region::metadata_spec_for(f.spec), **r, g.metadata_bytes())
             : Result<std::unique_ptr<cxl::Region>>(r.status());
  if (!m || !SlabAllocator::format(**r, **m)) {
    std::fprintf(stderr, "fuzz: cannot make the region %s\n", f.spec.path.c_str());
    std::abort();
  }
  remove_at_exit("/dev/shm" + f.spec.path);
  remove_at_exit("/dev/shm" + f.spec.path + ".meta");
  auto a = SlabAllocator::open(**r, **m);
  if (!a) std::abort();
  f.region = std::move(*r);
  f.metadata = std::move(*m);
  f.allocator = std::move(*a);
  return f;
}

// With CXLKV_FUZZ_WRITE_SEEDS=dir: writes each seed as dir/NAME and exits 0.
inline void maybe_write_seeds(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& seeds) {
  const char* dir = std::getenv("CXLKV_FUZZ_WRITE_SEEDS");
  if (!dir) return;
  for (const auto& [name, bytes] : seeds)
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  std::fprintf(stderr, "fuzz: %zu seeds written to %s\n", seeds.size(), dir);
  std::exit(0);
}

}  // namespace cxlkv::fuzz
