// The CPU references of the GPU kernels (kernels/reference.h), which the GPU tests and the
// benchmark hold the kernels to: they must themselves read the right bytes.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "reference.h"

using namespace cxlkv::kernels;

namespace {

// A tiny pool: 4 pages of 64 tokens, 2 layers, E = 2, entries of 32 B at stride 48.
struct TinyPool {
  StreamShape shape{32, 48, 2ull * 64 * 48, 64, 6};
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> page_base;
  TinyPool() : bytes(1 << 20) {
    std::mt19937 rng(1);
    for (auto& b : bytes) b = uint8_t(rng());
    // Two slabs of 2 pages x 2 layers; slab 1 first in memory to prove page_base is honoured.
    const uint64_t slab_bytes = 2 * shape.layer_step;
    const uint64_t slab_offset[2] = {4096 + slab_bytes, 4096};
    for (uint32_t p = 0; p < 4; ++p) page_base.push_back(page_base_offset(slab_offset[p / 2], 0, p % 2, 64, 48));
  }
  const uint8_t* entry(uint32_t layer, int32_t idx) const {
    return bytes.data() + page_base[idx / 64] + layer * shape.layer_step + (idx % 64) * 48;
  }
};

}  // namespace

TEST_CASE("reference gather copies each selected entry of the layer, skips -1 and refuses indices past the prefix") {
  TinyPool pool;
  std::vector<int32_t> idx = {0, 63, 64, 255, -1, 130, 256, 100000, -7};
  std::vector<uint8_t> out(idx.size() * 32, 0xEE);
  GatherSegment seg{pool.page_base.data(), idx.data(), out.data(), 4, 1, uint32_t(idx.size()), 0};
  const uint64_t bad = reference_gather(pool.bytes.data(), pool.shape, &seg, 1);
  CHECK(bad == 3);  // 256 and 100000 are past 4 pages; -7 is not -1
  for (size_t i = 0; i < idx.size(); ++i) {
    CAPTURE(i, idx[i]);
    const bool valid = idx[i] >= 0 && idx[i] < 256;
    if (valid) CHECK(std::memcmp(out.data() + i * 32, pool.entry(1, idx[i]), 32) == 0);
    else CHECK(std::all_of(out.begin() + i * 32, out.begin() + (i + 1) * 32, [](uint8_t b) { return b == 0xEE; }));
  }
}

TEST_CASE("reference gather writes entry i to row rows[i] when a segment carries rows") {
  TinyPool pool;
  std::vector<int32_t> idx = {5, -1, 70, 200};
  std::vector<uint32_t> rows = {3, 0, 1, 2};
  std::vector<uint8_t> out(idx.size() * 32, 0xEE);
  GatherSegment seg{pool.page_base.data(), idx.data(), out.data(), 4, 0, uint32_t(idx.size()), 0, rows.data()};
  CHECK(reference_gather(pool.bytes.data(), pool.shape, &seg, 1) == 0);
  CHECK(std::memcmp(out.data() + 3 * 32, pool.entry(0, 5), 32) == 0);
  CHECK(std::all_of(out.begin(), out.begin() + 32, [](uint8_t b) { return b == 0xEE; }));  // row of the -1
  CHECK(std::memcmp(out.data() + 1 * 32, pool.entry(0, 70), 32) == 0);
  CHECK(std::memcmp(out.data() + 2 * 32, pool.entry(0, 200), 32) == 0);
}

TEST_CASE("reference gather of split rows puts each token's side bytes in at side_at") {
  TinyPool pool;
  StreamShape shape = pool.shape;
  shape.side_bytes = 8;
  shape.side_at = 16;  // row: entry [0,16) | side 8 B | entry [16,32)
  std::vector<uint8_t> side(256 * 8);
  for (size_t i = 0; i < side.size(); ++i) side[i] = uint8_t(i * 7 + 3);
  std::vector<int32_t> idx = {9, -1, 255, 300};
  std::vector<uint8_t> out(idx.size() * 40, 0xEE);
  GatherSegment seg{pool.page_base.data(), idx.data(), out.data(), 4, 1, uint32_t(idx.size()), 0, nullptr, side.data()};
  CHECK(reference_gather(pool.bytes.data(), shape, &seg, 1) == 1);  // 300 is past the prefix
  for (int i : {0, 2}) {
    CAPTURE(i);
    const uint8_t* row = out.data() + i * 40;
    CHECK(std::memcmp(row, pool.entry(1, idx[i]), 16) == 0);
    CHECK(std::memcmp(row + 16, side.data() + idx[i] * 8, 8) == 0);
    CHECK(std::memcmp(row + 24, pool.entry(1, idx[i]) + 16, 16) == 0);
  }
  for (int i : {1, 3}) CHECK(std::all_of(out.begin() + i * 40, out.begin() + (i + 1) * 40, [](uint8_t b) { return b == 0xEE; }));
}

