// PoolService operations: reserve, commit, abort, lookup, renew, release, remove, reap, stats
// (pool_service.h). Eviction lives in eviction.cc, recovery in recovery.cc.
//
// Why a kill -9 at any instant loses no committed page and leaks nothing (recovery.cc relies on it):
//  - reserve: the allocator persists the slab's in-use word (new generation) before any record of
//    the slab is written; records then go RESERVED (persisted). A kill in between leaves an in-use
//    slab with no COMMITTED record, or RESERVED records: recovery frees both.
//  - commit: the writer made its data durable (flush + fence) before sending Commit. The daemon
//    persists the record body with its checksum, then the state word COMMITTED, then replies. So an
//    acknowledged commit is durable; a kill before the state word leaves RESERVED (reclaimed, never
//    acknowledged); the 8-byte state word cannot tear. Each page's state word is its own commit
//    point and a lease's pages commit in chain order, so a kill in the middle of a many-page
//    commit leaves the chain's first pages COMMITTED and the rest RESERVED: a shorter valid prefix
//    (never a page without its parent), which the writer, unanswered, writes again or drops.
//  - free (abort, expiry, remove, eviction): the state word goes FREE (persisted) first, and only
//    when no page of the slab is live does the allocator's word go free. A kill between the two
//    leaves an in-use slab without a COMMITTED page: recovery frees it.
#include "pool_service.h"

#include <algorithm>
#include <fmt/format.h>
#include <string>

#include "record_writer.h"

