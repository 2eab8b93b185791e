// PrefixIndex and PoolService::lookup: longest prefix, namespaces, leaves-first LRU order.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>

#include "placement.h"
#include "prefix_index.h"
#include "service_fixture.h"

using namespace cxlkv;
using namespace cxlkv::pool;
using namespace cxlkv::testing;

namespace {

// Adds and commits keys[i] at slot first + i, each the parent of the next.
void add_chain(PrefixIndex& index, uint64_t ns, const std::vector<PageKey>& keys, uint32_t first) {
  for (uint32_t i = 0; i < keys.size(); ++i) {
    index.add_reserved(first + i, ns, keys[i], i == 0 ? PageKey{} : keys[i - 1], 1);
    index.set_committed(first + i);
  }
}

}  // namespace

TEST_CASE("a key is found only in the namespace it was added to") {
  PrefixIndex index(64);
  const PageKey k = page_key(1, 0);
  index.add_reserved(3, 100, k, {}, 7);
  REQUIRE(index.find(100, k) == 3);
  REQUIRE(index.find(200, k) == kNoSlot);
  REQUIRE(index.find(100, page_key(1, 1)) == kNoSlot);
  REQUIRE(index.page(3).state == PageState::kReserved);
  REQUIRE(index.reserved() == 1);
}

TEST_CASE("erasing keys keeps every other key findable") {
  PrefixIndex index(512);
  for (uint32_t s = 0; s < 512; ++s) index.add_reserved(s, s % 3, page_key(s, s), {}, 1);
  for (uint32_t s = 0; s < 512; s += 2) index.erase(s);
  for (uint32_t s = 0; s < 512; ++s) REQUIRE(index.find(s % 3, page_key(s, s)) == (s % 2 ? s : kNoSlot));
  REQUIRE(index.reserved() == 256);
  // Invariant: committed + reserved == entries; re-adding fills the erased slots again.
  for (uint32_t s = 0; s < 512; s += 2) index.add_reserved(s, s % 3, page_key(s, s), {}, 1);
  for (uint32_t s = 0; s < 512; ++s) REQUIRE(index.find(s % 3, page_key(s, s)) == s);
}

TEST_CASE("eviction order takes leaves first, then the least recently used") {
  PrefixIndex index(16);
  add_chain(index, 1, page_keys(1, 3), 0);  // 0 <- 1 <- 2, oldest
  add_chain(index, 1, page_keys(2, 2), 3);  // 3 <- 4
  REQUIRE(index.page(0).children == 1);
  REQUIRE(index.page(2).children == 0);
  std::vector<uint32_t> order;
  for (uint32_t v; (v = index.lru_victim()) != kNoSlot;) {
    order.push_back(v);
    index.erase(v);
  }
  // The first chain's leaf goes before its root although the root is older.
  REQUIRE(order == std::vector<uint32_t>{2, 1, 0, 4, 3});
  REQUIRE(index.committed() == 0);
}

TEST_CASE("a pinned page is never the eviction victim until its last unpin") {
  PrefixIndex index(8);
  add_chain(index, 1, {page_key(1, 0)}, 0);
  add_chain(index, 1, {page_key(2, 0)}, 1);
  index.pin(0);
  index.pin(0);
  REQUIRE(index.lru_victim() == 1);
  index.erase(1);
  REQUIRE(index.lru_victim() == kNoSlot);
  index.unpin(0);
  REQUIRE(index.lru_victim() == kNoSlot);
  index.unpin(0);
  REQUIRE(index.lru_victim() == 0);
}

TEST_CASE("lookup returns the longest committed prefix and stops at a reserved or missing page") {
  ServiceFixture f;
  const auto keys = page_keys(1, 6);
  REQUIRE(f.put(9, {keys.begin(), keys.begin() + 3}) == 3);
  // Page 3 reserved (not committed) under another lease.
  auto w = f.service->reserve(2, 9, keys[2], &keys[3], 1, f.out.data(), f.now);
  REQUIRE(w.is_ok());
  auto r = f.get(9, keys);
  REQUIRE(r.hits == 3);
  REQUIRE(r.lease != 0);
  REQUIRE(f.get(10, keys).hits == 0);  // another namespace
  REQUIRE(f.get(10, keys).lease == 0);
  const PoolStats s = f.service->stats();
  REQUIRE(s.lookup_hits == 3);
  REQUIRE(s.lookup_misses == 3);
  REQUIRE(s.pages_reserved == 1);
}

