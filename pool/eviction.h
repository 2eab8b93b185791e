// Eviction policy: the slab-usage watermarks, how many slabs a pass must free and how many can be
// taken before one must run (PageCopy, an online partition removal's copy). PoolService
// (eviction.cc) applies it, taking LRU leaves from PrefixIndex::lru_victim(); pinned and
// RESERVED pages are never candidates. Pure arithmetic here, so tests can check it alone.
#pragma once

#include <cstdint>

namespace cxlkv::pool {

// Fractions of the region's slabs in use. Eviction starts above `high` and stops at or below `low`.
// Invariant: 0 < low <= high <= 1; high = 1 turns watermark eviction off (on-demand eviction in
// reserve stays).
struct Watermarks {
  double high = 0.95;
  double low = 0.90;
};

// Free slabs a watermark pass must reach: 0 when used <= high x total, else the count that brings
// used down to floor(low x total).
inline uint64_t watermark_free_target(uint64_t total, uint64_t free, const Watermarks& w) {
  const uint64_t used = total - free;
  if (total == 0 || static_cast<double>(used) <= w.high * static_cast<double>(total)) return 0;
  const auto low_used = static_cast<uint64_t>(w.low * static_cast<double>(total));
  return total - low_used;
}

// Free slabs that can be taken without passing the high watermark (used stays <= high x total),
// so that nothing taken there makes a watermark pass evict: what an online copy may fill.
inline uint64_t slabs_below_high_watermark(uint64_t total, uint64_t free, const Watermarks& w) {
  const uint64_t used = total - free;
  const auto high_used = static_cast<uint64_t>(w.high * static_cast<double>(total));
  return high_used > used ? high_used - used : 0;
}

}  // namespace cxlkv::pool