namespace cxlkv::pool {

static_assert(sizeof(wire::Key) == sizeof(PageKey), "wire keys are read in place as PageKey");

PoolService::PoolService(cxl::Region& region, SlabAllocator& allocator, const PoolOptions& options)
    : region_(region), allocator_(allocator), options_(options), geometry_(allocator.geometry()),
      layout_(region.layout()), index_(uint64_t{geometry_.slab_count} * geometry_.slab_pages, options.directory_chunk_pages),
      leases_(options.max_leases), slab_pages_live_(geometry_.slab_count, 0),
      slab_owner_(geometry_.slab_count, kNoTenant) {}

uint64_t PoolService::new_session(uint32_t tenant) {
  ++sessions_;
  if (tenant != kNoTenant) session_tenant_[sessions_] = tenant;
  return sessions_;
}

void PoolService::set_tenant_share(uint32_t tenant, uint64_t max_slabs) {
  if (tenant >= tenant_slabs_.size()) {
    tenant_slabs_.resize(tenant + 1, 0);
    tenant_max_slabs_.resize(tenant + 1, UINT64_MAX);
  }
  tenant_max_slabs_[tenant] = max_slabs;
}

void PoolService::release_slab(uint32_t slab) {
  if (const uint32_t owner = slab_owner_[slab]; owner != kNoTenant) {
    --tenant_slabs_[owner];
    slab_owner_[slab] = kNoTenant;
  }
  (void)allocator_.free(slab);
}

Status PoolService::fit_tenant_share(uint32_t tenant, uint64_t slabs_needed, uint32_t pages) {
  const uint64_t cap = tenant_max_slabs_[tenant];
  if (slabs_needed > cap)
    return Status(Code::kExhausted, fmt::format("reserve: {} slabs needed for {} pages, the tenant's share is {} slabs; "
                                                "nothing was evicted", slabs_needed, pages, cap));
  if (tenant_slabs_[tenant] + slabs_needed > cap) evict_tenant_down_to(tenant, cap - slabs_needed);
  if (tenant_slabs_[tenant] + slabs_needed > cap)
    return Status(Code::kExhausted, fmt::format("reserve: {} slabs needed for {} pages; the tenant holds {} of its "
                                                "share of {} and nothing of its own is evictable", slabs_needed, pages,
                                                tenant_slabs_[tenant], cap));
  return Status::ok();
}

Result<std::unique_ptr<PoolService>> PoolService::open(cxl::Region& region, SlabAllocator& allocator,
                                                       const PoolOptions& options, RecoveryReport* report) {
  std::unique_ptr<PoolService> s(new PoolService(region, allocator, options));
  RecoveryReport local;
  if (Status st = s->recover(report ? *report : local); !st) return st;
  return s;
}

wire::Placement PoolService::placement(uint32_t slot, uint16_t flags) const {
  const uint32_t slab = slot / geometry_.slab_pages;
  return wire::Placement(geometry_.slab_offset(slab), allocator_.generation(slab), slab,
                         static_cast<uint16_t>(slot % geometry_.slab_pages), flags);
}

Clock::time_point PoolService::deadline(LeaseKind kind, Clock::time_point now) const {
  const uint32_t ms = kind == LeaseKind::kRead ? options_.read_lease_ttl_ms : options_.write_lease_ttl_ms;
  return now + std::chrono::milliseconds(ms);
}

Result<LookupResult> PoolService::lookup(uint64_t session, uint64_t ns, const PageKey* keys, uint32_t n,
                                         wire::Placement* out, Clock::time_point now) {
  ++lookups_;
  uint32_t h = 0;
  for (; h < n; ++h) {
    const uint32_t slot = index_.find(ns, keys[h]);
    if (slot == kNoSlot || index_.page(slot).state != PageState::kCommitted) break;
    out[h] = placement(slot, 0);
  }
  lookup_hits_ += h;
  if (h < n) ++lookup_misses_;
  if (h == 0) return LookupResult{};
  auto lease = leases_.create(session, LeaseKind::kRead, deadline(LeaseKind::kRead, now));
  if (!lease) return lease.status();
  Lease* l = *lease;
  for (uint32_t i = 0; i < h; ++i) {
    const uint32_t slot = static_cast<uint32_t>(geometry_.page_slot(out[i].slab(), out[i].position()));
    index_.pin(slot);
    l->slots.push_back(slot);
  }
  return LookupResult{l->id, h};
}

Result<uint64_t> PoolService::reserve(uint64_t session, uint64_t ns, const PageKey& parent, const PageKey* keys,
                                      uint32_t n, wire::Placement* out, Clock::time_point now) {
  if (leases_.full()) return Status(Code::kExhausted, "reserve: the lease table is full");
  // Pages to write: not in the index. A key repeated in the request counts here and is flagged
  // InFlight below; the slab positions it would have taken stay FREE.
  uint32_t wanted = 0;
  for (uint32_t i = 0; i < n; ++i) wanted += index_.find(ns, keys[i]) == kNoSlot;
  const uint32_t E = geometry_.slab_pages;
  const uint32_t slabs_needed = (wanted + E - 1) / E;
  // A request that cannot fit even after evicting every evictable page is refused before anything
  // is evicted: one oversized reserve must not wipe everyone's cache for nothing.
  const SlabStats before = allocator_.stats();
  const uint64_t freeable = std::min<uint64_t>(before.in_use, index_.lru_pages());
  if (slabs_needed > before.total)
    return Status(Code::kExhausted, fmt::format("reserve: {} slabs needed for {} pages, the pool has {} in all; "
                                                "nothing was evicted", slabs_needed, wanted, before.total));
  if (before.free + freeable < slabs_needed)
    return Status(Code::kExhausted, fmt::format("reserve: {} slabs needed for {} pages, {} free and at most {} "
                                                "evictable; nothing was evicted", slabs_needed, wanted, before.free,
                                                freeable));
  // A tenant with a share makes room within it first, from its own pages only.
  const auto owner = session_tenant_.find(session);
  const uint32_t tenant = owner == session_tenant_.end() ? kNoTenant : owner->second;
  if (tenant != kNoTenant && tenant < tenant_max_slabs_.size() && tenant_max_slabs_[tenant] != UINT64_MAX)
    if (Status st = fit_tenant_share(tenant, slabs_needed, wanted); !st) return st;
  if (allocator_.stats().free < slabs_needed) evict_until_free(slabs_needed);
  if (allocator_.stats().free < slabs_needed)
    return Status(Code::kExhausted, fmt::format("reserve: {} slabs needed for {} pages, {} free and nothing evictable",
                                                slabs_needed, wanted, allocator_.stats().free));
  slab_scratch_.clear();
  for (uint32_t j = 0; j < slabs_needed; ++j) {
    auto slab = allocator_.allocate();
    if (!slab) return slab.status();  // cannot happen: free was checked, one thread
    slab_scratch_.push_back(*slab);
    if (tenant != kNoTenant) {
      if (tenant >= tenant_slabs_.size()) set_tenant_share(tenant, UINT64_MAX);
      slab_owner_[*slab] = tenant;
      ++tenant_slabs_[tenant];
    }
  }
  Lease* l = *leases_.create(session, LeaseKind::kWrite, deadline(LeaseKind::kWrite, now));
  uint32_t next = 0;  // pages placed so far; page j goes to slab j / E, position j % E
  for (uint32_t i = 0; i < n; ++i) {
    const PageKey& key_parent = i == 0 ? parent : keys[i - 1];
    const uint32_t found = index_.find(ns, keys[i]);
    if (found != kNoSlot) {
      const bool cached = index_.page(found).state == PageState::kCommitted;
      out[i] = cached ? placement(found, uint16_t(wire::PlacementFlags::Cached))
                      : wire::Placement(0, 0, 0, 0, uint16_t(wire::PlacementFlags::InFlight));
      l->slots.push_back(kNoSlot);
      continue;
    }
    const uint32_t slab = slab_scratch_[next / E];
    const uint32_t position = next % E;
    ++next;
    const auto slot = static_cast<uint32_t>(geometry_.page_slot(slab, position));
    PageRecord body{};
    body.generation = allocator_.generation(slab);
    body.ns = ns;
    body.key = keys[i];
    body.parent = key_parent;
    body.slab = slab;
    body.position = static_cast<uint16_t>(position);
    write_reserved(record_bytes(slot), body);
    index_.add_reserved(slot, ns, keys[i], key_parent, l->id);
    ++slab_pages_live_[slab];
    l->slots.push_back(slot);
    out[i] = placement(slot, 0);
  }
  for (uint32_t slab : slab_scratch_)  // only when keys repeated: a slab nobody landed in
    if (slab_pages_live_[slab] == 0) release_slab(slab);
  return l->id;
}

Result<uint32_t> PoolService::commit(uint64_t session, uint64_t lease, const uint64_t* checksums, uint32_t n,
                                     Clock::time_point now) {
  Lease* l = leases_.find(lease, session);
  if (!l || l->kind != LeaseKind::kWrite)
    return Status(Code::kNotFound, fmt::format("commit: lease {} is not a write lease of this session", lease));
  if (l->expires <= now) {
    end_write_lease(l);
    return Status(Code::kExpired, fmt::format("commit: write lease {} expired; its pages are freed", lease));
  }
  if (n != l->slots.size())
    return Status(Code::kInvalidArgument,
                  fmt::format("commit: {} checksums for write lease {} of {} keys", n, lease, l->slots.size()));
  uint32_t committed = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t slot = l->slots[i];
    if (slot == kNoSlot) continue;
    write_committed(record_bytes(slot), checksums[i], commit_seq_++);
    index_.set_committed(slot);
    ++committed;
  }
  ++commits_;
  leases_.destroy(l);
  return committed;
}

