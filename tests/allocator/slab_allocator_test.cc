// The slab allocator: geometry, allocate until full, free, reopen, and one allocator per region.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <cstring>
#include <set>

#include "pool_region.h"
#include "slab_allocator.h"
#include "temp_region.h"

using namespace cxlkv;
using namespace cxlkv::cxl;

namespace {

struct Fixture {
  RegionSpec spec;
  testing::RegionCleanup cleanup;
  std::unique_ptr<Region> region;
  std::unique_ptr<Region> metadata;

  explicit Fixture(uint64_t size = 64ull << 20, const char* layout = "deepseek-v3.2", uint32_t slab_pages = 1,
                   Backend backend = Backend::kShm)
      : spec(testing::temp_spec(backend, size)), cleanup{spec} {
    auto r = Region::create(spec, *Layout::parse(layout), slab_pages);
    REQUIRE(r.is_ok());
    region = std::move(*r);
    auto m = testing::format_pool(*region);
    REQUIRE(m.is_ok());
    metadata = std::move(*m);
  }
};

}  // namespace

TEST_CASE("geometry: slabs are layer-major runs of E pages and fit in the region") {
  const uint32_t e = GENERATE(1u, 8u);
  Fixture f(256ull << 20, "deepseek-v3.2", e);
  auto g = SlabAllocator::read_geometry(*f.region);
  REQUIRE(g.is_ok());
  CHECK(g->slab_pages == e);
  // latent: 61 layers x E x 64 tokens x 656 B, then the indexer 64 B-aligned.
  CHECK(g->stream_offset[0] == 0);
  CHECK(g->stream_offset[1] == (61ull * e * 64 * 656 + 63) / 64 * 64);
  CHECK(g->slab_bytes % 4096 == 0);
  CHECK(g->slab_bytes >= g->stream_offset[1] + 61ull * e * 64 * 132);
  CHECK(g->slab_area_offset % (2u << 20) == 0);
  CHECK(g->slab_area_offset + uint64_t{g->slab_count} * g->slab_bytes <= f.region->size());
  CHECK(g->slab_count > 0);
  // Entry (layer l, position i, token t) of E consecutive pages: one layer's run is contiguous.
  CHECK(g->entry_offset(0, 0, 0, 1) - g->entry_offset(0, 0, 0, 0) == 656);
  CHECK(g->entry_offset(0, 0, e - 1, 63) + 656 == g->entry_offset(0, 1, 0, 0));
  CHECK(g->entry_offset(1, 2, 0, 5) == g->stream_offset[1] + ((2ull * e) * 64 + 5) * 132);
}

TEST_CASE("allocate until full gives each slab once, then a clear exhaustion error") {
  Fixture f;
  auto a = SlabAllocator::open(*f.region, *f.metadata);
  REQUIRE(a.is_ok());
  const SlabStats start = (*a)->stats();
  REQUIRE(start.total > 4);
  CHECK(start.free == start.total);
  std::set<uint32_t> got;
  for (uint32_t i = 0; i < start.total; ++i) {
    auto s = (*a)->allocate();
    REQUIRE(s.is_ok());
    CHECK(s.value() < start.total);
    CHECK(got.insert(*s).second);
    CHECK((*a)->in_use(*s));
    CHECK((*a)->generation(*s) == 1);
  }
  auto none = (*a)->allocate();
  REQUIRE_FALSE(none.is_ok());
  CHECK(none.status().code() == Code::kExhausted);
  CHECK(none.status().message().find(std::to_string(start.total)) != std::string::npos);
  const SlabStats full = (*a)->stats();
  CHECK(full.free == 0);
  CHECK(full.in_use == full.total);
  // Nothing was corrupted by the failed allocation: free one, get that one back.
  REQUIRE((*a)->free(7).is_ok());
  auto again = (*a)->allocate();
  REQUIRE(again.is_ok());
  CHECK(*again == 7);
  CHECK((*a)->generation(7) == 2);
}

TEST_CASE("freeing a free slab or one past the end is an error that changes nothing") {
  Fixture f;
  auto a = std::move(*SlabAllocator::open(*f.region, *f.metadata));
  auto s = *a->allocate();
  REQUIRE(a->free(s).is_ok());
  const SlabStats before = a->stats();
  auto twice = a->free(s);
  CHECK(twice.code() == Code::kInvalidArgument);
  CHECK(twice.message().find("already free") != std::string::npos);
  CHECK(a->free(before.total).code() == Code::kInvalidArgument);
  const SlabStats after = a->stats();
  CHECK(after.free == before.free);
  CHECK(after.in_use == before.in_use);
}

TEST_CASE("allocation state lives in the region and survives reopening") {
  const Backend backend = GENERATE(Backend::kShm, Backend::kFile);
  Fixture f(64ull << 20, "deepseek-v3.2", 1, backend);
  std::set<uint32_t> held;
  {
    auto a = std::move(*SlabAllocator::open(*f.region, *f.metadata));
    for (int i = 0; i < 5; ++i) held.insert(*a->allocate());
    REQUIRE(a->free(*held.begin()).is_ok());
    held.erase(held.begin());
  }
  f.metadata.reset();
  f.region.reset();
  auto region = std::move(*Region::open(f.spec));
  auto metadata = std::move(*testing::open_pool_metadata(*region));
  auto a = SlabAllocator::open(*region, *metadata);
  REQUIRE(a.is_ok());
  const SlabStats s = (*a)->stats();
  CHECK(s.in_use == held.size());
  for (uint32_t slab : held) CHECK((*a)->in_use(slab));
  CHECK(s.free + s.in_use == s.total);
}

