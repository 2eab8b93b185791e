// Leases: read leases pin, write leases expire and free their slabs, the reaper ends both.
#include <catch2/catch_test_macros.hpp>

#include "leases.h"
#include "page_record.h"
#include "service_fixture.h"

using namespace cxlkv;
using namespace cxlkv::pool;
using namespace cxlkv::testing;
using namespace std::chrono_literals;

TEST_CASE("a lease id is found only by its session and never again once the lease ends") {
  LeaseTable t(4);
  auto a = t.create(1, LeaseKind::kRead, Clock::now());
  REQUIRE(a.is_ok());
  const uint64_t id = (*a)->id;
  REQUIRE(t.find(id, 1) == *a);
  REQUIRE(t.find(id, 2) == nullptr);
  t.destroy(*a);
  REQUIRE(t.find(id, 1) == nullptr);
  auto b = t.create(1, LeaseKind::kWrite, Clock::now());  // reuses the entry, not the id
  REQUIRE((*b)->id != id);
  REQUIRE(t.find(id, 1) == nullptr);
  REQUIRE(t.count(LeaseKind::kWrite) == 1);
  REQUIRE(t.count(LeaseKind::kRead) == 0);
}

TEST_CASE("the lease table refuses a lease past its capacity") {
  LeaseTable t(2);
  REQUIRE(t.create(1, LeaseKind::kRead, Clock::now()).is_ok());
  REQUIRE(t.create(1, LeaseKind::kRead, Clock::now()).is_ok());
  auto third = t.create(1, LeaseKind::kRead, Clock::now());
  REQUIRE(third.status().code() == Code::kExhausted);
}

TEST_CASE("a read lease pins its pages against remove until it is released") {
  ServiceFixture f;
  const auto keys = page_keys(1, 3);
  REQUIRE(f.put(1, keys) == 3);
  const LookupResult r = f.get(1, keys);
  REQUIRE(f.service->remove(1, keys.data(), 3) == 0);
  REQUIRE(f.service->index().page(f.service->index().find(1, keys[0])).pins == 1);
  REQUIRE(f.service->release(1, r.lease).is_ok());
  REQUIRE(f.service->release(1, r.lease).code() == Code::kNotFound);
  REQUIRE(f.service->remove(1, keys.data(), 3) == 3);
  REQUIRE(f.service->stats().slabs_free == f.service->stats().slabs_total);
}

TEST_CASE("the reaper unpins an expired read lease and leaves a renewed one alone") {
  PoolOptions o;
  o.read_lease_ttl_ms = 100;
  ServiceFixture f(16, 1, o);
  const auto a = page_keys(1, 2), b = page_keys(2, 2);
  f.put(1, a);
  f.put(1, b);
  const LookupResult ra = f.get(1, a), rb = f.get(1, b);
  REQUIRE(f.service->reap(f.now + 50ms) == 0);
  REQUIRE(f.service->renew(1, rb.lease, f.now + 90ms).is_ok());  // b now lives until +190 ms
  REQUIRE(f.service->reap(f.now + 150ms) == 1);
  REQUIRE(f.service->release(1, ra.lease).code() == Code::kNotFound);
  REQUIRE(f.service->remove(1, a.data(), 2) == 2);
  REQUIRE(f.service->remove(1, b.data(), 2) == 0);  // still pinned
  REQUIRE(f.service->reap(f.now + 200ms) == 1);
  REQUIRE(f.service->remove(1, b.data(), 2) == 2);
  REQUIRE(f.service->stats().read_leases == 0);
}

TEST_CASE("the reaper ends an expired write lease: its records go FREE and its slabs return to the allocator") {
  PoolOptions o;
  o.write_lease_ttl_ms = 100;
  ServiceFixture f(16, 2, o);
  const auto keys = page_keys(1, 3);
  auto lease = f.service->reserve(1, 1, {}, keys.data(), 3, f.out.data(), f.now);
  REQUIRE(lease.is_ok());
  REQUIRE(f.service->stats().slabs_free == f.service->stats().slabs_total - 2);  // ceil(3 / E)
  const uint32_t slab = f.out[0].slab();
  REQUIRE(state_of(reinterpret_cast<const PageRecord*>(f.allocator->page_record(slab, 0))->state_word) ==
          PageState::kReserved);
  REQUIRE(f.service->reap(f.now + 100ms) == 1);
  REQUIRE(f.service->stats().pages_reserved == 0);
  REQUIRE(f.service->stats().write_leases == 0);
  REQUIRE(f.service->stats().slabs_free == f.service->stats().slabs_total);
  for (uint32_t p = 0; p < 2; ++p)
    REQUIRE(state_of(reinterpret_cast<const PageRecord*>(f.allocator->page_record(slab, p))->state_word) ==
            PageState::kFree);
  std::vector<uint64_t> sums(3, 0);
  REQUIRE(f.service->commit(1, *lease, sums.data(), 3, f.now).status().code() == Code::kNotFound);
}

TEST_CASE("commit past the write lease's deadline is refused as expired and frees its pages") {
  PoolOptions o;
  o.write_lease_ttl_ms = 100;
  ServiceFixture f(16, 1, o);
  const auto keys = page_keys(1, 2);
  auto lease = f.service->reserve(1, 1, {}, keys.data(), 2, f.out.data(), f.now);
  std::vector<uint64_t> sums(2, 0);
  REQUIRE(f.service->commit(1, *lease, sums.data(), 2, f.now + 101ms).status().code() == Code::kExpired);
  REQUIRE(f.service->stats().pages_reserved == 0);
  REQUIRE(f.get(1, keys).hits == 0);
}

TEST_CASE("a write lease belongs to its session: another session cannot commit or abort it") {
  ServiceFixture f;
  const auto keys = page_keys(1, 1);
  auto lease = f.service->reserve(1, 1, {}, keys.data(), 1, f.out.data(), f.now);
  uint64_t sum = 0;
  REQUIRE(f.service->commit(2, *lease, &sum, 1, f.now).status().code() == Code::kNotFound);
  REQUIRE(f.service->abort(2, *lease).code() == Code::kNotFound);
  REQUIRE(f.service->abort(1, *lease).is_ok());
  REQUIRE(f.service->stats().slabs_free == f.service->stats().slabs_total);
}
