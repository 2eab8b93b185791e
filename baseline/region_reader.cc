// A read-only cxl::Region with the allocator's geometry checked (see region_reader.h).
#include "region_reader.h"

#include "slab_allocator.h"

namespace cxlkv::baseline {

RegionReader::RegionReader(std::unique_ptr<cxl::Region> region, const SlabGeometry& geometry)
    : region_(std::move(region)), geometry_(geometry), name_(region_->describe()) {}

Result<std::unique_ptr<RegionReader>> RegionReader::open(const cxl::RegionSpec& spec) {
  auto region = cxl::Region::open(spec, /*expected=*/nullptr, cxl::OpenMode::kReadOnly);
  if (!region) return region.status();
  auto geometry = SlabAllocator::read_geometry(**region);
  if (!geometry) return geometry.status();
  return std::unique_ptr<RegionReader>(new RegionReader(std::move(*region), *geometry));
}

}  // namespace cxlkv::baseline
