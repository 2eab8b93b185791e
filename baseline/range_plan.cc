// Range planning, coalescing and batching (see range_plan.h).
#include "range_plan.h"

namespace cxlkv::baseline {

LocalLayout LocalLayout::of(const PoolView& view) {
  LocalLayout l;
  l.page_tokens = view.page_tokens;
  l.layers = view.layers;
  l.stream_count = view.stream_count;
  uint64_t off = 0;
  for (uint32_t s = 0; s < view.stream_count; ++s) {
    l.stream_offset[s] = off;
    l.stride[s] = view.streams[s].stride;
    l.entry_bytes[s] = view.streams[s].entry_bytes;
    off += uint64_t{view.layers} * view.page_tokens * view.streams[s].stride;
    off = (off + 63) & ~uint64_t{63};
  }
  l.page_bytes = off;
  return l;
}

void plan_page_runs(const PoolView& view, const LocalLayout& local, std::span<const Placement> pages, uint32_t p0,
                    uint32_t p1, uint32_t stream_mask, std::vector<Range>& out) {
  for (uint32_t p = p0; p < p1; ++p) {
    const Placement& pl = pages[p];
    for (uint32_t s = 0; s < view.stream_count; ++s) {
      if ((stream_mask >> s & 1) == 0) continue;
      const PoolView::Stream& st = view.streams[s];
      const uint32_t run = view.page_tokens * st.stride;
      for (uint32_t l = 0; l < view.layers; ++l) {
        const uint64_t remote = pl.slab_offset + st.offset + uint64_t{l} * st.layer_step +
                                uint64_t{pl.position} * view.page_tokens * st.stride;
        out.push_back({remote, local.offset(p, int(s), l, 0), run});
      }
    }
  }
}

void plan_entries(const PoolView& view, std::span<const Placement> pages, int stream, uint32_t layer,
                  std::span<const int32_t> tokens, uint64_t local, std::vector<Range>& out) {
  const uint32_t bytes = view.streams[stream].entry_bytes;
  for (size_t i = 0; i < tokens.size(); ++i)
    out.push_back({remote_entry(view, pages, stream, layer, uint32_t(tokens[i])), local + i * bytes, bytes});
}

size_t coalesce(std::vector<Range>& ranges, uint32_t max_length) {
  if (ranges.empty()) return 0;
  size_t w = 0;
  for (size_t r = 1; r < ranges.size(); ++r) {
    Range& last = ranges[w];
    const Range& next = ranges[r];
    if (last.remote + last.length == next.remote && last.local + last.length == next.local &&
        uint64_t{last.length} + next.length <= max_length) {
      last.length += next.length;
    } else {
      ranges[++w] = next;
    }
  }
  ranges.resize(w + 1);
  return ranges.size();
}

void split_batches(std::span<const Range> ranges, size_t max_ranges, uint64_t max_bytes, std::vector<Batch>& out) {
  out.clear();
  Batch b;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const uint64_t len = ranges[i].length;
    if (b.count > 0 && (b.count == max_ranges || b.bytes + len > max_bytes)) {
      out.push_back(b);
      b = Batch{i, 0, 0};
    }
    if (b.count == 0) b.first = i;
    ++b.count;
    b.bytes += len;
  }
  if (b.count > 0) out.push_back(b);
}

uint64_t total_bytes(std::span<const Range> ranges) {
  uint64_t n = 0;
  for (const Range& r : ranges) n += r.length;
  return n;
}

}  // namespace cxlkv::baseline
