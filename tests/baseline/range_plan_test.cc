// Range planning, coalescing and batching of the baseline (baseline/range_plan.h): what the RDMA
// path posts as READ work requests and the TCP path sends as range lists, checked without a device.
#include <catch2/catch_test_macros.hpp>

#include <vector>

#include "range_plan.h"

using namespace cxlkv;
using namespace cxlkv::baseline;

namespace {

// A view of slabs of E pages, 3 layers, latent 656 B (stride `latent_stride`) + indexer 132 B.
PoolView view_of(uint32_t e, uint32_t latent_stride = 656) {
  PoolView v;
  v.slab_pages = e;
  v.page_tokens = 64;
  v.page_shift = 6;
  v.layers = 3;
  v.stream_count = 2;
  v.streams[0] = {0, uint64_t{e} * 64 * latent_stride, latent_stride, 656};
  const uint64_t latent_bytes = (3 * uint64_t{e} * 64 * latent_stride + 63) / 64 * 64;
  v.streams[1] = {latent_bytes, uint64_t{e} * 64 * 132, 132, 132};
  v.slab_bytes = (latent_bytes + 3 * uint64_t{e} * 64 * 132 + 4095) / 4096 * 4096;
  return v;
}

std::vector<Placement> placements(const PoolView& v, uint32_t pages, uint64_t first_slab_offset = 1 << 20) {
  std::vector<Placement> p;
  for (uint32_t i = 0; i < pages; ++i)
    p.push_back({first_slab_offset + (i / v.slab_pages) * v.slab_bytes * 2, 1, i / v.slab_pages, uint16_t(i % v.slab_pages), 0});
  return p;
}

}  // namespace

TEST_CASE("with E = 1 the runs of one page, all layers and both streams, coalesce into one range") {
  const PoolView v = view_of(1);
  const LocalLayout local = LocalLayout::of(v);
  const auto pages = placements(v, 4);
  std::vector<Range> r;
  plan_page_runs(v, local, pages, 0, 4, 0b11, r);
  CHECK(r.size() == 4 * 2 * 3);
  const uint64_t before = total_bytes(r);
  CHECK(coalesce(r, 1u << 30) == 4);  // slabs are not adjacent (2 x slab_bytes apart)
  CHECK(total_bytes(r) == before);
  for (size_t p = 0; p < 4; ++p) {
    CHECK(r[p].remote == pages[p].slab_offset);
    CHECK(r[p].local == p * local.page_bytes);
  }
}

TEST_CASE("with E = 4 a layer's runs of consecutive pages are adjacent remotely but not locally, so they stay apart") {
  const PoolView v = view_of(4);
  const LocalLayout local = LocalLayout::of(v);
  const auto pages = placements(v, 4);
  std::vector<Range> r;
  plan_page_runs(v, local, pages, 0, 4, 0b01, r);
  REQUIRE(r.size() == 4 * 3);
  // Page 1 layer 0 follows page 0 layer 0 in the slab; locally page 0 layer 1 follows instead.
  CHECK(r[3].remote == r[0].remote + r[0].length);
  CHECK(r[1].local == r[0].local + r[0].length);
  CHECK(coalesce(r, 1u << 30) == 12);  // no neighbour follows on in both places: nothing merges
}

TEST_CASE("the indexer-only plan covers exactly pages x layers x 64 x 132 bytes") {
  const PoolView v = view_of(2);
  const LocalLayout local = LocalLayout::of(v);
  const auto pages = placements(v, 6);
  std::vector<Range> r;
  plan_page_runs(v, local, pages, 0, 6, 0b10, r);
  CHECK(total_bytes(r) == 6ull * 3 * 64 * 132);
  for (const Range& x : r) CHECK(x.remote >= pages[0].slab_offset + v.streams[1].offset);
}

TEST_CASE("entries of consecutive tokens coalesce when the stride equals the entry size, and never with padding") {
  const std::vector<int32_t> tokens = {5, 6, 7, 64, 65, 200};
  for (uint32_t stride : {656u, 704u}) {
    const PoolView v = view_of(1, stride);
    const auto pages = placements(v, 4);
    std::vector<Range> r;
    plan_entries(v, pages, 0, 2, tokens, 0, r);
    REQUIRE(r.size() == tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      CHECK(r[i].local == i * 656);
      CHECK(r[i].remote == remote_entry(v, pages, 0, 2, uint32_t(tokens[i])));
    }
    coalesce(r, 1u << 30);
    CHECK(r.size() == (stride == 656 ? 3u : 6u));  // {5,6,7} {64,65} {200}: 64 opens a new page (slab)
    CHECK(total_bytes(r) == tokens.size() * 656);
  }
}

TEST_CASE("coalesce stops at max_length and keeps the bytes") {
  std::vector<Range> r;
  for (uint32_t i = 0; i < 10; ++i) r.push_back({uint64_t{i} * 100, uint64_t{i} * 100, 100});
  CHECK(coalesce(r, 350) == 4);  // 300 + 300 + 300 + 100
  CHECK(r[0] == Range{0, 0, 300});
  CHECK(r[3] == Range{900, 900, 100});
}

TEST_CASE("batches hold at most max_ranges ranges and max_bytes bytes; a larger range gets its own batch") {
  std::vector<Range> r = {{0, 0, 10}, {100, 10, 10}, {200, 20, 500}, {900, 520, 10}, {1000, 530, 10}, {2000, 540, 10}};
  std::vector<Batch> b;
  split_batches(r, 2, 100, b);
  REQUIRE(b.size() == 4);
  CHECK(b[0] == Batch{0, 2, 20});
  CHECK(b[1] == Batch{2, 1, 500});
  CHECK(b[2] == Batch{3, 2, 20});
  CHECK(b[3] == Batch{5, 1, 10});
  split_batches({}, 2, 100, b);
  CHECK(b.empty());
}
