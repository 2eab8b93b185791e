// DirectPool: a region set up with the allocator directly, and leases over it, with no daemon.
// For unit tests (tests/client) and the CPU gather benchmark, which link libcxlkv's static archive
// (it reaches lease_factory.h); never linked into libcxlkv. It plays the daemon's part in the
// smallest way: it allocates slabs for a run of pages and hands out placements; no index, no records.
#pragma once

#include <memory>
#include <vector>

#include <fmt/format.h>

#include "lease_factory.h"
#include "pool_region.h"
#include "region.h"
#include "slab_allocator.h"

namespace cxlkv::testing {

class DirectPool {
 public:
  // Creates and formats a region of `bytes` for `layout_spec` with E = slab_pages.
  static Result<std::unique_ptr<DirectPool>> create(const cxl::RegionSpec& spec, const std::string& layout_spec,
                                                    uint32_t slab_pages) {
    auto layout = Layout::parse(layout_spec);
    if (!layout) return layout.status();
    auto region = cxl::Region::create(spec, *layout, slab_pages);
    if (!region) return region.status();
    std::unique_ptr<DirectPool> pool(new DirectPool());
    pool->spec_ = spec;
    pool->region_ = std::move(*region);
    auto metadata = format_pool(*pool->region_);
    if (!metadata) return metadata.status();
    pool->metadata_ = std::move(*metadata);
    auto alloc = SlabAllocator::open(*pool->region_, *pool->metadata_);
    if (!alloc) return alloc.status();
    pool->alloc_ = std::move(*alloc);
    auto view = detail::make_pool_view(pool->region_->base(), pool->region_->size(), pool->alloc_->geometry(), *layout);
    if (!view) return view.status();
    pool->view_ = *view;
    pool->layout_ = *layout;
    return pool;
  }
  ~DirectPool() {
    alloc_.reset();
    metadata_.reset();
    region_.reset();
    (void)cxl::Region::remove(spec_);
  }

  // Placements for `pages` consecutive pages: page i at slab i / E, position i % E.
  Result<std::vector<Placement>> place(uint32_t pages) {
    std::vector<Placement> out;
    const uint32_t e = view_.slab_pages;
    for (uint32_t i = 0; i < pages; ++i) {
      if (i % e == 0) {
        auto slab = alloc_->allocate();
        if (!slab) return slab.status();
        current_ = *slab;
      }
      out.push_back({alloc_->geometry().slab_offset(current_), alloc_->generation(current_), current_, uint16_t(i % e), 0});
    }
    return out;
  }
  ReadLease read_lease(std::vector<Placement> pages) const { return detail::LeaseFactory::read_lease(view_, std::move(pages), 0, nullptr); }
  WriteLease write_lease(std::vector<Placement> pages) const { return detail::LeaseFactory::write_lease(view_, std::move(pages), 0, nullptr); }

  const PoolView& view() const { return view_; }
  const Layout& layout() const { return layout_; }
  const SlabGeometry& geometry() const { return alloc_->geometry(); }
  uint8_t* base() const { return region_->base(); }

 private:
  DirectPool() = default;
  cxl::RegionSpec spec_;
  std::unique_ptr<cxl::Region> region_;
  std::unique_ptr<cxl::Region> metadata_;
  std::unique_ptr<SlabAllocator> alloc_;
  PoolView view_;
  Layout layout_;
  uint32_t current_ = 0;
};

}  // namespace cxlkv::testing
