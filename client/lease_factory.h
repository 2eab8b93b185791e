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
};

}  // namespace cxlkv::detail
