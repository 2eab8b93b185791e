// The top-k trace model (testkit/topk_trace.h): set sizes, overlap and the misses' invariants.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <set>
#include <vector>

#include "topk_trace.h"

using cxlkv::testing::TopkTrace;

TEST_CASE("each step keeps round(overlap x k) of the previous set and adds only new, sorted, distinct tokens") {
  TopkTrace t(16384, 3, 2048, 0.8, 7);
  std::vector<std::set<int32_t>> prev(3);
  for (int step = 0; step < 5; ++step) {
    t.next_step();
    for (uint32_t l = 0; l < 3; ++l) {
      const auto s = t.set(l);
      const std::set<int32_t> now(s.begin(), s.end());
      CHECK(now.size() == 2048);
      CHECK(t.kept(l) == (step == 0 ? 0u : 1638u));
      for (uint32_t i = 0; i < t.kept(l); ++i) CHECK(prev[l].count(s[i]) == 1);
      const auto miss = t.misses(l);
      CHECK(std::is_sorted(miss.begin(), miss.end()));
      for (int32_t x : miss) {
        CHECK(prev[l].count(x) == 0);
        CHECK((x >= 0 && x < 16384));
      }
      prev[l] = now;
    }
  }
}

TEST_CASE("a context barely above k still yields k distinct tokens per step") {
  TopkTrace t(2500, 1, 2048, 0.1, 1);
  for (int step = 0; step < 3; ++step) {
    t.next_step();
    const auto s = t.set(0);
    CHECK(std::set<int32_t>(s.begin(), s.end()).size() == 2048);
  }
  CHECK(t.kept(0) == 2048 - (2500 - 2048));
}

TEST_CASE("the same seed gives the same trace") {
  TopkTrace a(8192, 2, 512, 0.5, 3), b(8192, 2, 512, 0.5, 3);
  for (int step = 0; step < 3; ++step) {
    a.next_step();
    b.next_step();
    CHECK(std::equal(a.set(1).begin(), a.set(1).end(), b.set(1).begin()));
  }
}
