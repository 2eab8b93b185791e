// PoolView and Placement: what a lease needs to address entries in the client's mapping of the
// region, with no daemon and no allocator in reach. Built once per connection from the region's
// slab geometry (client/pool_view.cc); copied by value into every lease. Read-only after that.
#pragma once

#include <atomic>
#include <cstdint>

#include "cxlkv/layout.h"

namespace cxlkv {

// Placement flags from Reserve (protocol v1): such a page gets no slot and must not be written.
inline constexpr uint16_t kPlacementCached = 1;    // committed already
inline constexpr uint16_t kPlacementInFlight = 2;  // another write lease holds it

// Where one page of a prefix lives (the wire's Placement, docs/protocol.md).
struct Placement {
  uint64_t slab_offset = 0;  // from the region base
  uint64_t generation = 0;   // the slab's allocation count (coherence rule 2)
  uint32_t slab = 0;
  uint16_t position = 0;     // page position in the slab, 0..E-1
  uint16_t flags = 0;        // kPlacementCached | kPlacementInFlight
};

// The mapping and the entry arithmetic of a region, flattened for the gather path.
// Entry (stream s, layer l, token t) of a page at (slab_offset, position) lives at
//   base + slab_offset + streams[s].offset + l x streams[s].layer_step
//        + (position x page_tokens + t) x streams[s].stride
// which equals slab_offset + SlabGeometry::entry_offset(s, l, position, t) (allocator/).
struct PoolView {
  struct Stream {
    uint64_t offset = 0;      // of the stream inside a slab, 64 B-aligned
    uint64_t layer_step = 0;  // bytes between layers: E x page_tokens x stride
    uint32_t stride = 0;      // bytes between consecutive entries (>= entry_bytes)
    uint32_t entry_bytes = 0;
  };
  uint8_t* base = nullptr;  // the client's mapping of the region
  uint64_t region_bytes = 0;
  uint64_t slab_bytes = 0;
  uint32_t slab_count = 0;
  uint32_t slab_pages = 0;   // E
  uint32_t page_tokens = 0;  // a power of two (64)
  uint32_t page_shift = 0;   // log2(page_tokens)
  uint32_t layers = 0;
  uint32_t stream_count = 0;
  Stream streams[kMaxStreams] = {};
  // The allocator's words in the region: slab s's state word (generation << 8 | state) and the
  // count of slabs ever freed, which reads check around their copies (read_lease.h).
  const std::atomic<uint64_t>* slab_words = nullptr;
  const std::atomic<uint64_t>* slab_frees = nullptr;
  // The serving daemon's epoch, rewritten at every start: a lease of another epoch is expired.
  const std::atomic<uint64_t>* serving_epoch = nullptr;
};

// Whether two mappings lay pages out alike (E, slab size, page tokens, layers, each stream's
// place, step and stride): what a lease over several nodes, and the GPU kernels' offsets, assume
// of every node. Cold: checked when a node or a mapping is first met.
inline bool same_page_shape(const PoolView& a, const PoolView& b) {
  if (a.slab_pages != b.slab_pages || a.slab_bytes != b.slab_bytes || a.page_tokens != b.page_tokens ||
      a.layers != b.layers || a.stream_count != b.stream_count)
    return false;
  for (uint32_t s = 0; s < a.stream_count; ++s)
    if (a.streams[s].offset != b.streams[s].offset || a.streams[s].layer_step != b.streams[s].layer_step ||
        a.streams[s].stride != b.streams[s].stride || a.streams[s].entry_bytes != b.streams[s].entry_bytes)
      return false;
  return true;
}

}  // namespace cxlkv
