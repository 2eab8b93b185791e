// RegionReader: a read-only mapping of a cxlkv region by path (shm name, file, or devdax
// device), for cxlkv-bulkd, which serves its bytes and never writes them (PROT_READ, opened
// O_RDONLY). Checks the region header and the allocator's geometry before anything is served.
// Owns the mapping and the fd; no other unit of baseline/ maps memory.
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
  // Opens and maps the region of `spec` (backend shm, numa, file or devdax) read-only.
  static Result<std::unique_ptr<RegionReader>> open(const cxl::RegionSpec& spec);
  ~RegionReader();
  RegionReader(const RegionReader&) = delete;
  RegionReader& operator=(const RegionReader&) = delete;

  const uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  const cxl::RegionHeader& header() const { return *reinterpret_cast<const cxl::RegionHeader*>(base_); }
  const SlabGeometry& geometry() const { return geometry_; }
  const std::string& name() const { return name_; }

 private:
  RegionReader() = default;
  Status check();

  std::string name_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t mapped_ = 0;
  SlabGeometry geometry_{};
};

}  // namespace cxlkv::baseline
