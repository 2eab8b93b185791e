// The daemon's record writers (reserve, commit, free leave the documented bytes of
// allocator/page_record.h), and recovery's scan of the slab table after a crash. The record's
// format and decoding alone are tested in tests/allocator/page_record_test.cc.
#include <catch2/catch_test_macros.hpp>

#include <xxhash.h>

#include "page_checksum.h"
#include "record_writer.h"
#include "service_fixture.h"

using namespace cxlkv;
using namespace cxlkv::pool;
using namespace cxlkv::testing;

namespace {

PageRecord sample_body() {
  PageRecord r{};
  r.generation = 0x1122334455667788ull;
  r.ns = 0xabcdef0123456789ull;
  r.key = page_key(7, 8);
  r.parent = page_key(7, 7);
  r.slab = 5;
  r.position = 3;
  return r;
}

uint64_t u64_at(const uint8_t* p, size_t off) {
  uint64_t v;
  std::memcpy(&v, p + off, 8);
  return v;
}

}  // namespace

TEST_CASE("the record writers store RESERVED, then a COMMITTED record with the documented bytes, then FREE") {
  alignas(64) uint8_t slot[128] = {};
  write_reserved(slot, sample_body());
  REQUIRE(u64_at(slot, 0) == (uint64_t{kPageRecordVersion} << 32 | 1));  // RESERVED
  write_committed(slot, 0xfeedull, 42);
  REQUIRE(u64_at(slot, 0) == (uint64_t{kPageRecordVersion} << 32 | 2));  // COMMITTED
  REQUIRE(u64_at(slot, 8) == 0x1122334455667788ull);
  REQUIRE(u64_at(slot, 16) == 0xabcdef0123456789ull);
  REQUIRE(std::memcmp(slot + 24, page_key(7, 8).bytes.data(), 32) == 0);
  REQUIRE(std::memcmp(slot + 56, page_key(7, 7).bytes.data(), 32) == 0);
  REQUIRE(u64_at(slot, 88) == 0xfeed);
  REQUIRE(u64_at(slot, 96) == 42);
  REQUIRE(u64_at(slot, 104) == (uint64_t{3} << 32 | 5));  // slab 5, position 3
  REQUIRE(u64_at(slot, 120) == XXH64(slot + 8, 112, kPageRecordVersion));
  auto d = decode_record(slot, 5, 3);
  REQUIRE(d.is_ok());
  REQUIRE(d->state == PageState::kCommitted);
  REQUIRE(d->fields.key == page_key(7, 8));
  REQUIRE(d->fields.data_checksum == 0xfeed);
  write_free(slot);
  REQUIRE(decode_record(slot, 5, 3)->state == PageState::kFree);
}

TEST_CASE("recovery keeps committed pages, frees reserved records and slabs with no committed page") {
  ServiceFixture f(16, 2);
  const auto done = page_keys(1, 3), pending = page_keys(2, 4);
  REQUIRE(f.put(1, done) == 3);
  REQUIRE(f.service->reserve(1, 1, {}, pending.data(), 4, f.out.data(), f.now).is_ok());
  REQUIRE(f.service->stats().slabs_free == 16 - 2 - 2);
  f.reopen();  // as after kill -9: nothing was cleaned up
  REQUIRE(f.report.committed == 3);
  REQUIRE(f.report.reserved_freed == 4);
  REQUIRE(f.report.slabs_freed == 2);
  const PoolStats s = f.service->stats();
  REQUIRE(s.pages_committed == 3);
  REQUIRE(s.pages_reserved == 0);
  REQUIRE(s.slabs_free == 16 - 2);
  REQUIRE(f.get(1, done).hits == 3);
  REQUIRE(f.get(1, pending).hits == 0);
  // The parent links came back: the chain's leaf is the first victim.
  const uint32_t leaf = f.service->index().find(1, done[2]);
  REQUIRE(f.service->index().page(f.service->index().find(1, done[1])).children == 1);
  REQUIRE(f.service->index().page(leaf).children == 0);
}

TEST_CASE("a slab allocated but never given a record is freed by recovery") {
  ServiceFixture f(8);
  REQUIRE(f.allocator->allocate().is_ok());  // a kill right after the allocator's word
  f.reopen();
  REQUIRE(f.report.slabs_freed == 1);
  REQUIRE(f.service->stats().slabs_free == 8);
}

TEST_CASE("recovery drops a committed record of a stale slab generation") {
  ServiceFixture f(8);
  const auto keys = page_keys(1, 1);
  f.put(1, keys);
  const uint32_t slab = f.service->index().find(1, keys[0]);
  auto* rec = reinterpret_cast<PageRecord*>(f.allocator->page_record(slab, 0));
  rec->generation -= 1;
  rec->record_checksum = record_checksum(*rec);
  f.reopen();
  REQUIRE(f.report.invalid_freed == 1);
  REQUIRE(f.report.committed == 0);
  REQUIRE(f.service->stats().slabs_free == 8);
}

TEST_CASE("recovery with verify_data drops a committed page whose data no longer matches its checksum") {
  PoolOptions o;
  o.verify_data = true;
  ServiceFixture f(8, 1, o);
  const auto keys = page_keys(1, 2);
  auto lease = f.service->reserve(1, 1, {}, keys.data(), 2, f.out.data(), f.now);
  const SlabGeometry& g = f.allocator->geometry();
  const Layout layout = f.region->layout();
  std::vector<uint64_t> sums;
  for (int i = 0; i < 2; ++i) {
    uint8_t* base = f.region->base() + f.out[i].slab_offset();
    std::memset(base + g.page_run_offset(0, 0, 0), 0x40 + i, 64);
    sums.push_back(page_checksum(g, layout, base, f.out[i].position()));
  }
  REQUIRE(f.service->commit(1, *lease, sums.data(), 2, f.now).is_ok());
  const uint32_t second = f.service->index().find(1, keys[1]);
  f.region->base()[g.slab_offset(second) + 5] ^= 0xff;  // damage page 1's data
  f.reopen();
  REQUIRE(f.report.committed == 1);
  REQUIRE(f.report.invalid_freed == 1);
  REQUIRE(f.get(1, keys).hits == 1);
}
