// Eviction: watermarks, on-demand eviction in reserve, pinned pages never evicted.
#include <catch2/catch_test_macros.hpp>

#include "eviction.h"
#include "service_fixture.h"

using namespace cxlkv;
using namespace cxlkv::pool;
using namespace cxlkv::testing;

TEST_CASE("the watermark target is zero at or below the high watermark and reaches the low one above it") {
  const Watermarks w{0.8, 0.5};
  REQUIRE(watermark_free_target(100, 20, w) == 0);   // 80 used: at high
  REQUIRE(watermark_free_target(100, 19, w) == 50);  // 81 used: down to 50 used
  REQUIRE(watermark_free_target(100, 100, w) == 0);
  REQUIRE(watermark_free_target(0, 0, w) == 0);
  REQUIRE(watermark_free_target(100, 0, Watermarks{1.0, 1.0}) == 0);  // off
}

TEST_CASE("the slabs below the high watermark are those taken before a watermark pass would evict") {
  const Watermarks w{0.95, 0.9};
  REQUIRE(slabs_below_high_watermark(100, 20, w) == 15);  // 80 used: 95 may be
  REQUIRE(slabs_below_high_watermark(100, 5, w) == 0);    // at high
  REQUIRE(slabs_below_high_watermark(100, 2, w) == 0);    // above it
  REQUIRE(slabs_below_high_watermark(0, 0, w) == 0);
  REQUIRE(slabs_below_high_watermark(100, 100, Watermarks{1.0, 1.0}) == 100);  // off: every free slab
  // Taking them all leaves a pass nothing to do; one more would.
  REQUIRE(watermark_free_target(100, 20 - slabs_below_high_watermark(100, 20, w), w) == 0);
  REQUIRE(watermark_free_target(100, 20 - slabs_below_high_watermark(100, 20, w) - 1, w) > 0);
}

TEST_CASE("over the high watermark, eviction frees LRU pages down to the low watermark") {
  PoolOptions o;
  o.watermarks = {0.75, 0.5};
  ServiceFixture f(16, 1, o);
  REQUIRE(f.service->stats().slabs_total == 16);
  for (uint64_t c = 0; c < 12; ++c) f.put(1, page_keys(c, 1));  // 12 of 16 used: at high
  REQUIRE(f.service->maintain_watermarks() == 0);
  f.put(1, page_keys(12, 1));  // 13 used
  REQUIRE(f.service->maintain_watermarks() == 5);
  REQUIRE(f.service->stats().slabs_free == 8);
  REQUIRE(f.service->stats().evictions == 5);
  for (uint64_t c = 0; c < 5; ++c) REQUIRE(f.get(1, page_keys(c, 1)).hits == 0);  // the oldest went
  for (uint64_t c = 5; c < 13; ++c) REQUIRE(f.get(1, page_keys(c, 1)).hits == 1);
}

TEST_CASE("a reserve on a full pool evicts the least recently used pages, leaves first") {
  ServiceFixture f(8);
  const auto old_chain = page_keys(1, 4);
  f.put(1, old_chain);
  f.put(1, page_keys(2, 4));
  REQUIRE(f.service->stats().slabs_free == 0);
  REQUIRE(f.service->release(1, f.get(1, page_keys(2, 4)).lease).is_ok());  // chain 2 used recently
  const auto fresh = page_keys(3, 2);
  REQUIRE(f.service->reserve(1, 1, {}, fresh.data(), 2, f.out.data(), f.now).is_ok());
  // Chain 1 lost its last two pages (leaves first); its prefix of two is still served.
  REQUIRE(f.get(1, old_chain).hits == 2);
  REQUIRE(f.get(1, page_keys(2, 4)).hits == 4);
  REQUIRE(f.service->stats().evictions == 2);
}

TEST_CASE("pinned pages are never evicted: a full pool of pinned pages answers exhausted") {
  ServiceFixture f(4);
  const auto keys = page_keys(1, 4);
  f.put(1, keys);
  const LookupResult pin = f.get(1, keys);
  REQUIRE(pin.hits == 4);
  const auto more = page_keys(2, 1);
  auto r = f.service->reserve(1, 1, {}, more.data(), 1, f.out.data(), f.now);
  REQUIRE(r.status().code() == Code::kExhausted);
  REQUIRE(f.service->maintain_watermarks() == 0);
  REQUIRE(f.service->stats().evictions == 0);
  REQUIRE(f.service->release(1, pin.lease).is_ok());
  REQUIRE(f.service->reserve(1, 1, {}, more.data(), 1, f.out.data(), f.now).is_ok());
  REQUIRE(f.service->stats().evictions == 1);
}

TEST_CASE("reserved pages are never evicted") {
  ServiceFixture f(2);
  const auto keys = page_keys(1, 2);
  REQUIRE(f.service->reserve(1, 1, {}, keys.data(), 2, f.out.data(), f.now).is_ok());
  const auto more = page_keys(2, 1);
  REQUIRE(f.service->reserve(1, 1, {}, more.data(), 1, f.out.data(), f.now).status().code() == Code::kExhausted);
  REQUIRE(f.service->stats().pages_reserved == 2);
}

