// PoolView construction and the lease factory (lease_factory.h).
#include <bit>

#include <fmt/format.h>

#include "lease_factory.h"

namespace cxlkv::detail {

Result<PoolView> make_pool_view(uint8_t* base, uint64_t region_bytes, const SlabGeometry& g, const Layout& layout) {
  if (g.page_tokens == 0 || !std::has_single_bit(g.page_tokens))
    return Status(Code::kInvalidArgument, fmt::format("page_tokens {} is not a power of two (the gather path shifts)", g.page_tokens));
  if (g.page_tokens != layout.page_tokens() || g.layers != layout.layers())
    return Status(Code::kMismatch, fmt::format("geometry of {} tokens x {} layers, layout {} has {} x {}", g.page_tokens,
                                               g.layers, layout.name(), layout.page_tokens(), layout.layers()));
  if (g.slab_area_offset + uint64_t{g.slab_count} * g.slab_bytes > region_bytes)
    return Status(Code::kCorrupt, fmt::format("geometry: {} slabs of {} B from {} overrun the region of {} B", g.slab_count,
                                              g.slab_bytes, g.slab_area_offset, region_bytes));
  PoolView v;
  v.base = base;
  v.region_bytes = region_bytes;
  v.slab_bytes = g.slab_bytes;
  v.slab_count = g.slab_count;
  v.slab_pages = g.slab_pages;
  v.page_tokens = g.page_tokens;
  v.page_shift = uint32_t(std::countr_zero(g.page_tokens));
  v.layers = g.layers;
  v.stream_count = uint32_t(layout.stream_count());
  v.slab_words = reinterpret_cast<const std::atomic<uint64_t>*>(base + g.state_offset);
  v.slab_frees = reinterpret_cast<const std::atomic<uint64_t>*>(base + g.free_counter_offset());
  v.serving_epoch = reinterpret_cast<const std::atomic<uint64_t>*>(base + g.epoch_offset());
  for (int s = 0; s < layout.stream_count(); ++s) {
    if (g.stride[s] < layout.stream(s).entry_bytes)
      return Status(Code::kCorrupt, fmt::format("geometry: stream {} stride {} < entry_bytes {}", layout.stream_name(s),
                                                g.stride[s], layout.stream(s).entry_bytes));
    v.streams[s].offset = g.stream_offset[s];
    v.streams[s].stride = g.stride[s];
    v.streams[s].entry_bytes = layout.stream(s).entry_bytes;
    v.streams[s].layer_step = uint64_t{g.slab_pages} * g.page_tokens * g.stride[s];
  }
  return v;
}

ReadLease LeaseFactory::read_lease(const PoolView& view, std::vector<Placement> pages, uint64_t id,
                                   std::shared_ptr<Session> session) {
  ReadLease lease;
  lease.view_ = view;
  lease.refs_.reserve(pages.size());
  for (const Placement& p : pages) lease.refs_.push_back({p.slab_offset, uint64_t{p.position} * view.page_tokens});
  lease.placements_ = std::move(pages);
  lease.id_ = id;
  lease.session_ = std::move(session);
  // The lookup pinned these pages: as of now they are what the placements say. Any later free in
  // the region makes the next read check them (ReadLease::verify_pages).
  if (view.slab_frees) lease.frees_seen_.store(view.slab_frees->load(std::memory_order_acquire), std::memory_order_relaxed);
  if (view.serving_epoch) lease.epoch_ = view.serving_epoch->load(std::memory_order_acquire);
  return lease;
}

ReadLease LeaseFactory::read_lease_over_nodes(const PoolView& view, std::vector<Placement> pages,
                                             std::vector<LeasePart> parts) {
  PoolView base = view;
  base.slab_words = nullptr;  // no one region's counts: each part checks its own node's
  base.slab_frees = nullptr;
  base.serving_epoch = nullptr;
  ReadLease lease = read_lease(base, std::move(pages), parts.empty() ? 0 : parts.front().id, nullptr);
  for (LeasePart& part : parts) {
    if (part.view.slab_frees)
      part.frees_seen->store(part.view.slab_frees->load(std::memory_order_acquire), std::memory_order_relaxed);
    if (part.view.serving_epoch) part.epoch = part.view.serving_epoch->load(std::memory_order_acquire);
  }
  lease.parts_ = std::move(parts);
  return lease;
}

WriteLease LeaseFactory::write_lease_over_nodes(const PoolView& view, std::vector<Placement> pages,
                                               std::vector<WritePart> parts) {
  WriteLease lease = write_lease(view, std::move(pages), parts.empty() ? 0 : parts.front().id, nullptr);
  lease.parts_ = std::move(parts);
  return lease;
}

WriteLease LeaseFactory::write_lease(const PoolView& view, std::vector<Placement> pages, uint64_t id,
                                     std::shared_ptr<Session> session) {
  WriteLease lease;
  lease.view_ = view;
  const size_t n = pages.size();
  lease.words_per_page_ = (view.stream_count * view.layers + 63) / 64;
  lease.checksums_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  lease.written_ = std::make_unique<std::atomic<uint64_t>[]>(n * lease.words_per_page_);
  for (size_t i = 0; i < n; ++i) lease.checksums_[i].store(0, std::memory_order_relaxed);
  for (size_t i = 0; i < n * lease.words_per_page_; ++i) lease.written_[i].store(0, std::memory_order_relaxed);
  lease.placements_ = std::move(pages);
  lease.id_ = id;
  if (view.serving_epoch) lease.epoch_ = view.serving_epoch->load(std::memory_order_acquire);
  lease.closed_ = false;
  lease.session_ = std::move(session);
  return lease;
}

}  // namespace cxlkv::detail