TEST_CASE("reference run copy packs runs back to back") {
  TinyPool pool;
  const uint64_t src[2] = {4096, 100};
  const uint32_t len[2] = {48, 16};
  std::vector<uint8_t> out(64);
  reference_copy_runs(pool.bytes.data(), src, len, 2, out.data());
  CHECK(std::memcmp(out.data(), pool.bytes.data() + 4096, 48) == 0);
  CHECK(std::memcmp(out.data() + 48, pool.bytes.data() + 100, 16) == 0);
}

TEST_CASE("hot buffer step: repeated indices hit, new ones take least recently used rows, maps stay inverse") {
  TinyPool pool;
  HotBufferState st;
  st.reset(8, 256, 32);  // 8 rows, k = 4
  auto step = [&](std::vector<int32_t> idx, int32_t s) {
    GatherSegment seg{pool.page_base.data(), idx.data(), nullptr, 4, 0, uint32_t(idx.size()), 0};
    auto r = reference_hot_step(st, pool.bytes.data(), pool.shape, seg, s);
    // Every resolved row holds the entry of its index, and the maps are inverse.
    for (size_t i = 0; i < idx.size(); ++i) {
      if (idx[i] < 0) { CHECK(r.row_of[i] == -1); continue; }
      REQUIRE(r.row_of[i] >= 0);
      CHECK(std::memcmp(&st.rows[r.row_of[i] * 32], pool.entry(0, idx[i]), 32) == 0);
    }
    for (uint32_t row = 0; row < st.capacity; ++row)
      if (st.token_of[row] >= 0) CHECK(st.slot_of[st.token_of[row]] == int32_t(row));
    return r;
  };
  auto s0 = step({10, 20, 30, 40}, 0);
  CHECK(s0.misses == 4);
  CHECK(s0.hits == 0);
  CHECK(s0.row_of == std::vector<int32_t>{0, 1, 2, 3});  // empty rows first, by row number
  auto s1 = step({20, 50, -1, 10}, 1);
  CHECK(s1.hits == 2);
  CHECK(s1.misses == 1);
  CHECK(s1.row_of[1] == 4);  // the first never-used row
  // Four misses: the never-used rows 5, 6, 7 and the least recently used, row 2 (token 30,
  // step 0, ahead of row 3 by row number), taken in row order.
  auto s2 = step({60, 70, 80, 90}, 2);
  CHECK(s2.row_of == std::vector<int32_t>{2, 5, 6, 7});
  CHECK(st.slot_of[30] == -1);
  CHECK(st.token_of[2] == 60);
  CHECK(st.slot_of[40] == 3);   // step 0 too, but not needed
  CHECK(st.slot_of[10] >= 0);   // used at step 1: kept
  auto s3 = step({60, 70, 80, 90}, 3);
  CHECK(s3.hits == 4);
  CHECK(s3.misses == 0);
}

