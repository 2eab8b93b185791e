// Internal: builds PoolViews and leases from parts. The Session calls it after Hello, Reserve
// and Lookup; tests call it to read and write a region they set up with the allocator directly,
// with no daemon (then the lease has no session and release/renew/abort are local no-ops).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cxlkv/read_lease.h"
#include "cxlkv/write_lease.h"
#include "slab_geometry.h"

namespace cxlkv::detail {

// The gather path's view of a region mapped at `base`. Fails if page_tokens is not a power of
// two or the geometry does not fit the region or the layout.
Result<PoolView> make_pool_view(uint8_t* base, uint64_t region_bytes, const SlabGeometry& geometry, const Layout& layout);

struct LeaseFactory {
  static ReadLease read_lease(const PoolView& view, std::vector<Placement> pages, uint64_t id,
                              std::shared_ptr<Session> session);
  static WriteLease write_lease(const PoolView& view, std::vector<Placement> pages, uint64_t id,
                                std::shared_ptr<Session> session);
  // Leases over several nodes (cluster_router.cc): `pages` carry slab offsets from view.base,
  // modulo 2^64 (rebase()); each part names its node's lease and the pages it holds.
  static ReadLease read_lease_over_nodes(const PoolView& view, std::vector<Placement> pages,
                                         std::vector<LeasePart> parts);
  static WriteLease write_lease_over_nodes(const PoolView& view, std::vector<Placement> pages,
                                           std::vector<WritePart> parts);
};

// A placement of a region mapped at `from` re-expressed from `to`: its slab offset becomes
// (from + slab_offset - to) modulo 2^64, so to + offset is the same address in unsigned arithmetic.
inline Placement rebase(Placement p, const uint8_t* from, const uint8_t* to) {
  p.slab_offset += reinterpret_cast<uintptr_t>(from) - reinterpret_cast<uintptr_t>(to);
  return p;
}

}  // namespace cxlkv::detail
