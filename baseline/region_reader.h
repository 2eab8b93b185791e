// RegionReader: a read-only view of a cxlkv region by path (shm name, file, or devdax device),
// for cxlkv-bulkd, which serves its bytes and never writes them. Holds a cxl::Region opened
// OpenMode::kReadOnly (O_RDONLY, PROT_READ), so the region header is checked by cxl/ alone, and
// the allocator's geometry by SlabAllocator::read_geometry, before anything is served.
// Maps nothing itself; no other unit of baseline/ maps region memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cxlkv/status.h"
#include "region.h"
#include "slab_geometry.h"

namespace cxlkv::baseline {

class RegionReader {
 public:
  // Opens the region of `spec` (backend shm, numa, file or devdax) read-only and checks it.
  static Result<std::unique_ptr<RegionReader>> open(const cxl::RegionSpec& spec);
  RegionReader(const RegionReader&) = delete;
  RegionReader& operator=(const RegionReader&) = delete;

  const uint8_t* base() const { return region_->base(); }
  uint64_t size() const { return region_->size(); }
  const cxl::RegionHeader& header() const { return region_->header(); }
  const SlabGeometry& geometry() const { return geometry_; }
  // "shm:/cxlkv-pool", "devdax:/dev/dax0.0" (cxl::Region::describe).
  const std::string& name() const { return name_; }

 private:
  RegionReader(std::unique_ptr<cxl::Region> region, const SlabGeometry& geometry);

  std::unique_ptr<cxl::Region> region_;
  SlabGeometry geometry_{};
  std::string name_;
};

}  // namespace cxlkv::baseline
