// A PoolService over a fresh shm region, for unit tests that drive the pool without sockets.
// reopen() drops the service and the allocator without any cleanup (as a kill would) and opens
// them again, which runs recovery over what the region holds.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <cstring>
#include <vector>

#include "pool_region.h"
#include "pool_service.h"
#include "temp_region.h"

namespace cxlkv::testing {

inline constexpr const char* kUnitLayout = "custom:name=u,layers=2,page_tokens=64,stream=latent/64/64/sparse,stream=indexer/16/16/bulk";

inline PageKey page_key(uint64_t chain, uint64_t i) {
  PageKey k;
  std::memcpy(k.bytes.data(), &chain, 8);
  std::memcpy(k.bytes.data() + 8, &i, 8);
  k.bytes[31] = 0x5a;
  return k;
}

inline std::vector<PageKey> page_keys(uint64_t chain, uint64_t n) {
  std::vector<PageKey> keys;
  for (uint64_t i = 0; i < n; ++i) keys.push_back(page_key(chain, i));
  return keys;
}

struct ServiceFixture {
  cxl::RegionSpec spec;
  RegionCleanup cleanup;
  std::unique_ptr<cxl::Region> region;
  std::unique_ptr<cxl::Region> metadata;
  std::unique_ptr<SlabAllocator> allocator;
  std::unique_ptr<pool::PoolService> service;
  pool::PoolOptions options;
  pool::RecoveryReport report;
  pool::Clock::time_point now = pool::Clock::now();
  std::vector<wire::Placement> out = std::vector<wire::Placement>(1024);

  // `slabs` slabs of E pages (the region is sized to hold about that many).
  explicit ServiceFixture(uint32_t slabs = 16, uint32_t E = 1, pool::PoolOptions opts = {})
      : spec(temp_spec(cxl::Backend::kShm, 0)), cleanup{spec}, options(opts) {
    auto layout = Layout::parse(kUnitLayout);
    REQUIRE(layout.is_ok());
    const uint64_t slab_bytes = SlabGeometry::plan(64ull << 20, 4096, *layout, E).slab_bytes;
    spec.size = (2ull << 20) + slabs * slab_bytes;  // the slab area starts at 2 MiB
    cleanup.spec = spec;
    auto r = cxl::Region::create(spec, *layout, E);
    REQUIRE(r.is_ok());
    region = std::move(*r);
    auto m = testing::format_pool(*region);
    REQUIRE(m.is_ok());
    metadata = std::move(*m);
    open();
  }

  void open() {
    auto a = SlabAllocator::open(*region, *metadata);
    REQUIRE(a.is_ok());
    allocator = std::move(*a);
    auto s = pool::PoolService::open(*region, *allocator, options, &report);
    REQUIRE(s.is_ok());
    service = std::move(*s);
  }
  void reopen() {
    service.reset();
    allocator.reset();
    open();
  }

  // Reserves and commits keys in namespace `ns` as one write lease; returns the pages committed.
  uint32_t put(uint64_t ns, const std::vector<PageKey>& keys, const PageKey& parent = {}) {
    auto lease = service->reserve(1, ns, parent, keys.data(), static_cast<uint32_t>(keys.size()), out.data(), now);
    REQUIRE(lease.is_ok());
    std::vector<uint64_t> sums(keys.size(), 0);
    auto n = service->commit(1, *lease, sums.data(), static_cast<uint32_t>(sums.size()), now);
    REQUIRE(n.is_ok());
    return *n;
  }
  // Looks keys up in `ns`; returns (hits, read lease).
  pool::LookupResult get(uint64_t ns, const std::vector<PageKey>& keys) {
    auto r = service->lookup(1, ns, keys.data(), static_cast<uint32_t>(keys.size()), out.data(), now);
    REQUIRE(r.is_ok());
    return *r;
  }
};

}  // namespace cxlkv::testing