TEST_CASE("lookup placements name the slab, position and generation of each page") {
  ServiceFixture f(8, 4);
  const auto keys = page_keys(3, 6);
  REQUIRE(f.put(1, keys) == 6);
  REQUIRE(f.get(1, keys).hits == 6);
  for (uint32_t i = 0; i < 6; ++i) {
    const wire::Placement& p = f.out[i];
    REQUIRE(p.position() == i % 4);  // consecutive pages share a slab
    REQUIRE(p.slab_offset() == f.allocator->geometry().slab_offset(p.slab()));
    REQUIRE(p.generation() == f.allocator->generation(p.slab()));
    REQUIRE(p.generation() >= 1);
  }
  REQUIRE(f.out[0].slab() == f.out[3].slab());
  REQUIRE(f.out[3].slab() != f.out[4].slab());
}

TEST_CASE("lru_pages counts the committed, unpinned pages: all that eviction could free") {
  PrefixIndex index(8);
  add_chain(index, 1, {page_key(1, 0), page_key(1, 1)}, 0);
  REQUIRE(index.lru_pages() == 2);
  index.add_reserved(5, 1, page_key(9, 0), {}, 3);  // reserved: not evictable
  REQUIRE(index.lru_pages() == 2);
  index.pin(0);
  index.pin(0);
  REQUIRE(index.lru_pages() == 1);
  index.unpin(0);
  REQUIRE(index.lru_pages() == 1);
  index.unpin(0);
  REQUIRE(index.lru_pages() == 2);
  index.erase(1);
  REQUIRE(index.lru_pages() == 1);
  REQUIRE(index.lru_pages() <= index.committed());
}

TEST_CASE("in a cluster the index lists its committed prefix and chunk starts, through commits and erases") {
  constexpr uint32_t kChunk = 4;
  PrefixIndex index(4096, kChunk);
  PrefixIndex lone(64);  // no cluster: no list
  const auto keys = page_keys(7, 400);
  add_chain(index, 1, keys, 0);
  add_chain(lone, 1, page_keys(8, 10), 0);
  CHECK(lone.chunk_start_slots().empty());
  auto listed = [&] {
    std::vector<uint32_t> s(index.chunk_start_slots().begin(), index.chunk_start_slots().end());
    std::sort(s.begin(), s.end());
    return s;
  };
  auto expected = [&](const std::vector<bool>& present) {
    std::vector<uint32_t> s;
    for (uint32_t i = 0; i < keys.size(); ++i)
      if (present[i] && (i == 0 || cluster::starts_chunk(keys[i], kChunk))) s.push_back(i);
    return s;
  };
  std::vector<bool> present(keys.size(), true);
  REQUIRE(listed() == expected(present));
  CHECK(listed().size() > 60);  // about 400 / 4
  CHECK(listed().size() < 140);
  // A reserved page is not listed until committed; erased pages leave the list, others stay.
  index.add_reserved(1000, 1, page_key(9, 0), {}, 2);
  REQUIRE(listed() == expected(present));
  const uint64_t changes = index.committed_changes();
  for (uint32_t i = 0; i < keys.size(); i += 3) {
    index.erase(i);
    present[i] = false;
  }
  CHECK(index.committed_changes() > changes);
  REQUIRE(listed() == expected(present));
  index.set_committed(1000);  // a root: always a start
  auto with_root = expected(present);
  with_root.push_back(1000);
  CHECK(listed() == with_root);
  for (uint32_t i = 0; i < keys.size(); ++i) index.erase(i);
  index.erase(1000);
  CHECK(index.chunk_start_slots().empty());
}

TEST_CASE("in a cluster a run whose parent this node does not hold is listed by its first page") {
  constexpr uint32_t kChunk = 1u << 20;  // chunk starts so rare that none falls in these keys
  PrefixIndex index(64, kChunk);
  const auto keys = page_keys(3, 12);
  for (const PageKey& k : keys) REQUIRE(!cluster::starts_chunk(k, kChunk));
  // Pages 4..11 of a prefix whose first four are on another node: the run's first page is listed,
  // the pages after it (their parents committed here, before them) are not.
  std::vector<PageKey> run(keys.begin() + 4, keys.end());
  for (uint32_t i = 0; i < run.size(); ++i) index.add_reserved(i, 1, run[i], keys[3 + i], 7);
  for (uint32_t i = 0; i < run.size(); ++i) index.set_committed(i);
  REQUIRE(index.chunk_start_slots().size() == 1);
  CHECK(index.page(index.chunk_start_slots()[0]).key == run[0]);
  // Its parent erased later, a child stays unlisted (the list names where runs began); a page
  // whose parent is only reserved here is listed (reserved pages are not a prefix yet).
  index.erase(3);
  CHECK(index.chunk_start_slots().size() == 1);
  index.add_reserved(20, 1, keys[0], {}, 8);
  index.add_reserved(21, 1, keys[1], keys[0], 8);
  index.set_committed(21);
  CHECK(index.chunk_start_slots().size() == 2);
}
