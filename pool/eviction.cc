// Eviction: LRU leaves first, on demand (reserve) and between the watermarks (eviction.h).
// A page is a candidate only when COMMITTED, unpinned and without a COMMITTED child; its latent
// and indexer streams go together because a page is one record and one slot.
#include "pool_service.h"

namespace cxlkv::pool {

uint32_t PoolService::evict_until_free(uint64_t free_slabs) {
  uint32_t evicted = 0;
  while (allocator_.stats().free < free_slabs) {
    const uint32_t victim = index_.lru_victim();
    if (victim == kNoSlot) break;
    free_page(victim);
    ++evicted;
  }
  evictions_ += evicted;
  return evicted;
}

uint32_t PoolService::evict_tenant_down_to(uint32_t tenant, uint64_t slabs) {
  const uint32_t E = geometry_.slab_pages;
  uint32_t evicted = 0;
  while (tenant_slabs_[tenant] > slabs) {
    const uint32_t victim = index_.lru_victim_if([&](uint32_t slot) { return slab_owner_[slot / E] == tenant; });
    if (victim == kNoSlot) break;
    free_page(victim);
    ++evicted;
  }
  evictions_ += evicted;
  return evicted;
}

uint32_t PoolService::maintain_watermarks() {
  const SlabStats s = allocator_.stats();
  const uint64_t target = watermark_free_target(s.total, s.free, options_.watermarks);
  return target == 0 ? 0 : evict_until_free(target);
}

}  // namespace cxlkv::pool
