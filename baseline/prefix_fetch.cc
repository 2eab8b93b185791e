// Bulk and ranged prefix fetches and their verification (see prefix_fetch.h).
#include "prefix_fetch.h"

#include <sys/mman.h>

#include <cstring>

#include <fmt/format.h>

#include "slab_allocator.h"  // allocator/: the slab state word

namespace cxlkv::baseline {

Result<LocalBuffer> LocalBuffer::create(uint64_t bytes) {
  constexpr uint64_t kAlign = uint64_t{2} << 20;
  const uint64_t mapped = (bytes + kAlign - 1) / kAlign * kAlign + kAlign;
  void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return io_error(fmt::format("local buffer of {} B", bytes));
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m) + kAlign - 1) & ~(kAlign - 1));
  madvise(aligned, bytes, MADV_HUGEPAGE);
  if (bytes > 0 && madvise(aligned, bytes, MADV_POPULATE_WRITE) != 0) std::memset(aligned, 0, bytes);
  LocalBuffer b;
  b.map_ = m;
  b.mapped_ = mapped;
  b.data_ = aligned;
  b.size_ = bytes;
  return b;
}

LocalBuffer& LocalBuffer::operator=(LocalBuffer&& o) noexcept {
  if (this != &o) {
    if (map_ != nullptr) munmap(map_, mapped_);
    map_ = o.map_;
    mapped_ = o.mapped_;
    data_ = o.data_;
    size_ = o.size_;
    o.map_ = nullptr;
    o.data_ = nullptr;
    o.size_ = o.mapped_ = 0;
  }
  return *this;
}

LocalBuffer::~LocalBuffer() {
  if (map_ != nullptr) munmap(map_, mapped_);
}

Status fetch_pages(RangeReader& reader, const PoolView& view, std::span<const Placement> pages, const LocalLayout& local,
                   uint32_t stream_mask, uint8_t* dst, const BatchLimits& limits, FetchScratch& scratch) {
  scratch.ranges.clear();
  plan_page_runs(view, local, pages, 0, uint32_t(pages.size()), stream_mask, scratch.ranges);
  coalesce(scratch.ranges, uint32_t(std::min<uint64_t>(limits.max_bytes, wire::kMaxRangeBytes)));
  return reader.read(scratch.ranges, dst, limits);
}

Status fetch_entries(RangeReader& reader, const PoolView& view, std::span<const Placement> pages, int stream,
                     uint32_t layer, std::span<const int32_t> tokens, uint8_t* dst, const BatchLimits& limits,
                     FetchScratch& scratch) {
  scratch.ranges.clear();
  const uint64_t limit = uint64_t(pages.size()) << view.page_shift;
  for (int32_t t : tokens)
    if (t < 0 || uint64_t(t) >= limit)
      return Status(Code::kInvalidArgument, fmt::format("ranged fetch: token {} outside the prefix of {} tokens", t, limit));
  plan_entries(view, pages, stream, layer, tokens, 0, scratch.ranges);
  coalesce(scratch.ranges, wire::kMaxRangeBytes);
  BatchLimits one = limits;
  one.max_ranges = std::max<size_t>(one.max_ranges, scratch.ranges.size());
  one.max_bytes = std::max<uint64_t>(one.max_bytes, total_bytes(scratch.ranges));
  return reader.read(scratch.ranges, dst, one);
}

Status verify_pages(RangeReader& reader, const PoolView& view, std::span<const Placement> pages) {
  const SlabGeometry& g = reader.info().geometry;
  if (g.slab_pages != view.slab_pages || g.layers != view.layers || g.page_tokens != view.page_tokens)
    return Status(Code::kMismatch, fmt::format("verify: the served region has E={} / {} layers / {}-token pages, the lease "
                                               "E={} / {} / {}", g.slab_pages, g.layers, g.page_tokens, view.slab_pages,
                                               view.layers, view.page_tokens));
  // The published slab words (slab_geometry.h), after the fetch: the reader's reuse check.
  std::vector<uint64_t> words(pages.size());
  std::vector<Range> ranges;
  for (size_t p = 0; p < pages.size(); ++p) {
    if (pages[p].slab >= g.slab_count)
      return Status(Code::kInvalidArgument, fmt::format("verify: page {} names slab {}, the region has {}", p, pages[p].slab,
                                                        g.slab_count));
    ranges.push_back({g.state_offset + 8ull * pages[p].slab, p * sizeof(uint64_t), sizeof(uint64_t)});
  }
  if (Status st = reader.read(ranges, reinterpret_cast<uint8_t*>(words.data()), BatchLimits{}); !st) return st;
  for (size_t p = 0; p < pages.size(); ++p) {
    const uint64_t w = words[p];
    if (word_state(w) != SlabState::kInUse || word_generation(w) != pages[p].generation)
      return Status(Code::kCorrupt, fmt::format("verify: page {} (slab {} position {}): its slab is {} at generation {}, "
                                                "the lease read generation {}: the fetched bytes may be another prefix's",
                                                p, pages[p].slab, pages[p].position,
                                                word_state(w) == SlabState::kInUse ? "in use" : "free", word_generation(w),
                                                pages[p].generation));
  }
  return Status::ok();
}

Status verify_bytes(const PoolView& view, std::span<const Placement> pages, const LocalLayout& local,
                    uint32_t stream_mask, const uint8_t* src) {
  if (view.base == nullptr)
    return Status(Code::kInvalidArgument, "verify: this client has no mapping of the region to compare with");
  for (uint32_t p = 0; p < pages.size(); ++p)
    for (uint32_t s = 0; s < local.stream_count; ++s) {
      if ((stream_mask >> s & 1) == 0) continue;
      for (uint32_t l = 0; l < local.layers; ++l)
        for (uint32_t t = 0; t < local.page_tokens; ++t) {
          const uint8_t* pool = view.base + remote_entry(view, pages, int(s), l, p * local.page_tokens + t);
          if (std::memcmp(src + local.offset(p, int(s), l, t), pool, local.entry_bytes[s]) != 0)
            return Status(Code::kCorrupt, fmt::format("verify: page {} stream {} layer {} token {}: the fetched bytes "
                                                      "differ from the region's", p, s, l, t));
        }
    }
  return Status::ok();
}

}  // namespace cxlkv::baseline
