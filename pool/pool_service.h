// PoolService: the pool's state and its operations (reserve, commit, abort, lookup, renew,
// release, remove, stats, the lease reaper, eviction, recovery) in plain types, with no sockets.
// The dispatcher (dispatch.h) calls it for every request; tests call it directly. It owns the
// prefix index and the lease table and is the only writer of page records. Single-threaded: the
// server's one I/O thread owns it, so it takes no locks.
// Split over files by job: pool_service.cc (ops), eviction.cc, recovery.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv_wire_generated.h"
#include "eviction.h"
#include "leases.h"
#include "prefix_index.h"
#include "slab_allocator.h"

namespace cxlkv::pool {

struct PoolOptions {
  uint32_t read_lease_ttl_ms = 30'000;
  uint32_t write_lease_ttl_ms = 30'000;
  Watermarks watermarks;
  uint32_t max_keys = 16384;
  uint32_t max_leases = 65536;
  bool verify_data = false;  // recovery recomputes every committed page's data checksum
  uint32_t directory_chunk_pages = 0;  // in a cluster: its C, so the index lists chunk starts
};

// What recovery found and did.
struct RecoveryReport {
  uint64_t committed = 0;          // pages back in the index
  uint64_t reserved_freed = 0;     // RESERVED records set FREE
  uint64_t invalid_freed = 0;      // damaged, stale-generation, duplicate or bad-data records set FREE
  uint64_t slabs_freed = 0;        // in-use slabs with no committed page, returned to the allocator
};

struct PoolStats {
  uint64_t pages_committed = 0, pages_reserved = 0;
  uint64_t slabs_total = 0, slabs_free = 0;
  uint64_t read_leases = 0, write_leases = 0;
  uint64_t lookup_hits = 0, lookup_misses = 0;
  uint64_t evictions = 0;
  uint64_t lookups = 0, commits = 0, expired_leases = 0;
};
// Adds another partition's counters: the daemon's totals (metrics, an admin's Stats).
inline PoolStats& operator+=(PoolStats& a, const PoolStats& b) {
  a.pages_committed += b.pages_committed, a.pages_reserved += b.pages_reserved;
  a.slabs_total += b.slabs_total, a.slabs_free += b.slabs_free;
  a.read_leases += b.read_leases, a.write_leases += b.write_leases;
  a.lookup_hits += b.lookup_hits, a.lookup_misses += b.lookup_misses;
  a.evictions += b.evictions, a.lookups += b.lookups, a.commits += b.commits, a.expired_leases += b.expired_leases;
  return a;
}

struct LookupResult {
  uint64_t lease = 0;  // 0 when no page hit
  uint32_t hits = 0;   // placements written
};

class PoolService {
 public:
  // Takes the region's allocator (opened by the caller), recovers the slab table into the index.
  static Result<std::unique_ptr<PoolService>> open(cxl::Region& region, SlabAllocator& allocator,
                                                   const PoolOptions& options, RecoveryReport* report = nullptr);
  PoolService(const PoolService&) = delete;
  PoolService& operator=(const PoolService&) = delete;

  static constexpr uint32_t kNoTenant = 0xffffffffu;

  // A new session id (Hello) of tenant `tenant` (an index of the daemon's tenants, kNoTenant
  // under open auth); its reserves are counted against that tenant's share.
  uint64_t new_session(uint32_t tenant = kNoTenant);
  void end_session(uint64_t session) { session_tenant_.erase(session); }
  // At most max_slabs slabs for the pages tenant `tenant` writes; over that, its reserves evict
  // only its own pages, and one that cannot fit its share is refused before any eviction.
  void set_tenant_share(uint32_t tenant, uint64_t max_slabs);
  // Slabs holding pages the tenant wrote (pages recovered at start count for no tenant).
  uint64_t tenant_slabs(uint32_t tenant) const { return tenant < tenant_slabs_.size() ? tenant_slabs_[tenant] : 0; }
  // The tenant whose reserve allocated the slab (kNoTenant: recovered at start, or open auth).
  uint32_t slab_tenant(uint32_t slab) const { return slab < slab_owner_.size() ? slab_owner_[slab] : kNoTenant; }

