// Top-k gather and bulk fetch against a straightforward reference, on regions set up with the
// allocator directly (no daemon): random indices with -1, padded strides, E = 1 and E = 8.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "temp_region.h"
#include "direct_pool.h"

using namespace cxlkv;
using cxlkv::testing::DirectPool;

namespace {

// Fills every entry of the leased pages with bytes that depend on (stream, layer, page, token).
void fill_region(DirectPool& pool, const std::vector<Placement>& pages) {
  const SlabGeometry& g = pool.geometry();
  std::mt19937_64 rng(7);
  for (int s = 0; s < pool.layout().stream_count(); ++s)
    for (uint32_t l = 0; l < g.layers; ++l)
      for (const Placement& p : pages)
        for (uint32_t t = 0; t < g.page_tokens; ++t) {
          uint8_t* e = pool.base() + p.slab_offset + g.entry_offset(s, l, p.position, t);
          for (uint32_t b = 0; b < g.stride[s]; ++b) e[b] = uint8_t(rng());
        }
}

// The reference: one entry at a time from the allocator's own addressing.
std::vector<uint8_t> reference_gather(DirectPool& pool, const std::vector<Placement>& pages, int s, uint32_t l,
                                      const std::vector<int32_t>& idx, uint8_t fill) {
  const SlabGeometry& g = pool.geometry();
  const uint32_t bytes = pool.layout().stream(s).entry_bytes;
  std::vector<uint8_t> out(idx.size() * bytes, fill);
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0) continue;
    const Placement& p = pages[idx[i] / g.page_tokens];
    std::memcpy(&out[i * bytes], pool.base() + p.slab_offset + g.entry_offset(s, l, p.position, idx[i] % g.page_tokens), bytes);
  }
  return out;
}

struct Setup {
  cxl::RegionSpec spec;
  std::unique_ptr<DirectPool> pool;
  std::vector<Placement> pages;
  Setup(const std::string& layout, uint32_t e, uint32_t n_pages, uint64_t bytes = 256ull << 20)
      : spec(testing::temp_spec(cxl::Backend::kShm, bytes)) {
    auto p = DirectPool::create(spec, layout, e);
    REQUIRE(p.is_ok());
    pool = std::move(*p);
    auto placed = pool->place(n_pages);
    REQUIRE(placed.is_ok());
    pages = std::move(*placed);
    fill_region(*pool, pages);
  }
};

const char* kPadded = "custom:name=padded,layers=3,page_tokens=64,stream=latent/656/704/sparse,stream=indexer/132/192/bulk";
const char* kPacked = "custom:name=packed,layers=3,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";

}  // namespace

TEST_CASE("gather_topk copies exactly the reference's bytes and leaves -1 rows untouched") {
  const uint32_t e = GENERATE(1u, 8u);
  const char* layout = GENERATE(kPadded, kPacked);
  CAPTURE(e, layout);
  Setup f(layout, e, 37);  // 37 pages: E = 8 leaves the last slab part-filled
  const ReadLease lease = f.pool->read_lease(f.pages);
  REQUIRE(lease.prefix_tokens() == 37 * 64);
  std::mt19937 rng(11);
  for (int s = 0; s < 2; ++s)
    for (uint32_t l = 0; l < 3; ++l) {
      const int k = 2048;
      std::vector<int32_t> idx(k);
      std::uniform_int_distribution<int32_t> pick(-1, int32_t(lease.prefix_tokens()) - 1);
      for (auto& i : idx) i = pick(rng);
      idx[0] = -1;
      idx[k - 1] = int32_t(lease.prefix_tokens()) - 1;
      const uint32_t bytes = f.pool->layout().stream(s).entry_bytes;
      std::vector<uint8_t> dst(size_t(k) * bytes, 0xEE);
      REQUIRE(lease.gather_topk(s, l, idx.data(), k, dst.data()).is_ok());
      CHECK(dst == reference_gather(*f.pool, f.pages, s, l, idx, 0xEE));
    }
}

TEST_CASE("gather_topk of the deepseek-v3.2 latent works on 656-byte entries at stride 656") {
  Setup f("deepseek-v3.2", 1, 4);
  const ReadLease lease = f.pool->read_lease(f.pages);
  std::vector<int32_t> idx = {0, 63, 64, 255, -1, 128, 1};
  std::vector<uint8_t> dst(idx.size() * 656, 0);
  REQUIRE(gather_topk(lease, 0, 60, idx.data(), int(idx.size()), dst.data()).is_ok());
  CHECK(dst == reference_gather(*f.pool, f.pages, 0, 60, idx, 0));
}

TEST_CASE("an index past the leased prefix or below -1 is an error and dst is untouched") {
  Setup f(kPadded, 8, 3);
  const ReadLease lease = f.pool->read_lease(f.pages);
  const int32_t bad = GENERATE(3 * 64, 3 * 64 + 1000, -2, INT32_MIN, INT32_MAX);
  CAPTURE(bad);
  std::vector<int32_t> idx = {0, 5, 100, bad, 7};
  std::vector<uint8_t> dst(idx.size() * 656, 0x5A);
  const Status st = lease.gather_topk(0, 1, idx.data(), int(idx.size()), dst.data());
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("indices[3]") != std::string::npos);
  CHECK(st.message().find(std::to_string(bad)) != std::string::npos);
  CHECK(dst == std::vector<uint8_t>(idx.size() * 656, 0x5A));
}

TEST_CASE("gather_topk rejects a bad stream, layer or k and an empty lease has no valid index") {
  Setup f(kPadded, 1, 2);
  const ReadLease lease = f.pool->read_lease(f.pages);
  int32_t idx[1] = {0};
  uint8_t dst[704];
  CHECK(lease.gather_topk(2, 0, idx, 1, dst).code() == Code::kInvalidArgument);
  CHECK(lease.gather_topk(-1, 0, idx, 1, dst).code() == Code::kInvalidArgument);
  CHECK(lease.gather_topk(0, 3, idx, 1, dst).code() == Code::kInvalidArgument);
  CHECK(lease.gather_topk(0, 0, idx, -1, dst).code() == Code::kInvalidArgument);
  CHECK(lease.gather_topk(0, 0, idx, 0, dst).is_ok());
  const ReadLease empty = f.pool->read_lease({});
  CHECK(empty.gather_topk(0, 0, idx, 1, dst).code() == Code::kInvalidArgument);
}

TEST_CASE("fetch_pages returns the packed stream of a layer for a page range") {
  const uint32_t e = GENERATE(1u, 8u);
  const char* layout = GENERATE(kPadded, kPacked);
  CAPTURE(e, layout);
  Setup f(layout, e, 20);
  const ReadLease lease = f.pool->read_lease(f.pages);
  for (int s = 0; s < 2; ++s) {
    const uint32_t p0 = 3, p1 = 19;
    std::vector<int32_t> all;
    for (int32_t t = p0 * 64; t < int32_t(p1 * 64); ++t) all.push_back(t);
    const uint32_t bytes = f.pool->layout().stream(s).entry_bytes;
    std::vector<uint8_t> dst(all.size() * bytes);
    REQUIRE(lease.fetch_pages(s, 2, p0, p1, dst.data()).is_ok());
    CHECK(dst == reference_gather(*f.pool, f.pages, s, 2, all, 0));
  }
  std::vector<uint8_t> sink(64 * 704);
  CHECK(lease.fetch_pages(0, 0, 19, 21, sink.data()).code() == Code::kInvalidArgument);
  CHECK(lease.fetch_pages(0, 0, 5, 4, sink.data()).code() == Code::kInvalidArgument);
}