TEST_CASE("sparse fetch: prefix positions go to the pool's part, tail rows and hot rows into place, the rest counted") {
  constexpr uint32_t kRow = 32, kPrefix = 256, kTail = 3, kRows = 8;
  std::vector<uint8_t> tail(kTail * kRow), hot(kRows * kRow);
  for (size_t i = 0; i < tail.size(); ++i) tail[i] = uint8_t(100 + i);
  for (size_t i = 0; i < hot.size(); ++i) hot[i] = uint8_t(7 * i);
  // -1; prefix 0 and 255; tail 256 and 258; past the tail 259; below -1.
  const std::vector<int32_t> topk = {-1, 0, 255, 256, 258, 259, -5};
  const uint32_t k = uint32_t(topk.size());
  const std::vector<int32_t> row_of = {-1, 4, 2, -1, -1, -1, -1};
  for (bool with_hot : {false, true}) {
    CAPTURE(with_hot);
    std::vector<uint8_t> out(k * kRow, 0xAB);
    SparseFetchSegment seg;
    seg.topk = topk.data();
    seg.row_of = with_hot ? row_of.data() : nullptr;
    seg.hot_rows = hot.data();
    seg.tail = tail.data();
    seg.out = out.data();
    seg.prefix_tokens = kPrefix;
    seg.tail_tokens = kTail;
    seg.k = k;
    std::vector<int32_t> prefix_topk(k + 2, 99);  // max_k = k + 2: the slots past k stay as they were
    REQUIRE(reference_split_prefix(&seg, 1, k + 2, prefix_topk.data()) == 2);
    CHECK(prefix_topk == std::vector<int32_t>{-1, 0, 255, -1, -1, -1, -1, 99, 99});
    reference_assemble_rows(&seg, 1, kRow);
    auto row = [&](uint32_t i) { return std::vector<uint8_t>(out.begin() + i * kRow, out.begin() + (i + 1) * kRow); };
    const std::vector<uint8_t> untouched(kRow, 0xAB);
    CHECK(row(0) == untouched);
    CHECK(row(3) == std::vector<uint8_t>(tail.begin(), tail.begin() + kRow));
    CHECK(row(4) == std::vector<uint8_t>(tail.begin() + 2 * kRow, tail.end()));
    CHECK(row(5) == untouched);
    CHECK(row(6) == untouched);
    if (with_hot) {
      CHECK(row(1) == std::vector<uint8_t>(hot.begin() + 4 * kRow, hot.begin() + 5 * kRow));
      CHECK(row(2) == std::vector<uint8_t>(hot.begin() + 2 * kRow, hot.begin() + 3 * kRow));
    } else {  // the pool's gather writes prefix rows; assembly leaves them
      CHECK(row(1) == untouched);
      CHECK(row(2) == untouched);
    }
  }
}

TEST_CASE("reuse check: unchanged counts pass, a free elsewhere raises the count, a reused slab or a restart poisons") {
  // A pool of words: two parts' counts and epochs at 0..3, three pages' slab words at 4..6.
  std::vector<uint64_t> pool = {10, 77, 20, 88, 5u << 8 | 1, 6u << 8 | 1, 7u << 8 | 1};
  auto at = [](uint32_t word) { return uint64_t{word} * 8; };
  uint64_t frees_seen[2] = {10, 20};
  const uint64_t frees_offset[2] = {at(0), at(2)}, epoch_offset[2] = {at(1), kNoEpoch}, epoch[2] = {77, 0};
  const uint64_t word_offset[3] = {at(4), at(5), at(6)};
  const uint64_t word_expected[3] = {5u << 8 | 1, 6u << 8 | 1, 7u << 8 | 1};
  LeaseGuard g{frees_seen, frees_offset, epoch_offset, epoch, word_offset, word_expected, 2, 3};
  std::vector<uint8_t> out(40, 0x11);
  GuardTarget t{g, out.data(), out.size()};
  auto check = [&] { return reference_check_reuse(reinterpret_cast<const uint8_t*>(pool.data()), &t, 1); };
  auto untouched = [&] { return std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0x11; }); };

  CHECK(check() == 0);
  CHECK(untouched());
  // Another slab freed (count 20 -> 21): the words are as leased, the count is raised.
  pool[2] = 21;
  CHECK(check() == 0);
  CHECK(untouched());
  CHECK(frees_seen[1] == 21);
  // A part without an epoch word is not checked for one.
  pool[3] = 99;
  pool[0] = 11;
  CHECK(check() == 0);
  CHECK(frees_seen[0] == 11);
  // The lease's slab 2 freed and reused (generation 7 -> 8): poisoned, the count not raised.
  pool[6] = 8u << 8 | 1;
  pool[2] = 22;
  CHECK(check() == 1);
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == kPoisonByte; }));
  CHECK(frees_seen[1] == 21);
  // Its slab only freed (state free, same generation): poisoned too.
  std::fill(out.begin(), out.end(), 0x11);
  pool[6] = 7u << 8 | 0;
  CHECK(check() == 1);
  // The daemon restarted (epoch 77 -> 78), every slab word unchanged: poisoned.
  std::fill(out.begin(), out.end(), 0x11);
  pool[6] = 7u << 8 | 1;
  pool[1] = 78;
  pool[0] = 12;
  CHECK(check() == 1);
  CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == kPoisonByte; }));
}
