// ReadLease: the block table of a looked-up prefix (per page: slab offset, position, generation)
// and the data-plane reads over it: top-k gather (HOT) and bulk fetch. Returned by
// Client::lookup; decode workers and GPU kernels read through it. The daemon pins the pages until
// release() (also on destruction) or the TTL. The gather path takes no lock, allocates nothing
// and makes no system call; everything slow (errors, release) lives in read_lease.cc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "cxlkv/pool_view.h"
#include "cxlkv/status.h"

namespace cxlkv {

namespace detail {
class Session;
struct LeaseFactory;

// One node's lease inside a lease that spans the nodes of a cluster (client/cluster_router.cc):
// its id and session, its mapping, and which pages of the whole lease it holds. Cold: release,
// renew and the reuse check's slow path read it, never the gather loop.
struct LeasePart {
  PoolView view;                   // that node's mapping
  uint64_t id = 0;                 // that node's lease id; 0: none (nothing pinned there)
  std::shared_ptr<Session> session;
  std::vector<uint32_t> pages;     // indices into the whole lease, ascending
  std::unique_ptr<std::atomic<uint64_t>> frees_seen = std::make_unique<std::atomic<uint64_t>>(0);
  uint64_t epoch = 0;              // that node's serving epoch when the lease was taken
};
}  // namespace detail

// Entries ahead of the one being copied whose lines gather_topk prefetches. The prefetch hints
// below are the one exception to cxl/cacheline.h's rule (only cxl/ issues cache instructions):
// they are not coherence instructions and stay inline here, on the hot gather path.
inline constexpr int kGatherPrefetchAhead = 8;
inline constexpr int kGatherTlbAhead = 32;

class ReadLease {
 public:
  ReadLease() = default;  // no pages, no lease
  ReadLease(ReadLease&& other) noexcept { *this = std::move(other); }
  ReadLease& operator=(ReadLease&& other) noexcept;
  ReadLease(const ReadLease&) = delete;
  ReadLease& operator=(const ReadLease&) = delete;
  ~ReadLease();  // releases (errors ignored; call release() to see them)

  // The daemon's lease id; 0 when lookup found no page. For a lease over several nodes, the first
  // node's (each node has its own; nodes() says how many).
  uint64_t id() const { return id_; }
  // The memory nodes whose pages this lease holds: 1, or more for a lease from a cluster client.
  // The GPU path registers every node's mapping (GpuPool::upload).
  uint32_t nodes() const { return parts_.empty() ? 1 : uint32_t(parts_.size()); }
  // Pages of the leased prefix (the longest cached prefix of the keys looked up).
  uint32_t pages() const { return uint32_t(refs_.size()); }
  // Tokens of the leased prefix: pages() x page_tokens; valid indices are [0, prefix_tokens()).
  int64_t prefix_tokens() const { return int64_t(refs_.size()) << view_.page_shift; }
  // Where page p lives. slab_offset is from view().base; in a lease over several nodes it is the
  // page's address minus view().base modulo 2^64 (another node's mapping may lie below it).
  const Placement& placement(uint32_t page) const { return placements_[page]; }
  std::span<const Placement> placements() const { return placements_; }
  const PoolView& view() const { return view_; }

  // HOT. Copies the entries of `stream`, `layer` named by indices[0..k) into dst, packed
  // [k][entry_bytes]. FlashMLA's convention: index = page x page_tokens + offset within the
  // leased prefix; -1 is skipped and leaves that row of dst untouched. Every index is checked
  // before any byte is read: one < -1 or >= prefix_tokens() fails with kInvalidArgument and
  // dst is untouched. No lock, no allocation, no system call on success.
  Status gather_topk(int stream, uint32_t layer, const int32_t* indices, int k, void* dst) const {
    if (uint32_t(stream) >= view_.stream_count || layer >= view_.layers || k < 0 ||
        (k > 0 && (indices == nullptr || dst == nullptr)))
      return gather_arg_error(stream, layer, k, indices, dst);
    const uint64_t limit = uint64_t(prefix_tokens());
    bool bad = false;
    for (int i = 0; i < k; ++i) bad |= uint64_t(int64_t(indices[i]) + 1) > limit;  // -1 <= index < limit
    if (bad) return index_error(indices, k);
    const PoolView::Stream& s = view_.streams[stream];
    const uint8_t* layer_base = view_.base + s.offset + uint64_t(layer) * s.layer_step;
    const size_t bytes = s.entry_bytes;
    auto* out = static_cast<uint8_t*>(dst);
    for (int i = 0; i < k && i < kGatherPrefetchAhead; ++i) prefetch_entry(s, layer_base, indices[i]);
    for (int i = 0; i < k; ++i) {
      if (i + kGatherPrefetchAhead < k) prefetch_entry(s, layer_base, indices[i + kGatherPrefetchAhead]);
      if (i + kGatherTlbAhead < k) touch_entry(s, layer_base, indices[i + kGatherTlbAhead]);
      if (indices[i] >= 0) std::memcpy(out + size_t(i) * bytes, entry_address(s, layer_base, indices[i]), bytes);
    }
    return check_reuse();
  }

