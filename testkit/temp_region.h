// Temporary regions: unique region specs (shm, file, devdax stand-in, numa) and a guard that
// removes their backing when a test ends. Used by the cxl/, allocator/, pool/ and client/ tests;
// never by production code, and never for a region a daemon it did not start still maps.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "region.h"

namespace cxlkv::testing {

// A unique spec for `backend`: an shm name, or a file under /dev/shm (tmpfs, like a real pool).
inline cxl::RegionSpec temp_spec(cxl::Backend backend, uint64_t size) {
  static std::atomic<int> counter{0};
  const std::string tag = "cxlkv-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  cxl::RegionSpec spec;
  spec.backend = backend;
  spec.size = size;
  if (backend == cxl::Backend::kShm || backend == cxl::Backend::kNuma) spec.path = "/" + tag;
  else spec.path = "/dev/shm/" + tag + ".region";
  if (backend == cxl::Backend::kNuma) spec.numa_node = 0;
  return spec;
}

// Removes the region's backing when the test ends.
struct RegionCleanup {
  cxl::RegionSpec spec;
  ~RegionCleanup() {
    if (spec.backend == cxl::Backend::kDevdax) {  // file stand-in, and its metadata (pool_region.h)
      std::remove(spec.path.c_str());
      std::remove((spec.path + ".meta").c_str());
    } else {
      (void)cxl::Region::remove(spec);  // and its metadata region
    }
  }
};

}  // namespace cxlkv::testing
