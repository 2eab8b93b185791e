// The baseline's fetches of a looked-up prefix over a RangeReader (TCP or RDMA): the whole prefix
// into local memory before decoding (bulk), the indexer keys alone, or one layer's top-k entries
// (ranged, like Mooncake's get_into_ranges); and the byte-exact check of a fetched prefix against
// the page records' data checksums, read over the same transport from the same region.
// Called by cxlkv-bulk-fetch, cxlkv-bench and tests/baseline. Plans reuse the caller's scratch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cxlkv/page_key.h"
#include "cxlkv/pool_view.h"
#include "range_plan.h"
#include "range_reader.h"

namespace cxlkv::baseline {

// Anonymous local memory for fetched data (stands in for the decode node's DRAM or HBM),
// 2 MiB-aligned, faulted in at creation so first-touch faults stay out of fetch timings.
class LocalBuffer {
 public:
  static Result<LocalBuffer> create(uint64_t bytes);
  LocalBuffer() = default;
  LocalBuffer(LocalBuffer&& o) noexcept { *this = std::move(o); }
  LocalBuffer& operator=(LocalBuffer&& o) noexcept;
  ~LocalBuffer();
  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  void* map_ = nullptr;  // the whole anonymous mapping
  uint64_t mapped_ = 0;
  uint8_t* data_ = nullptr;  // 2 MiB-aligned inside it
  uint64_t size_ = 0;
};

// Scratch of a fetcher: the plan of the current fetch (kept between calls).
struct FetchScratch {
  std::vector<Range> ranges;
};

// Bulk: every page of the prefix, all layers, the streams in stream_mask (bit s = stream s),
// into dst laid out by `local`. Ranges are coalesced up to limits.max_bytes.
Status fetch_pages(RangeReader& reader, const PoolView& view, std::span<const Placement> pages, const LocalLayout& local,
                   uint32_t stream_mask, uint8_t* dst, const BatchLimits& limits, FetchScratch& scratch);

// Ranged: the entries of `stream`, `layer` named by tokens (sorted ascending for coalescing to
// find runs) into dst, packed [n][entry_bytes]. One batch (a request or a chain of READs).
Status fetch_entries(RangeReader& reader, const PoolView& view, std::span<const Placement> pages, int stream,
                     uint32_t layer, std::span<const int32_t> tokens, uint8_t* dst, const BatchLimits& limits,
                     FetchScratch& scratch);

// After a fetch: reads each page's slab word over `reader` (the published copy in the served
// region, slab_geometry.h) and checks the slab is still in use at the placement's generation, so
// the bytes fetched were not a reused slab's: the check a CXL reader makes (read_lease.h). The
// page records (keys, data checksums) lie in the daemon's metadata region, which is not served.
// The first mismatch is kCorrupt naming the page.
Status verify_pages(RangeReader& reader, const PoolView& view, std::span<const Placement> pages);

// After a bulk fetch: every entry of the streams in stream_mask in src (laid out by `local`)
// against the same entry in this client's own mapping of the region (view.base: a worker that
// maps the pool by fd or path), byte for byte: what the transport moved. The first difference is
// kCorrupt naming the page, stream, layer and token; no mapping is kInvalidArgument.
Status verify_bytes(const PoolView& view, std::span<const Placement> pages, const LocalLayout& local,
                    uint32_t stream_mask, const uint8_t* src);

}  // namespace cxlkv::baseline
