// copy_committed_pages: a partition's committed pages copied into another (what removing a
// partition online does): every page with its namespace, parent, bytes and checksum, prompt trees
// and runs longer than a reserve may carry included; pages already there kept; a target too small
// refused before anything is copied; the source never changed.
#include <catch2/catch_test_macros.hpp>

#include <cstring>

#include "page_copy.h"
#include "page_record.h"
#include "service_fixture.h"

using namespace cxlkv;
using namespace cxlkv::pool;
using namespace cxlkv::testing;

namespace {

// The byte every entry of (key, stream, layer) holds in these tests.
uint8_t byte_of(const PageKey& key, int stream, uint32_t layer) {
  return uint8_t(key.bytes[0] * 7 + key.bytes[8] * 13 + stream * 31 + layer * 3 + 1);
}

// Where page `p` of a placement starts in (stream, layer) of `f`'s region.
uint8_t* run_of(ServiceFixture& f, const wire::Placement& p, int stream, uint32_t layer) {
  return f.region->base() + p.slab_offset() + f.service->geometry().page_run_offset(stream, layer, p.position());
}

uint64_t run_bytes(ServiceFixture& f, int stream) {
  const SlabGeometry& g = f.service->geometry();
  return uint64_t{g.page_tokens} * g.stride[stream];
}

// Reserves keys (chained from parent) in `ns`, fills every run with byte_of, commits with the
// checksum 1000 + page index.
void write(ServiceFixture& f, uint64_t ns, const std::vector<PageKey>& keys, const PageKey& parent = {}) {
  auto lease = f.service->reserve(1, ns, parent, keys.data(), uint32_t(keys.size()), f.out.data(), f.now);
  REQUIRE(lease.is_ok());
  std::vector<uint64_t> sums;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int s = 0; s < 2; ++s)
      for (uint32_t l = 0; l < f.service->geometry().layers; ++l)
        std::memset(run_of(f, f.out[i], s, l), byte_of(keys[i], s, l), run_bytes(f, s));
    sums.push_back(1000 + i);
  }
  REQUIRE(f.service->commit(1, *lease, sums.data(), uint32_t(sums.size()), f.now).is_ok());
}

