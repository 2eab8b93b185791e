// page_checksum.h
#include "page_checksum.h"

#include <xxhash.h>

#include <cstring>
#include <vector>

namespace cxlkv {

uint64_t run_checksum(int stream, uint32_t layer, const void* packed, size_t bytes) {
  return XXH3_64bits_withSeed(packed, bytes, uint64_t(uint32_t(stream)) << 32 | layer);
}

uint64_t page_checksum(const SlabGeometry& g, const Layout& layout, const uint8_t* slab_base, uint32_t position) {
  uint64_t sum = 0;
  std::vector<uint8_t> packed;
  for (int s = 0; s < layout.stream_count(); ++s) {
    const uint32_t bytes = layout.stream(s).entry_bytes, stride = g.stride[s];
    packed.resize(size_t{g.page_tokens} * bytes);
    for (uint32_t l = 0; l < g.layers; ++l) {
      const uint8_t* run = slab_base + g.page_run_offset(s, l, position);
      if (bytes == stride) {
        sum ^= run_checksum(s, l, run, packed.size());
        continue;
      }
      for (uint32_t t = 0; t < g.page_tokens; ++t) std::memcpy(&packed[size_t{t} * bytes], run + size_t{t} * stride, bytes);
      sum ^= run_checksum(s, l, packed.data(), packed.size());
    }
  }
  return sum;
}

}  // namespace cxlkv