  // HOT tail of every read: the region's slab-free count after the copy. Unchanged since this
  // lease's pages were last known good: no slab was freed, so the bytes are the pages'. Changed:
  // verify_pages() checks this lease's slabs (cold). So a read of a lease whose TTL ran out, or
  // across a daemon restart, fails with kExpired once its slabs are freed or reused, instead of
  // returning their new bytes (DESIGN.md coherence rule 2). A daemon restart counts as a free:
  // a lease taken before it fails with kExpired on its next read (the epoch changed).
  Status check_reuse() const {
    if (view_.slab_frees == nullptr) [[unlikely]]
      return parts_.empty() ? Status::ok() : check_parts();  // no count (tests), or one per node
    std::atomic_thread_fence(std::memory_order_acquire);  // the copy's loads before the count's
    if (view_.slab_frees->load(std::memory_order_relaxed) == frees_seen_.load(std::memory_order_relaxed)) [[likely]]
      return Status::ok();
    return verify_pages();
  }

  // Address of one entry in the mapping (index as for gather_topk, not checked).
  const uint8_t* entry(int stream, uint32_t layer, int32_t index) const {
    const PoolView::Stream& s = view_.streams[stream];
    return entry_address(s, view_.base + s.offset + uint64_t(layer) * s.layer_step, index);
  }

  // Copies the whole `stream` of `layer` for pages [p0, p1) into dst, packed
  // [(p1 - p0) x page_tokens][entry_bytes]; runs of pages adjacent in a slab go in one copy.
  // kExpired (and dst not to be used) when a page's slab was freed or reused, as gather_topk.
  Status fetch_pages(int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst) const;

  // The mappings the lease's pages lie in, each with the session that keeps it mapped while the
  // lease lives: the one node's, or one per node over a cluster. Empty for a lease made without a
  // session (tests over a bare region). Cold: the GPU path registers each with the device.
  struct Mapping {
    const PoolView* view;
    std::shared_ptr<detail::Session> session;
    uint64_t epoch = 0;       // that daemon's epoch when the lease was taken
    uint64_t frees_seen = 0;  // its slab-free count when this lease's pages there were last found good
  };
  std::vector<Mapping> mappings() const;

  // Extends the lease by its TTL; returns the TTL in ms.
  Result<uint32_t> renew();
  // Unpins the pages now; the lease is empty afterwards. A lease with no id is a no-op.
  Status release();

 private:
  friend struct detail::LeaseFactory;

  // One page of the block table, as the gather path reads it (16 B).
  struct PageRef {
    uint64_t slab_offset;  // from the region base
    uint64_t first_token;  // position x page_tokens: the page's first row in its slab's layer run
  };

  // Unsigned arithmetic, so an offset that wraps (a page on another node's mapping) is defined.
  const uint8_t* entry_address(const PoolView::Stream& s, const uint8_t* layer_base, int32_t index) const {
    const PageRef& r = refs_[uint32_t(index) >> view_.page_shift];
    const uint64_t row = r.first_token + (uint32_t(index) & ((1u << view_.page_shift) - 1));
    return reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(layer_base) + r.slab_offset + row * s.stride);
  }
  void prefetch_entry(const PoolView::Stream& s, const uint8_t* layer_base, int32_t index) const {
    if (index < 0) return;
    const uint8_t* p = entry_address(s, layer_base, index);
    const uintptr_t end = reinterpret_cast<uintptr_t>(p) + s.entry_bytes;
    for (uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; a < end; a += 64)
      __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 3);
  }
  // Prefetches the first and last line of an entry, so its OS pages are in the TLB in time.
  void touch_entry(const PoolView::Stream& s, const uint8_t* layer_base, int32_t index) const {
    if (index < 0) return;
    const uint8_t* p = entry_address(s, layer_base, index);
    __builtin_prefetch(p, 0, 1);
  }
  // Slow paths: build the Status that names the bad argument or the first bad index.
  Status gather_arg_error(int stream, uint32_t layer, int k, const int32_t* indices, const void* dst) const;
  Status index_error(const int32_t* indices, int k) const;
  // Every page's slab still holds it (its state word is in use at the placement's generation):
  // then the current free count becomes the known-good one; else kExpired naming the page.
  Status verify_pages() const;
  // check_reuse for a lease over several nodes: each node's count against its part's.
  Status check_parts() const;

  // Hot fields first: the view and the block table.
  PoolView view_;
  std::vector<PageRef> refs_;
  // Cold: what the lease is, and who to tell when it ends.
  std::vector<Placement> placements_;
  uint64_t id_ = 0;
  std::shared_ptr<detail::Session> session_;
  // The region's slab-free count when the pages were last known to be this lease's.
  mutable std::atomic<uint64_t> frees_seen_{0};
  // The serving daemon's epoch when the lease was taken (PoolView::serving_epoch).
  uint64_t epoch_ = 0;
  // A lease over several nodes: one part per node (view_ is then the first node's, with no counts).
  std::vector<detail::LeasePart> parts_;
};

// Free-function spelling of the read path, as the issue names it.
inline Status gather_topk(const ReadLease& lease, int stream, uint32_t layer, const int32_t* indices, int k, void* dst) {
  return lease.gather_topk(stream, layer, indices, k, dst);
}

}  // namespace cxlkv
