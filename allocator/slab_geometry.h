// SlabGeometry: where a region's allocator area, slab state words, page records and slabs lie,
// and where an entry lives inside a slab. Computed once by SlabAllocator::format from the region
// size, layout and E, recorded in the allocator header, and read back (never recomputed) by the
// daemon and by clients, which use entry_offset() on the gather path.
#pragma once

#include <cstdint>

#include "cxlkv/layout.h"
#include "page_record.h"  // kPageRecordBytes, the slab table's record

namespace cxlkv {

// Two regions share one geometry (region format 2, cxl/region_header.h): the data region that
// clients map and its metadata region that only the daemon maps. Offsets from each one's base:
//   data region:
//     [data_offset, +4096)               allocator header, published copy (clients read it)
//     [state_offset, +8 x slab_count)    slab state words, published copy (readers' reuse check)
//     [slab_area_offset, +slab_bytes x slab_count)  the slabs, slab_area_offset 2 MiB-aligned
//   metadata region:
//     [data_offset, +4096)               allocator header (authoritative)
//     [state_offset, +8 x slab_count)    slab state words: generation << 8 | state (authoritative)
//     [records_offset, +128 x slab_count x E)  page records (page_record.h), slot = slab x E + position
// A client may store into its data region's published copies; that misleads only readers of its
// own partition, and the daemon rewrites them from the metadata region at every start.
// Inside a slab (layer-major, DESIGN.md): [stream][layer][E x page_tokens][entry_stride];
//   entry (stream s, layer l, page position i, token t) at
//   stream_offset[s] + ((l x E + i) x page_tokens + t) x stride[s].
// Invariants: slab_area_offset + slab_count x slab_bytes <= data region bytes;
// metadata_bytes() <= metadata region bytes.
struct SlabGeometry {
  uint64_t state_offset = 0;
  uint64_t records_offset = 0;
  uint64_t slab_area_offset = 0;
  uint64_t slab_bytes = 0;      // multiple of 4096
  uint32_t slab_count = 0;
  uint32_t slab_pages = 0;      // E
  uint32_t page_tokens = 0;
  uint32_t layers = 0;
  uint64_t stream_offset[kMaxStreams] = {};  // 64 B-aligned
  uint32_t stride[kMaxStreams] = {};

  // Lays out a region of `region_bytes` for `layout` with E = slab_pages.
  static SlabGeometry plan(uint64_t region_bytes, uint64_t data_offset, const Layout& layout, uint32_t slab_pages);

  uint64_t slab_offset(uint32_t slab) const { return slab_area_offset + uint64_t{slab} * slab_bytes; }
  uint64_t page_slot(uint32_t slab, uint32_t position) const { return uint64_t{slab} * slab_pages + position; }
  // In the metadata region.
  uint64_t record_offset(uint64_t slot) const { return records_offset + slot * kPageRecordBytes; }
  // Bytes the metadata region needs: through the last page record.
  uint64_t metadata_bytes() const { return record_offset(uint64_t{slab_count} * slab_pages); }
  // The slab-free counter: one 8-byte word in the last cache line of the allocator header's OS
  // page (outside the header's checksum; zero in a fresh region). The allocator adds one each
  // time it frees a slab; readers compare it before and after a copy (the reuse check of DESIGN.md
  // coherence rule 2, read_lease.h).
  uint64_t free_counter_offset() const { return state_offset - 64; }
  // The serving epoch: the word after the slab-free counter, in the same line. The daemon writes
  // its epoch there at every start (and adds one to the free counter, so every lease taken before
  // re-checks on its next read); a lease taken under another epoch then fails with expired.
  // Zero in a fresh region and under a daemon older than this word.
  uint64_t epoch_offset() const { return state_offset - 56; }

  // Offset of one entry within its slab. Hot path (gather): no branches, no division by E.
  uint64_t entry_offset(int stream, uint32_t layer, uint32_t position, uint32_t token) const {
    return stream_offset[stream] +
           ((uint64_t{layer} * slab_pages + position) * page_tokens + token) * stride[stream];
  }
  // Offset within its slab of the first entry of one page's run of a layer (page_tokens entries).
  uint64_t page_run_offset(int stream, uint32_t layer, uint32_t position) const {
    return entry_offset(stream, layer, position, 0);
  }
};

}  // namespace cxlkv