TEST_CASE("only one allocator holds a region at a time") {
  Fixture f;
  auto first = SlabAllocator::open(*f.region, *f.metadata);
  REQUIRE(first.is_ok());
  auto other_mapping = std::move(*Region::open(f.spec));
  auto other_metadata = std::move(*testing::open_pool_metadata(*other_mapping));
  auto second = SlabAllocator::open(*other_mapping, *other_metadata);
  REQUIRE_FALSE(second.is_ok());
  CHECK(second.status().code() == Code::kBusy);
  first->reset();
  CHECK(SlabAllocator::open(*other_mapping, *other_metadata).is_ok());
}

TEST_CASE("an allocator area that was never formatted, or damaged, is refused") {
  auto spec = testing::temp_spec(Backend::kShm, 64ull << 20);
  testing::RegionCleanup cleanup{spec};
  auto region = std::move(*Region::create(spec, *Layout::parse("deepseek-v3.2"), 1));
  auto metadata = std::move(*Region::create_metadata(testing::metadata_spec_of(spec), *region, 1u << 20));
  auto unformatted = SlabAllocator::open(*region, *metadata);
  REQUIRE_FALSE(unformatted.is_ok());
  CHECK(unformatted.status().message().find("not formatted") != std::string::npos);
  REQUIRE(SlabAllocator::format(*region, *metadata).is_ok());
  auto* h = reinterpret_cast<AllocatorHeader*>(metadata->base() + metadata->data_offset());
  h->geometry.slab_count += 1;
  auto damaged = SlabAllocator::open(*region, *metadata);
  REQUIRE_FALSE(damaged.is_ok());
  CHECK(damaged.status().message().find("checksum") != std::string::npos);
}

TEST_CASE("a region too small for one slab cannot be formatted") {
  auto spec = testing::temp_spec(Backend::kShm, 2ull << 20);
  testing::RegionCleanup cleanup{spec};
  auto region = std::move(*Region::create(spec, *Layout::parse("deepseek-v3.2"), 1));
  auto metadata = std::move(*Region::create_metadata(testing::metadata_spec_of(spec), *region, 1u << 20));
  auto st = SlabAllocator::format(*region, *metadata);
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("no slab") != std::string::npos);
}

TEST_CASE("the allocator's state and the page records lie in the metadata region, out of the data region") {
  Fixture f;
  auto g = *SlabAllocator::read_geometry(*f.region);
  // The data region ends its tables before the slabs; the records lie past its published words only
  // in the metadata region, which holds no slab.
  CHECK(g.records_offset >= g.state_offset + 8ull * g.slab_count);
  CHECK(g.metadata_bytes() <= f.metadata->size());
  CHECK(f.metadata->size() < g.slab_area_offset + g.slab_bytes);
  auto a = std::move(*SlabAllocator::open(*f.region, *f.metadata));
  CHECK(a->page_record(3, 0) == f.metadata->base() + g.record_offset(3));
  std::set<uint32_t> held;
  for (int i = 0; i < 5; ++i) held.insert(*a->allocate());
  // The published copy follows every store of the truth.
  for (uint32_t slab : held)
    CHECK(reinterpret_cast<const uint64_t*>(f.region->base() + g.state_offset)[slab] ==
          reinterpret_cast<const uint64_t*>(f.metadata->base() + g.state_offset)[slab]);
}

TEST_CASE("stores into the data region's published header and slab words change nothing the allocator trusts") {
  Fixture f;
  const SlabGeometry g = *SlabAllocator::read_geometry(*f.region);
  std::set<uint32_t> held;
  {
    auto a = std::move(*SlabAllocator::open(*f.region, *f.metadata));
    for (int i = 0; i < 5; ++i) held.insert(*a->allocate());
  }
  // What a writer client can reach: everything of its mapping before the slabs but the region header.
  std::memset(f.region->base() + f.region->data_offset(), 0x5B, g.slab_area_offset - f.region->data_offset());
  CHECK_FALSE(SlabAllocator::read_geometry(*f.region).is_ok());
  auto a = SlabAllocator::open(*f.region, *f.metadata);
  REQUIRE(a.is_ok());
  CHECK((*a)->stats().in_use == held.size());
  for (uint32_t slab : held) CHECK((*a)->in_use(slab));
  // Rewritten from the metadata region: clients read the geometry and the words again.
  auto again = SlabAllocator::read_geometry(*f.region);
  REQUIRE(again.is_ok());
  CHECK(std::memcmp(&*again, &g, sizeof g) == 0);
  CHECK(std::memcmp(f.region->base() + g.state_offset, f.metadata->base() + g.state_offset, 8ull * g.slab_count) == 0);
}

TEST_CASE("a metadata region is opened against its own data region only") {
  Fixture one, two;
  auto crossed = SlabAllocator::open(*one.region, *two.metadata);
  REQUIRE_FALSE(crossed.is_ok());
  CHECK(crossed.status().code() == Code::kMismatch);
  auto by_spec = Region::open_metadata(testing::metadata_spec_of(two.spec), *one.region);
  REQUIRE_FALSE(by_spec.is_ok());
  CHECK(by_spec.status().message().find("another data region") != std::string::npos);
  // A data region is not opened as metadata, nor a metadata region as data.
  CHECK(Region::open_metadata(one.spec, *one.region).status().code() == Code::kMismatch);
  CHECK(Region::open(testing::metadata_spec_of(one.spec)).status().code() == Code::kMismatch);
}
