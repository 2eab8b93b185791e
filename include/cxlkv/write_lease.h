// WriteLease: the slots the daemon reserved for the pages of one prefix run, and the writer's
// side of coherence rule 1 (non-temporal copy into the slab, flushed; the commit fences). Returned
// by Client::reserve; prefill workers fill it with write_entries() and hand it to
// Client::commit(). Also accumulates each page's data checksum (allocator/page_checksum.h).
// Destroying a lease that was neither committed nor aborted aborts it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cxlkv/page_key.h"
#include "cxlkv/pool_view.h"
#include "cxlkv/status.h"

namespace cxlkv {

namespace detail {
class Session;
struct LeaseFactory;

// One node's reserve inside a write lease over the nodes of a cluster (client/cluster_router.cc).
struct WritePart {
  uint64_t id = 0;                  // that node's lease id; 0: nothing reserved there
  std::shared_ptr<Session> session;
  std::vector<uint32_t> pages;      // indices into the whole lease, ascending
  // That node's daemon epoch word and its value at reserve (PoolView::serving_epoch).
  const std::atomic<uint64_t>* serving_epoch = nullptr;
  uint64_t epoch = 0;
};
}  // namespace detail

class WriteLease {
 public:
  WriteLease() = default;
  WriteLease(WriteLease&& other) noexcept { *this = std::move(other); }
  WriteLease& operator=(WriteLease&& other) noexcept;
  WriteLease(const WriteLease&) = delete;
  WriteLease& operator=(const WriteLease&) = delete;
  ~WriteLease();  // aborts a lease still open (errors ignored)

  uint64_t id() const { return id_; }
  // Pages of the reserve request, in its order (page i = keys[i]).
  uint32_t pages() const { return uint32_t(placements_.size()); }
  // Where page p's slot is. slab_offset is from the region base; in a lease over several nodes
  // it is the slot's address minus the first node's base, modulo 2^64 (as ReadLease::placement).
  const Placement& placement(uint32_t page) const { return placements_[page]; }
  std::span<const Placement> placements() const { return placements_; }
  // The memory nodes this lease reserved on: 1, or more for a lease from a cluster client.
  uint32_t nodes() const { return parts_.empty() ? 1 : uint32_t(parts_.size()); }
  // False for pages flagged Cached or InFlight: they have no slot, and writes to them are no-ops.
  bool writable(uint32_t page) const { return (placements_[page].flags & (kPlacementCached | kPlacementInFlight)) == 0; }
  // Pages with a slot: those that commit will publish.
  uint32_t writable_pages() const;
  // True once committed or aborted.
  bool closed() const { return closed_; }

  // Writes one (stream, layer) run of a page: `entries` (= page_tokens) packed entries of
  // entry_bytes each, copied with non-temporal stores into the slab at the stream's stride (the
  // padding is left alone), and folds run_checksum() into the page's checksum. Each run of a
  // page is written exactly once; a second write of the same run is kAlreadyExists. On a page
  // that is not writable() this is a no-op that returns ok. After the daemon that granted the
  // reserve restarted (its reserved slots were freed and may be another writer's now) it is
  // kExpired and writes nothing. Safe from several threads at once.
  Status write_entries(uint32_t page, int stream, uint32_t layer, const void* packed, uint32_t entries);

  // The checksum accumulated so far for a page (what commit sends).
  uint64_t checksum(uint32_t page) const { return checksums_[page].load(std::memory_order_relaxed); }
  // (stream, layer) runs of a page written so far; commit needs streams x layers of each.
  uint32_t runs_written(uint32_t page) const;
  uint32_t runs_per_page() const { return view_.stream_count * view_.layers; }

 private:
  friend struct detail::LeaseFactory;
  friend class Client;

  // kExpired, naming `what`, when a daemon that granted this lease has restarted since.
  Status check_epochs(const char* what) const;

  PoolView view_;
  std::vector<Placement> placements_;
  std::unique_ptr<std::atomic<uint64_t>[]> checksums_;  // per page
  std::unique_ptr<std::atomic<uint64_t>[]> written_;    // per page: ceil(runs/64) words of bits
  uint32_t words_per_page_ = 0;
  uint64_t id_ = 0;
  uint64_t epoch_ = 0;  // the serving daemon's epoch at reserve (PoolView::serving_epoch)
  bool closed_ = true;
  std::shared_ptr<detail::Session> session_;
  // A lease over several nodes: one part per node (then id_ is the first node's, session_ empty).
  std::vector<detail::WritePart> parts_;
};

}  // namespace cxlkv
