// PrefixIndex: the hash table, the tree links and the LRU list (prefix_index.h).
#include "prefix_index.h"

#include "prefix_directory.h"  // cluster/: which pages the directory summarises

#include <xxhash.h>

#include <cassert>

namespace cxlkv::pool {

PrefixIndex::PrefixIndex(uint64_t slot_count, uint32_t chunk_pages) : slot_count_(slot_count), chunk_pages_(chunk_pages) {
  if (chunk_pages_ > 0) chunk_starts_.reserve(slot_count);
  uint64_t capacity = 16;
  while (capacity < 2 * slot_count) capacity <<= 1;
  mask_ = capacity - 1;
  table_.assign(capacity, 0);
  pages_.resize(slot_count + 1);
  PageMeta& sentinel = pages_[slot_count];
  sentinel.lru_next = sentinel.lru_prev = static_cast<uint32_t>(slot_count);
}

uint64_t PrefixIndex::hash(uint64_t ns, const PageKey& key) {
  uint64_t h = XXH3_64bits_withSeed(key.bytes.data(), key.bytes.size(), ns);
  return h | (uint64_t{1} << 32);  // the tag is never 0, so no entry is 0
}

void PrefixIndex::table_insert(uint32_t slot) {
  const PageMeta& m = pages_[slot];
  const uint64_t h = hash(m.ns, m.key);
  uint64_t i = h & mask_;
  while (table_[i] != 0) i = (i + 1) & mask_;
  table_[i] = (h >> 32) << 32 | (uint64_t{slot} + 1);
}

void PrefixIndex::table_erase(uint32_t slot) {
  const PageMeta& m = pages_[slot];
  uint64_t i = hash(m.ns, m.key) & mask_;
  while (static_cast<uint32_t>(table_[i]) != slot + 1) i = (i + 1) & mask_;
  // Backward shift: move up each later entry of the run whose home is not in (i, j].
  for (uint64_t j = (i + 1) & mask_; table_[j] != 0; j = (j + 1) & mask_) {
    const PageMeta& o = pages_[static_cast<uint32_t>(table_[j]) - 1];
    const uint64_t home = hash(o.ns, o.key) & mask_;
    const bool home_in_gap = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (home_in_gap) continue;
    table_[i] = table_[j];
    i = j;
  }
  table_[i] = 0;
}

void PrefixIndex::add_reserved(uint32_t slot, uint64_t ns, const PageKey& key, const PageKey& parent, uint64_t lease) {
  assert(pages_[slot].state == PageState::kFree);
  PageMeta& m = pages_[slot];
  m = PageMeta{};
  m.key = key;
  m.parent_key = parent;
  m.ns = ns;
  m.lease = lease;
  m.state = PageState::kReserved;
  table_insert(slot);
  ++reserved_;
}

void PrefixIndex::set_committed(uint32_t slot) {
  PageMeta& m = pages_[slot];
  assert(m.state == PageState::kReserved);
  m.state = PageState::kCommitted;
  m.lease = 0;
  --reserved_;
  ++committed_;
  ++committed_changes_;
  if (!m.parent_key.is_zero()) {
    const uint32_t parent = find(m.ns, m.parent_key);
    if (parent != kNoSlot && pages_[parent].state == PageState::kCommitted) {
      m.parent_slot = parent;
      ++pages_[parent].children;
    }
  }
  // Summarised: chunk starts, and a run that begins away from its parent (an extension placed
  // elsewhere because its parent's node drained): lookups find such a run only by the directory.
  // Parents commit before their children (in a lease, and in recovery's commit order).
  const bool away_from_parent = !m.parent_key.is_zero() && m.parent_slot == kNoSlot;
  if (chunk_pages_ > 0 && (away_from_parent || cluster::starts_summarised_chunk(m.key, m.parent_key, chunk_pages_))) {
    m.chunk_start_pos = static_cast<uint32_t>(chunk_starts_.size());
    chunk_starts_.push_back(slot);
  }
  lru_push_head(slot);
}

void PrefixIndex::erase(uint32_t slot) {
  PageMeta& m = pages_[slot];
  if (m.state == PageState::kFree) return;
  table_erase(slot);
  if (m.state == PageState::kCommitted) --committed_, ++committed_changes_;
  else --reserved_;
  if (m.in_lru) lru_unlink(slot);
  if (m.chunk_start_pos != kNoSlot) {  // swap-remove from the chunk-start list
    const uint32_t last = chunk_starts_.back();
    chunk_starts_[m.chunk_start_pos] = last;
    pages_[last].chunk_start_pos = m.chunk_start_pos;
    chunk_starts_.pop_back();
  }
  if (m.parent_slot != kNoSlot) --pages_[m.parent_slot].children;
  if (m.children > 0) {
    // An interior page goes only by remove: orphan its children (slow path, a scan).
    for (uint64_t s = 0; s < slot_count_ && m.children > 0; ++s)
      if (pages_[s].parent_slot == slot) pages_[s].parent_slot = kNoSlot, --m.children;
  }
  m = PageMeta{};
}

void PrefixIndex::pin(uint32_t slot) {
  PageMeta& m = pages_[slot];
  if (m.pins++ == 0 && m.in_lru) lru_unlink(slot);
}

void PrefixIndex::unpin(uint32_t slot) {
  PageMeta& m = pages_[slot];
  assert(m.pins > 0);
  if (--m.pins == 0 && m.state == PageState::kCommitted) lru_push_head(slot);
}

uint32_t PrefixIndex::lru_victim() const {
  const auto sentinel = static_cast<uint32_t>(slot_count_);
  for (uint32_t s = pages_[sentinel].lru_prev; s != sentinel; s = pages_[s].lru_prev)
    if (pages_[s].children == 0) return s;
  return kNoSlot;
}

void PrefixIndex::lru_push_head(uint32_t slot) {
  const auto sentinel = static_cast<uint32_t>(slot_count_);
  PageMeta& m = pages_[slot];
  m.lru_prev = sentinel;
  m.lru_next = pages_[sentinel].lru_next;
  pages_[m.lru_next].lru_prev = slot;
  pages_[sentinel].lru_next = slot;
  m.in_lru = true;
  ++lru_pages_;
}

void PrefixIndex::lru_unlink(uint32_t slot) {
  PageMeta& m = pages_[slot];
  pages_[m.lru_prev].lru_next = m.lru_next;
  pages_[m.lru_next].lru_prev = m.lru_prev;
  m.lru_prev = m.lru_next = kNoSlot;
  m.in_lru = false;
  --lru_pages_;
}

}  // namespace cxlkv::pool