void PoolService::free_page(uint32_t slot) {
  write_free(record_bytes(slot));
  index_.erase(slot);
  const uint32_t slab = slot / geometry_.slab_pages;
  if (--slab_pages_live_[slab] == 0) release_slab(slab);
}

void PoolService::end_write_lease(Lease* lease) {
  for (uint32_t slot : lease->slots)
    if (slot != kNoSlot) free_page(slot);
  leases_.destroy(lease);
}

void PoolService::end_read_lease(Lease* lease) {
  // Deepest page first, so the prefix's root ends nearest the LRU head (leaves go first).
  for (auto it = lease->slots.rbegin(); it != lease->slots.rend(); ++it) index_.unpin(*it);
  leases_.destroy(lease);
}

Status PoolService::abort(uint64_t session, uint64_t lease) {
  Lease* l = leases_.find(lease, session);
  if (!l || l->kind != LeaseKind::kWrite)
    return Status(Code::kNotFound, fmt::format("abort: lease {} is not a write lease of this session", lease));
  end_write_lease(l);
  return Status::ok();
}

Result<uint32_t> PoolService::renew(uint64_t session, uint64_t lease, Clock::time_point now) {
  Lease* l = leases_.find(lease, session);
  if (!l) return Status(Code::kNotFound, fmt::format("renew: lease {} is not a lease of this session", lease));
  if (l->expires <= now) {
    if (l->kind == LeaseKind::kWrite) end_write_lease(l);
    else end_read_lease(l);
    return Status(Code::kExpired, fmt::format("renew: lease {} expired", lease));
  }
  l->expires = deadline(l->kind, now);
  return l->kind == LeaseKind::kRead ? options_.read_lease_ttl_ms : options_.write_lease_ttl_ms;
}

Status PoolService::release(uint64_t session, uint64_t lease) {
  Lease* l = leases_.find(lease, session);
  if (!l || l->kind != LeaseKind::kRead)
    return Status(Code::kNotFound, fmt::format("release: lease {} is not a read lease of this session", lease));
  end_read_lease(l);
  return Status::ok();
}

uint32_t PoolService::remove(uint64_t ns, const PageKey* keys, uint32_t n) {
  uint32_t removed = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t slot = index_.find(ns, keys[i]);
    if (slot == kNoSlot) continue;
    const PageMeta& m = index_.page(slot);
    if (m.state != PageState::kCommitted || m.pins > 0) continue;
    free_page(slot);
    ++removed;
  }
  return removed;
}

uint32_t PoolService::reap(Clock::time_point now) {
  leases_.expired(now, expired_scratch_);
  for (uint64_t id : expired_scratch_) {
    Lease* l = leases_.find_any(id);
    if (l->kind == LeaseKind::kWrite) end_write_lease(l);
    else end_read_lease(l);
  }
  expired_leases_ += expired_scratch_.size();
  return static_cast<uint32_t>(expired_scratch_.size());
}

PoolStats PoolService::stats() const {
  const SlabStats slabs = allocator_.stats();
  PoolStats s;
  s.pages_committed = index_.committed();
  s.pages_reserved = index_.reserved();
  s.slabs_total = slabs.total;
  s.slabs_free = slabs.free;
  s.read_leases = leases_.count(LeaseKind::kRead);
  s.write_leases = leases_.count(LeaseKind::kWrite);
  s.lookup_hits = lookup_hits_;
  s.lookup_misses = lookup_misses_;
  s.evictions = evictions_;
  s.lookups = lookups_;
  s.commits = commits_;
  s.expired_leases = expired_leases_;
  return s;
}

}  // namespace cxlkv::pool
