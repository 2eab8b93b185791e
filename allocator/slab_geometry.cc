// SlabGeometry::plan: how a region is carved (slab_geometry.h).
#include "slab_geometry.h"

#include "sizes.h"

namespace cxlkv {
namespace {
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr uint64_t kOsPage = cxl::kOsPageBytes;
constexpr uint64_t kHugePage = cxl::kHugePageBytes;  // slab area start, for huge-page mappings
}  // namespace

SlabGeometry SlabGeometry::plan(uint64_t region_bytes, uint64_t data_offset, const Layout& layout, uint32_t slab_pages) {
  SlabGeometry g;
  g.slab_pages = slab_pages;
  g.page_tokens = layout.page_tokens();
  g.layers = layout.layers();
  uint64_t off = 0;
  for (int s = 0; s < layout.stream_count(); ++s) {
    off = align_up(off, cxl::kCacheLineBytes);
    g.stream_offset[s] = off;
    g.stride[s] = layout.stream(s).entry_stride;
    off += layout.stream_page_bytes(s) * slab_pages;
  }
  g.slab_bytes = align_up(off, kOsPage);
  g.state_offset = data_offset + kOsPage;  // after the allocator header's OS page
  // Largest slab count whose published words and slabs fit; start from the estimate and step down.
  // The records lie in the metadata region, after its copy of the words.
  const uint64_t per_slab = g.slab_bytes + 8;
  uint64_t n = region_bytes > g.state_offset ? (region_bytes - g.state_offset) / per_slab : 0;
  for (;; --n) {
    const uint64_t slabs = align_up(g.state_offset + 8 * n, kHugePage);
    if (slabs + n * g.slab_bytes <= region_bytes || n == 0) {
      g.records_offset = align_up(g.state_offset + 8 * n, kOsPage);
      g.slab_area_offset = slabs;
      g.slab_count = static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX - 1));
      break;
    }
  }
  return g;
}

}  // namespace cxlkv
