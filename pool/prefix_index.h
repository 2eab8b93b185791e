// PrefixIndex: the daemon's in-memory map (namespace, page key) -> page slot, with the
// parent/child links of chained keys (a prompt tree) and the LRU list eviction walks. Owned by
// PoolService, which keeps it equal to the COMMITTED and RESERVED records of the slab table.
// Never touches the region: it is rebuilt from the records at recovery.
//
// The map is open addressing with linear probing, sized once for every slot of the region (load
// factor <= 1/2), so it never rehashes and find() never allocates. Entries are hash32 << 32 |
// (slot + 1); 0 is empty. Deletion shifts later entries back (no tombstones).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "page_record.h"  // allocator/: PageState; PageKey is cxlkv::PageKey

namespace cxlkv::pool {

inline constexpr uint32_t kNoSlot = 0xffffffffu;

// What the daemon knows of one page slot.
struct PageMeta {
  PageKey key;
  PageKey parent_key;
  uint64_t ns = 0;
  uint64_t lease = 0;            // the write lease while RESERVED
  uint32_t parent_slot = kNoSlot;  // the COMMITTED parent page in the index, if any
  uint32_t children = 0;         // COMMITTED pages whose parent_slot is this slot
  uint32_t pins = 0;             // read leases holding this page
  uint32_t lru_prev = kNoSlot, lru_next = kNoSlot;
  uint32_t chunk_start_pos = kNoSlot;  // where in the chunk-start list, if this page is on it
  PageState state = PageState::kFree;
  bool in_lru = false;
};

class PrefixIndex {
 public:
  // chunk_pages > 0: keep the list of COMMITTED pages that start a prefix or a placement chunk of
  // that many pages (the cluster's prefix directory publishes their keys); 0: no list.
  explicit PrefixIndex(uint64_t slot_count, uint32_t chunk_pages = 0);
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // Hot (lookup, reserve): the slot holding (ns, key), RESERVED or COMMITTED, or kNoSlot.
  [[gnu::hot]] uint32_t find(uint64_t ns, const PageKey& key) const {
    const uint64_t h = hash(ns, key);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t e = table_[i];
      if (e == 0) return kNoSlot;
      if (static_cast<uint32_t>(e >> 32) == tag) {
        const uint32_t slot = static_cast<uint32_t>(e) - 1;
        const PageMeta& m = pages_[slot];
        if (m.ns == ns && m.key == key) return slot;
      }
    }
  }

  // Adds a RESERVED page at a FREE slot; (ns, key) must not be in the index.
  void add_reserved(uint32_t slot, uint64_t ns, const PageKey& key, const PageKey& parent, uint64_t lease);
  // RESERVED -> COMMITTED: links the page to its COMMITTED parent and puts it at the LRU head.
  void set_committed(uint32_t slot);
  // Drops a page (any state) from the index: unlinks it from its parent, its children and the LRU.
  void erase(uint32_t slot);

  // Read leases: the first pin takes a page off the LRU list; the last unpin puts it at the head.
  void pin(uint32_t slot);
  void unpin(uint32_t slot);

  // The least recently used COMMITTED page that is unpinned and has no COMMITTED child (leaves
  // first), or kNoSlot. Pinned pages are not on the list; pages with children are skipped.
  uint32_t lru_victim() const;
  // The same walk, among the slots `take(slot)` accepts (a tenant's own pages).
  template <typename Take>
  uint32_t lru_victim_if(Take take) const {
    const auto sentinel = static_cast<uint32_t>(slot_count_);
    for (uint32_t s = pages_[sentinel].lru_prev; s != sentinel; s = pages_[s].lru_prev)
      if (pages_[s].children == 0 && take(s)) return s;
    return kNoSlot;
  }

  const PageMeta& page(uint32_t slot) const { return pages_[slot]; }
  uint64_t slot_count() const { return slot_count_; }
  uint64_t committed() const { return committed_; }
  uint64_t reserved() const { return reserved_; }
  // Bumped whenever a page becomes COMMITTED or a COMMITTED page leaves: the set of committed
  // keys is unchanged while this is (the prefix directory's snapshots skip such ticks).
  uint64_t committed_changes() const { return committed_changes_; }
  // The COMMITTED pages that start a prefix, a chunk, or a run whose parent is not committed here
  // (kept when constructed with chunk_pages), in no order: about committed() / C of them.
  std::span<const uint32_t> chunk_start_slots() const { return chunk_starts_; }
  // COMMITTED, unpinned pages (the LRU list): all that eviction could ever free, at most.
  uint64_t lru_pages() const { return lru_pages_; }

 private:
  static uint64_t hash(uint64_t ns, const PageKey& key);
  void table_insert(uint32_t slot);
  void table_erase(uint32_t slot);
  void lru_push_head(uint32_t slot);
  void lru_unlink(uint32_t slot);

  uint64_t slot_count_;
  uint64_t mask_;
  std::vector<uint64_t> table_;
  // pages_[slot_count_] is the LRU sentinel: its lru_next is the head (most recent), lru_prev the tail.
  std::vector<PageMeta> pages_;

  // Counts. Invariants: committed_ + reserved_ == entries in table_; lru_pages_ == pages on the
  // LRU list <= committed_.
  uint64_t committed_ = 0;
  uint64_t reserved_ = 0;
  uint64_t lru_pages_ = 0;
  uint64_t committed_changes_ = 0;
  uint32_t chunk_pages_ = 0;
  std::vector<uint32_t> chunk_starts_;  // reserved for every slot: never reallocates
};

}  // namespace cxlkv::pool
