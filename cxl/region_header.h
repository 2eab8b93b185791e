// The region header: the first bytes of every cxlkv region, written by Region::format and checked
// by Region::open before anything else in the region is trusted. Only cxl/region.cc writes it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cxlkv/layout.h"

namespace cxlkv::cxl {

inline constexpr char kRegionMagic[8] = {'C', 'X', 'L', 'K', 'V', 'R', 'G', '1'};
// Version 2: the page records and the allocator's authoritative state moved out of the region
// into a metadata region of their own, which only the daemon maps (RegionKind). Version 1 kept
// them in the region clients map; such a region is refused with the migration named (its pages
// cannot be carried over: a cache, formatted anew with --format).
inline constexpr uint32_t kRegionFormatVersion = 2;

// What a region holds: the slabs clients map (data), or the daemon's own records of them.
enum class RegionKind : uint32_t {
  kData = 0,      // the published allocator header and slab words, then the slabs
  kMetadata = 1,  // the authoritative allocator header and slab words, then the page records
};
// Bytes reserved for the header at offset 0; the allocator's area starts here (one OS page).
inline constexpr uint64_t kRegionHeaderBytes = 4096;

// Region header, format version 2, little-endian, at offset 0 (256 B used of a 4 KiB OS page):
//   [0,8)     magic "CXLKVRG1" (the family's; the version field tells the format)
//   [8,12)    format_version (2)          [12,16)  header_bytes (4096)
//   [16,32)   uuid, random at format time
//   [32,40)   region_bytes: the size formatted; the backing must be exactly this big
//   [40,48)   data_offset: first byte after the header (4096)
//   [48,52)   slab_pages (E)               [52,56)  kind (RegionKind)
//   [56,64)   format_time_ns (CLOCK_REALTIME)
//   [64,208)  layout (LayoutRecord, 144 B)
//   [208,224) paired uuid: a metadata region's data region (zero in a data region)
//   [224,248) reserved, zero
//   [248,256) checksum: XXH64 (seed 0) of bytes [0,248)
struct RegionHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t header_bytes;
  uint8_t uuid[16];
  uint64_t region_bytes;
  uint64_t data_offset;
  uint32_t slab_pages;
  RegionKind kind;
  uint64_t format_time_ns;
  LayoutRecord layout;
  uint8_t paired_uuid[16];
  uint8_t reserved1[24];
  uint64_t checksum;
};
static_assert(sizeof(RegionHeader) == 256, "RegionHeader is an on-media format");
static_assert(offsetof(RegionHeader, layout) == 64 && offsetof(RegionHeader, paired_uuid) == 208);
static_assert(offsetof(RegionHeader, checksum) == 248);

// XXH64 over the bytes the checksum covers.
uint64_t region_header_checksum(const RegionHeader& header);

}  // namespace cxlkv::cxl