TEST_CASE("a reserve larger than the pool is refused before anything is evicted") {
  ServiceFixture f(8);
  const auto a = page_keys(1, 4);
  f.put(1, a);  // tenant A's prefix
  const auto huge = page_keys(2, 9);
  auto r = f.service->reserve(1, 2, {}, huge.data(), 9, f.out.data(), f.now);  // tenant B: 9 of 8 slabs
  REQUIRE(r.status().code() == Code::kExhausted);
  REQUIRE(r.status().message().find("the pool has 8 in all") != std::string::npos);
  REQUIRE(f.service->stats().evictions == 0);
  REQUIRE(f.get(1, a).hits == 4);
}

TEST_CASE("a reserve that free and evictable slabs cannot cover is refused before anything is evicted") {
  ServiceFixture f(8);
  const auto pinned = page_keys(1, 4);
  f.put(1, pinned);
  const LookupResult pin = f.get(1, pinned);  // held: these 4 are not evictable
  const auto loose = page_keys(2, 2);
  f.put(1, loose);
  const auto more = page_keys(3, 5);  // 2 free + 2 evictable < 5
  auto r = f.service->reserve(1, 2, {}, more.data(), 5, f.out.data(), f.now);
  REQUIRE(r.status().code() == Code::kExhausted);
  REQUIRE(r.status().message().find("2 free and at most 2 evictable") != std::string::npos);
  REQUIRE(f.service->stats().evictions == 0);
  const LookupResult still = f.get(1, loose);
  REQUIRE(still.hits == 2);
  REQUIRE(f.service->release(1, still.lease).is_ok());
  // Within reach, the same kind of request still evicts what it needs.
  auto ok = f.service->reserve(1, 2, {}, more.data(), 4, f.out.data(), f.now);
  REQUIRE(ok.is_ok());
  REQUIRE(f.service->stats().evictions == 2);
  REQUIRE(f.service->release(1, pin.lease).is_ok());
}

TEST_CASE("a tenant over its share evicts only its own pages, and a reserve past its share is refused first") {
  ServiceFixture f(8);
  const uint64_t a = f.service->new_session(0), b = f.service->new_session(1);
  f.service->set_tenant_share(0, 3);  // tenant 0: 3 of 8 slabs; tenant 1: no share of its own
  auto put_as = [&](uint64_t session, uint64_t ns, const std::vector<PageKey>& keys) {
    auto lease = f.service->reserve(session, ns, {}, keys.data(), uint32_t(keys.size()), f.out.data(), f.now);
    if (!lease) return lease.status();
    std::vector<uint64_t> sums(keys.size(), 0);
    return f.service->commit(session, *lease, sums.data(), uint32_t(sums.size()), f.now).status();
  };
  auto hits = [&](uint64_t ns, const std::vector<PageKey>& keys) {  // looks up, then lets go of the pin
    const LookupResult r = f.get(ns, keys);
    if (r.hits) REQUIRE(f.service->release(1, r.lease).is_ok());
    return r.hits;
  };
  const auto b_old = page_keys(10, 2);
  REQUIRE(put_as(b, 2, b_old).is_ok());  // the LRU's oldest pages are tenant 1's
  for (uint64_t c = 0; c < 3; ++c) REQUIRE(put_as(a, 1, page_keys(c, 1)).is_ok());
  REQUIRE(f.service->tenant_slabs(0) == 3);
  REQUIRE(f.service->tenant_slabs(1) == 2);
  // One more page for tenant 0: over its share, so its own oldest page goes, not tenant 1's.
  REQUIRE(put_as(a, 1, page_keys(3, 1)).is_ok());
  REQUIRE(f.service->tenant_slabs(0) == 3);
  REQUIRE(hits(1, page_keys(0, 1)) == 0);
  REQUIRE(hits(2, b_old) == 2);
  // Four pages can never fit a share of three: refused, nothing evicted.
  const uint64_t evictions = f.service->stats().evictions;
  const Status big = put_as(a, 1, page_keys(20, 4));
  REQUIRE(big.code() == Code::kExhausted);
  REQUIRE(big.message().find("the tenant's share is 3 slabs; nothing was evicted") != std::string::npos);
  REQUIRE(f.service->stats().evictions == evictions);
  for (uint64_t c = 1; c < 4; ++c) REQUIRE(hits(1, page_keys(c, 1)) == 1);
  // Its own pages pinned, nothing of its own to evict: refused, tenant 1 untouched.
  std::vector<LookupResult> pins;
  for (uint64_t c = 1; c < 4; ++c) pins.push_back(f.get(1, page_keys(c, 1)));
  const Status pinned = put_as(a, 1, page_keys(30, 1));
  REQUIRE(pinned.code() == Code::kExhausted);
  REQUIRE(pinned.message().find("holds 3 of its share of 3") != std::string::npos);
  REQUIRE(hits(2, b_old) == 2);
  // A freed slab leaves its owner's count.
  for (const LookupResult& p : pins) REQUIRE(f.service->release(1, p.lease).is_ok());
  REQUIRE(f.service->remove(1, page_keys(1, 1).data(), 1) == 1);
  REQUIRE(f.service->tenant_slabs(0) == 2);
}
