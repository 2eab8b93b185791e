// The write path without a daemon: write_entries places packed runs at the stream's stride with
// non-temporal stores, and the checksum it accumulates equals page_checksum read back.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <cstring>
#include <vector>

#include "cacheline.h"
#include "page_checksum.h"
#include "temp_region.h"
#include "direct_pool.h"
#include "synthetic.h"

using namespace cxlkv;
using cxlkv::testing::DirectPool;

namespace {

const char* kPadded = "custom:name=padded,layers=3,page_tokens=64,stream=latent/656/704/sparse,stream=indexer/132/192/bulk";

struct Setup {
  cxl::RegionSpec spec;
  std::unique_ptr<DirectPool> pool;
  std::vector<Placement> pages;
  Setup(const std::string& layout, uint32_t e, uint32_t n) : spec(testing::temp_spec(cxl::Backend::kShm, 256ull << 20)) {
    auto p = DirectPool::create(spec, layout, e);
    REQUIRE(p.is_ok());
    pool = std::move(*p);
    auto placed = pool->place(n);
    REQUIRE(placed.is_ok());
    pages = std::move(*placed);
  }
  // Writes every run of every page with synthetic data keyed by the page number.
  void write_all(WriteLease& lease) {
    std::vector<uint8_t> run;
    for (uint32_t p = 0; p < lease.pages(); ++p)
      for (int s = 0; s < pool->layout().stream_count(); ++s)
        for (uint32_t l = 0; l < pool->layout().layers(); ++l) {
          testing::fill_run(run, key_of(p), s, l, 64, pool->layout().stream(s).entry_bytes);
          REQUIRE(lease.write_entries(p, s, l, run.data(), 64).is_ok());
        }
  }
  static PageKey key_of(uint32_t page) {
    PageKey k;
    k.bytes[0] = uint8_t(page + 1);
    return k;
  }
};

}  // namespace

TEST_CASE("the checksum write_entries accumulates equals page_checksum read back from the slab") {
  const uint32_t e = GENERATE(1u, 8u);
  const std::string layout = GENERATE(std::string(kPadded), std::string("deepseek-v3.2"));
  CAPTURE(e, layout);
  Setup f(layout, e, 3);
  WriteLease lease = f.pool->write_lease(f.pages);
  f.write_all(lease);
  for (uint32_t p = 0; p < 3; ++p) {
    CHECK(lease.runs_written(p) == lease.runs_per_page());
    const Placement& pl = f.pages[p];
    CHECK(lease.checksum(p) == page_checksum(f.pool->geometry(), f.pool->layout(), f.pool->base() + pl.slab_offset, pl.position));
  }
}

TEST_CASE("write_entries stores each entry at its stride, leaves the padding alone, and uses non-temporal stores") {
  Setup f(kPadded, 8, 2);
  const SlabGeometry& g = f.pool->geometry();
  // Mark the padding so we can see it untouched.
  for (const Placement& p : f.pages)
    for (uint32_t l = 0; l < 3; ++l)
      for (uint32_t t = 0; t < 64; ++t) std::memset(f.pool->base() + p.slab_offset + g.entry_offset(0, l, p.position, t) + 656, 0xAB, 48);
  cxl::reset_primitive_counts();
  WriteLease lease = f.pool->write_lease(f.pages);
  f.write_all(lease);
  const auto counts = cxl::primitive_counts();
  CHECK(counts.nt_copy_bytes == 2 * 3 * 64 * (656 + 132));
  for (uint32_t page = 0; page < 2; ++page) {
    const Placement& p = f.pages[page];
    for (uint32_t t = 0; t < 64; t += 21) {
      const uint8_t* entry = f.pool->base() + p.slab_offset + g.entry_offset(0, 2, p.position, t);
      CHECK(testing::entry_matches(entry, 656, testing::entry_seed(Setup::key_of(page), 0, 2, t)));
      CHECK(entry[656] == 0xAB);
      CHECK(entry[703] == 0xAB);
    }
  }
}

TEST_CASE("writing a run twice, a partial run or past the lease is an error") {
  Setup f(kPadded, 1, 2);
  WriteLease lease = f.pool->write_lease(f.pages);
  std::vector<uint8_t> run(64 * 656, 1);
  REQUIRE(lease.write_entries(0, 0, 0, run.data(), 64).is_ok());
  CHECK(lease.write_entries(0, 0, 0, run.data(), 64).code() == Code::kAlreadyExists);
  CHECK(lease.write_entries(0, 0, 1, run.data(), 63).code() == Code::kInvalidArgument);
  CHECK(lease.write_entries(2, 0, 0, run.data(), 64).code() == Code::kInvalidArgument);
  CHECK(lease.write_entries(0, 2, 0, run.data(), 64).code() == Code::kInvalidArgument);
  CHECK(lease.write_entries(0, 0, 3, run.data(), 64).code() == Code::kInvalidArgument);
  CHECK(lease.write_entries(0, 0, 1, nullptr, 64).code() == Code::kInvalidArgument);
  CHECK(lease.runs_written(0) == 1);
  CHECK(lease.runs_written(1) == 0);
}

TEST_CASE("writes to pages flagged Cached or InFlight are no-ops that succeed") {
  Setup f(kPadded, 1, 3);
  auto pages = f.pages;
  pages[0].flags = kPlacementCached;
  pages[2].flags = kPlacementInFlight;
  const uint8_t* slab0 = f.pool->base() + pages[0].slab_offset;
  std::vector<uint8_t> before(slab0, slab0 + 4096);
  WriteLease lease = f.pool->write_lease(pages);
  CHECK_FALSE(lease.writable(0));
  CHECK(lease.writable(1));
  CHECK_FALSE(lease.writable(2));
  CHECK(lease.writable_pages() == 1);
  std::vector<uint8_t> run(64 * 656, 7);
  CHECK(lease.write_entries(0, 0, 0, run.data(), 64).is_ok());
  CHECK(lease.runs_written(0) == 0);
  CHECK(lease.checksum(0) == 0);
  CHECK(std::memcmp(before.data(), slab0, before.size()) == 0);
}