// Looks keys up in `f` (a chain from the root): each page found, with its bytes and checksum.
void check_copied(ServiceFixture& f, uint64_t ns, const std::vector<PageKey>& keys) {
  auto found = f.service->lookup(1, ns, keys.data(), uint32_t(keys.size()), f.out.data(), f.now);
  REQUIRE(found.is_ok());
  REQUIRE(found->hits == keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    for (int s = 0; s < 2; ++s)
      for (uint32_t l = 0; l < f.service->geometry().layers; ++l) {
        const uint8_t* run = run_of(f, f.out[i], s, l);
        const uint8_t want = byte_of(keys[i], s, l);
        for (uint64_t b = 0; b < run_bytes(f, s); ++b)
          if (run[b] != want) FAIL("page " << i << " stream " << s << " layer " << l << " byte " << b << " differs");
      }
  REQUIRE(f.service->release(1, found->lease).is_ok());
}

std::vector<PageKey> concat(std::vector<PageKey> a, const std::vector<PageKey>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("every committed page goes over with its parent, bytes and checksum; pages already there stay; the source is unchanged") {
  ServiceFixture from(64, 4);
  PoolOptions short_runs;
  short_runs.max_keys = 4;  // the target's reserves carry at most 4 keys: a longer chain goes over in parts
  ServiceFixture to(64, 4, short_runs);
  const auto chain = page_keys(1, 9);
  const auto branch = page_keys(2, 3);  // under page 2 of the chain: a prompt tree
  const auto other_ns = page_keys(3, 2);
  write(from, 7, chain);
  write(from, 7, branch, chain[2]);
  write(from, 8, other_ns);
  const PoolStats before = from.service->stats();
  REQUIRE(before.pages_committed == 14);
  write(to, 7, {chain[0], chain[1]});  // already there: kept, not copied again

  auto r = copy_committed_pages(*from.service, *to.service, to.now);
  REQUIRE(r.is_ok());
  CHECK(r->pages_copied == 12);
  CHECK(r->pages_already_there == 2);
  CHECK(r->bytes_copied == 12 * from.service->geometry().layers * (run_bytes(from, 0) + run_bytes(from, 1)));
  CHECK(to.service->stats().pages_committed == 14);
  check_copied(to, 7, chain);
  check_copied(to, 7, concat({chain[0], chain[1], chain[2]}, branch));  // the branch hangs off its parent there too
  check_copied(to, 8, other_ns);
  // The checksums travel with the pages (recovery checks them against the bytes with --verify-data).
  auto found = to.service->lookup(1, 8, other_ns.data(), 2, to.out.data(), to.now);
  REQUIRE(found.is_ok());
  const SlabGeometry& g = to.service->geometry();
  for (uint32_t i = 0; i < 2; ++i) {
    const uint64_t slot = g.page_slot(to.out[i].slab(), to.out[i].position());
    const auto* record = reinterpret_cast<const PageRecord*>(to.metadata->base() + g.record_offset(slot));
    CHECK(record->data_checksum == 1000 + i);
  }
  const PoolStats after = from.service->stats();
  CHECK(after.pages_committed == before.pages_committed);
  CHECK(after.slabs_free == before.slabs_free);
  check_copied(from, 7, chain);
  // The copies survive a restart of the target: its records are committed ones.
  to.reopen();
  CHECK(to.report.committed == 14);
  check_copied(to, 7, concat({chain[0], chain[1], chain[2]}, branch));
}

TEST_CASE("a target without the slabs is refused before anything is copied or evicted") {
  ServiceFixture from(32, 1);
  ServiceFixture to(4, 1);
  write(from, 7, page_keys(1, 6));
  write(to, 9, page_keys(5, 2));  // the target's own pages: a copy must not evict them
  auto r = copy_committed_pages(*from.service, *to.service, to.now);
  REQUIRE(r.status().code() == Code::kExhausted);
  CHECK(r.status().message().find("nothing was copied") != std::string::npos);
  CHECK(to.service->stats().pages_committed == 2);
  CHECK(to.service->stats().evictions == 0);
  CHECK(from.service->stats().pages_committed == 6);
}

TEST_CASE("partitions of another E or layout are refused") {
  ServiceFixture from(8, 1);
  ServiceFixture to(8, 4);
  write(from, 7, page_keys(1, 2));
  CHECK(copy_committed_pages(*from.service, *to.service, to.now).status().code() == Code::kMismatch);
}

TEST_CASE("copied in steps: a page let go of before its turn is skipped and counted, the rest go over") {
  ServiceFixture from(32, 1);
  ServiceFixture to(32, 1);
  const auto first = page_keys(1, 3), second = page_keys(2, 3);
  write(from, 7, first);
  write(from, 7, second);
  auto copy = PageCopy::start(*from.service, *to.service);
  REQUIRE(copy.is_ok());
  const uint64_t page = from.service->geometry().layers * (run_bytes(from, 0) + run_bytes(from, 1));
  REQUIRE((*copy)->step(1, to.now).is_ok());  // a budget of one byte: one page (a slab's) goes over
  CHECK((*copy)->report().pages_copied == 1);
  REQUIRE((*copy)->step(2 * page, to.now).is_ok());  // two pages' worth: the rest of that run
  CHECK((*copy)->report().pages_copied == 3);
  CHECK_FALSE((*copy)->done());
  // The other run loses its last page meanwhile (a tenant's remove, or eviction).
  const bool first_went = to.service->lookup(1, 7, first.data(), 3, to.out.data(), to.now)->hits == 3;
  const auto& left = first_went ? second : first;
  REQUIRE(from.service->remove(7, &left[2], 1) == 1);
  REQUIRE((*copy)->step(~uint64_t{0}, to.now).is_ok());
  CHECK((*copy)->done());
  CHECK((*copy)->report().pages_copied == 5);
  CHECK((*copy)->report().pages_gone == 1);
  CHECK(to.service->lookup(1, 7, left.data(), 3, to.out.data(), to.now)->hits == 2);
}
