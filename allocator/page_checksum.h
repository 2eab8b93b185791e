// The data checksum of one page: what a writer computes from the bytes it wrote, the daemon
// stores in the page record at commit, and recovery or a test recomputes from the region.
// Order-free, so a writer may write (stream, layer) runs in any order:
//   page_checksum = XOR over streams s and layers l of
//                   XXH3_64(packed run of page_tokens entries x entry_bytes, seed = s << 32 | l)
// A packed run drops the stride padding: entry t occupies bytes [t x entry_bytes, +entry_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cxlkv/layout.h"
#include "slab_geometry.h"

namespace cxlkv {

// Checksum term of one (stream, layer) run given packed.
uint64_t run_checksum(int stream, uint32_t layer, const void* packed, size_t bytes);
// The whole page's checksum read back from its slab (slab_base = region base + slab offset).
uint64_t page_checksum(const SlabGeometry& geometry, const Layout& layout, const uint8_t* slab_base, uint32_t position);

}  // namespace cxlkv
