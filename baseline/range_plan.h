// Range plans of the RDMA bulk-fetch baseline: which bytes of the remote region land where in
// local memory, for a whole prefix (bulk mode) or for a layer's top-k entries (ranged mode), and
// how a plan is cut into batches (one TCP request or one chain of RDMA READ work requests each).
// Called by prefix_fetch.cc and by the transports; pure arithmetic over a PoolView and the
// lease's placements: no I/O, no device, nothing allocated once the output vector has capacity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "cxlkv/pool_view.h"

namespace cxlkv::baseline {

// One transfer: `length` bytes at `remote` (offset from the region base) to `local` (offset from
// the caller's destination buffer). A TCP range read or one RDMA READ work request.
struct Range {
  uint64_t remote = 0;
  uint64_t local = 0;
  uint32_t length = 0;
  bool operator==(const Range&) const = default;
};

// Where a fetched prefix lies in local memory: page-major, then the slab's own order,
//   local offset of (page p, stream s, layer l, token t) =
//     p x page_bytes + stream_offset[s] + (l x page_tokens + t) x stride[s]
// so a page is one contiguous copy of its run in an E = 1 slab (entries keep their stride).
struct LocalLayout {
  uint64_t page_bytes = 0;
  uint64_t stream_offset[kMaxStreams] = {};
  uint32_t stride[kMaxStreams] = {};
  uint32_t entry_bytes[kMaxStreams] = {};
  uint32_t page_tokens = 0;
  uint32_t layers = 0;
  uint32_t stream_count = 0;

  // The local layout for a region's view (streams in the view's order, 64 B-aligned).
  static LocalLayout of(const PoolView& view);
  uint64_t offset(uint32_t page, int stream, uint32_t layer, uint32_t token) const {
    return page * page_bytes + stream_offset[stream] + (uint64_t{layer} * page_tokens + token) * stride[stream];
  }
};

// Remote offset of entry (stream, layer, token t of the prefix) given the prefix's placements.
inline uint64_t remote_entry(const PoolView& v, std::span<const Placement> pages, int stream, uint32_t layer,
                             uint32_t t) {
  const Placement& p = pages[t >> v.page_shift];
  const PoolView::Stream& s = v.streams[stream];
  const uint64_t row = uint64_t{p.position} * v.page_tokens + (t & (v.page_tokens - 1));
  return p.slab_offset + s.offset + uint64_t{layer} * s.layer_step + row * s.stride;
}

// Appends one range per (page, stream in stream_mask, layer) run of pages [p0, p1): the bulk
// fetch (both streams) or the indexer keys alone. Local offsets follow `local`.
void plan_page_runs(const PoolView& view, const LocalLayout& local, std::span<const Placement> pages, uint32_t p0,
                    uint32_t p1, uint32_t stream_mask, std::vector<Range>& out);

// Appends one range per entry of `stream`, `layer` named by tokens[0..n) (each < the prefix),
// landing packed at local + i x entry_bytes. Sort the tokens first for coalescing to find runs.
void plan_entries(const PoolView& view, std::span<const Placement> pages, int stream, uint32_t layer,
                  std::span<const int32_t> tokens, uint64_t local, std::vector<Range>& out);

// Merges each range into the one before it when both its remote and its local bytes follow on
// directly and the merged length stays <= max_length. Keeps order; returns the new count.
size_t coalesce(std::vector<Range>& ranges, uint32_t max_length);

// A run of consecutive ranges sent together: ranges [first, first + count), `bytes` in all.
struct Batch {
  size_t first = 0;
  size_t count = 0;
  uint64_t bytes = 0;
  bool operator==(const Batch&) const = default;
};

// Cuts ranges into batches of at most max_ranges ranges and max_bytes bytes each (a single range
// larger than max_bytes gets a batch of its own). Replaces `out`.
void split_batches(std::span<const Range> ranges, size_t max_ranges, uint64_t max_bytes, std::vector<Batch>& out);

// Total bytes of ranges.
uint64_t total_bytes(std::span<const Range> ranges);

}  // namespace cxlkv::baseline
