// A data region made ready the way the daemon makes one at its first start: its metadata region
// beside it (cxl::Region::metadata_spec_for; a devdax stand-in file gets PATH.meta), and both
// allocator areas formatted. For tests, benchmarks and the direct pool that take the allocator
// without a daemon; removed with the data region by cxl::Region::remove (RegionCleanup).
#pragma once

#include <memory>

#include "region.h"
#include "slab_allocator.h"
#include "slab_geometry.h"

namespace cxlkv::testing {

// Where the metadata region of `data` lies in tests: the default, or PATH.meta for a devdax
// stand-in (a plain file under /dev/shm).
inline cxl::RegionSpec metadata_spec_of(const cxl::RegionSpec& data) {
  if (auto spec = cxl::Region::metadata_spec_for(data)) return *spec;
  return cxl::RegionSpec{cxl::Backend::kFile, data.path + ".meta", -1, 0};
}

// Makes `data`'s metadata region and formats the allocator areas of both.
inline Result<std::unique_ptr<cxl::Region>> format_pool(cxl::Region& data) {
  const uint64_t bytes = SlabGeometry::plan(data.size(), data.data_offset(), data.layout(), data.slab_pages()).metadata_bytes();
  auto metadata = cxl::Region::create_metadata(metadata_spec_of(data.spec()), data, bytes);
  if (!metadata) return metadata.status();
  if (Status st = SlabAllocator::format(data, **metadata); !st) return st;
  return metadata;
}

// Maps `data`'s metadata region again (after format_pool, as a restarted daemon does).
inline Result<std::unique_ptr<cxl::Region>> open_pool_metadata(const cxl::Region& data) {
  return cxl::Region::open_metadata(metadata_spec_of(data.spec()), data);
}

}  // namespace cxlkv::testing