  // Hot. The longest prefix of keys[0..n) COMMITTED in `ns`: writes its placements to out[0..h)
  // and pins those pages under a new read lease. n <= max_keys is the caller's check.
  [[gnu::hot]] Result<LookupResult> lookup(uint64_t session, uint64_t ns, const PageKey* keys, uint32_t n,
                                           wire::Placement* out, Clock::time_point now);
  // Reserves slots for keys[0..n) (keys[0]'s parent is `parent`); out[i] is key i's placement or
  // its Cached/InFlight flag. Returns the write lease. Evicts on demand; kExhausted if still full.
  Result<uint64_t> reserve(uint64_t session, uint64_t ns, const PageKey& parent, const PageKey* keys, uint32_t n,
                           wire::Placement* out, Clock::time_point now);
  // Commits every slotted page of a write lease with checksums[i] for key i; n must equal the
  // reserved key count. Returns the pages committed; the lease ends.
  Result<uint32_t> commit(uint64_t session, uint64_t lease, const uint64_t* checksums, uint32_t n,
                          Clock::time_point now);
  Status abort(uint64_t session, uint64_t lease);
  // Extends a read or write lease by its TTL; returns the TTL in ms.
  Result<uint32_t> renew(uint64_t session, uint64_t lease, Clock::time_point now);
  Status release(uint64_t session, uint64_t lease);
  // Frees the COMMITTED, unpinned pages among keys of `ns`; returns how many.
  uint32_t remove(uint64_t ns, const PageKey* keys, uint32_t n);

  // Ends every lease past its deadline (read: unpin; write: as abort). Returns how many.
  uint32_t reap(Clock::time_point now);
  // Evicts LRU pages while slab usage is above the high watermark, down to the low one.
  uint32_t maintain_watermarks();

  PoolStats stats() const;
  // Whether `session` holds a live lease (a scan: for idle checks, not for a hot path).
  bool holds_leases(uint64_t session) const { return leases_.holds_any(session); }
  const PrefixIndex& index() const { return index_; }
  const PoolOptions& options() const { return options_; }
  const SlabGeometry& geometry() const { return geometry_; }
  cxl::Region& region() const { return region_; }
  // Where its page records lie (the allocator's metadata region).
  const cxl::Region& metadata() const { return allocator_.metadata(); }

 private:
  PoolService(cxl::Region& region, SlabAllocator& allocator, const PoolOptions& options);
  // recovery.cc
  Status recover(RecoveryReport& report);
  // eviction.cc: evicts LRU leaves until `free_slabs` slabs are free or nothing is evictable.
  uint32_t evict_until_free(uint64_t free_slabs);
  // Evicts the tenant's own LRU leaves until it holds at most `slabs`, or none is left to evict.
  uint32_t evict_tenant_down_to(uint32_t tenant, uint64_t slabs);
  // The share check of a reserve of `slabs_needed` slabs by `tenant` (evicting its own pages).
  Status fit_tenant_share(uint32_t tenant, uint64_t slabs_needed, uint32_t pages);
  // The slab leaves use: its owner's count goes down.
  void release_slab(uint32_t slab);

  uint8_t* record_bytes(uint32_t slot) const {
    return allocator_.page_record(slot / geometry_.slab_pages, slot % geometry_.slab_pages);
  }
  wire::Placement placement(uint32_t slot, uint16_t flags) const;
  // Sets a RESERVED or COMMITTED page FREE (record first), drops it from the index and returns
  // its slab to the allocator when the slab holds no other page.
  void free_page(uint32_t slot);
  void end_write_lease(Lease* lease);
  void end_read_lease(Lease* lease);
  Clock::time_point deadline(LeaseKind kind, Clock::time_point now) const;

  cxl::Region& region_;
  SlabAllocator& allocator_;
  PoolOptions options_;
  SlabGeometry geometry_;
  Layout layout_;
  PrefixIndex index_;
  LeaseTable leases_;
  // Pages of each slab that are RESERVED or COMMITTED. Invariant: a slab is in use in the
  // allocator iff slab_pages_live_[slab] > 0 (between operations).
  std::vector<uint16_t> slab_pages_live_;
  // Tenants: who allocated each slab, slabs per tenant, each tenant's cap (UINT64_MAX: none),
  // and each live session's tenant.
  std::vector<uint32_t> slab_owner_;
  std::vector<uint64_t> tenant_slabs_, tenant_max_slabs_;
  std::unordered_map<uint64_t, uint32_t> session_tenant_;
  uint64_t commit_seq_ = 1;
  uint64_t sessions_ = 0;
  std::vector<uint64_t> expired_scratch_;
  std::vector<uint32_t> slab_scratch_;

  // Counters
  uint64_t lookups_ = 0, lookup_hits_ = 0, lookup_misses_ = 0;
  uint64_t commits_ = 0, evictions_ = 0, expired_leases_ = 0;
};

}  // namespace cxlkv::pool
