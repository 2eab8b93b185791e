// The prefix directory's pure parts (cluster/prefix_directory.h): the summary (a Bloom filter of
// chunk starts), its bytes, and the routing answer walked from summaries.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <map>
#include <random>
#include <vector>

#include "cxlkv/page_key.h"
#include "placement.h"
#include "prefix_directory.h"

using namespace cxlkv;
using namespace cxlkv::cluster;

namespace {

std::vector<PageKey> random_keys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<PageKey> keys(n);
  for (PageKey& k : keys)
    for (uint8_t& b : k.bytes) b = uint8_t(rng());
  return keys;
}

constexpr uint32_t kChunkPages = 4;

// A prompt's keys, chained as a real prefix's are.
std::vector<PageKey> prompt(uint32_t pages, int32_t salt) {
  std::vector<int32_t> tokens(size_t{pages} * 64);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = salt * 1000000 + int32_t(i);
  return page_keys(tokens, 64, namespace_id("acme", "m"));
}

// What the daemons would publish if the first `cached` pages of `keys` were committed with each
// chunk on `nodes[chunk index % nodes]`: the chunk starts per node.
std::map<std::string, std::vector<PageKey>> stored(const std::vector<PageKey>& keys, uint32_t cached,
                                                   const std::vector<std::string>& nodes) {
  std::map<std::string, std::vector<PageKey>> out;
  const auto chunks = place_prefix({keys.data(), cached}, kChunkPages, {});
  for (size_t c = 0; c < chunks.size(); ++c) out[nodes[c % nodes.size()]].push_back(keys[chunks[c].first_page]);
  return out;
}

std::map<std::string, PrefixSummary> summaries(const std::map<std::string, std::vector<PageKey>>& keys) {
  std::map<std::string, PrefixSummary> out;
  for (const auto& [node, k] : keys) out[node] = PrefixSummary::build(k);
  return out;
}

}  // namespace

TEST_CASE("a summary holds every key it was built from, and about 1 % of others") {
  const auto starts = random_keys(5000, 1), others = random_keys(20000, 3);
  const PrefixSummary s = PrefixSummary::build(starts);
  CHECK(s.keys() == 5000);
  CHECK(s.bits() >= 50000);
  for (const PageKey& k : starts) REQUIRE(s.may_contain(k));
  size_t false_positives = 0;
  for (const PageKey& k : others) false_positives += s.may_contain(k);
  CHECK(double(false_positives) / double(others.size()) < 0.02);
  CHECK_FALSE(PrefixSummary{}.may_contain(starts[0]));
  CHECK_FALSE(PrefixSummary::build({}).may_contain(starts[0]));
}

TEST_CASE("a summary's bytes parse back to the same answers; bad bytes are refused, naming why") {
  const auto starts = random_keys(150, 4), others = random_keys(1000, 6);
  const PrefixSummary s = PrefixSummary::build(starts);
  const std::string bytes = s.serialize();
  CHECK(bytes.size() == 24 + s.bits() / 8);
  auto back = PrefixSummary::parse(bytes);
  REQUIRE(back.is_ok());
  CHECK(back->keys() == 150);
  for (const PageKey& k : starts) REQUIRE(back->may_contain(k));
  for (const PageKey& k : others) REQUIRE(back->may_contain(k) == s.may_contain(k));
  for (const std::string& bad : {std::string(), std::string("CXS2") + bytes.substr(4), bytes.substr(0, bytes.size() - 8),
                                 bytes + "x", std::string("CXS1", 4)}) {
    auto r = PrefixSummary::parse(bad);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK(r.status().message().find("prefix summary") != std::string::npos);
  }
}

TEST_CASE("route walks a prompt's chunks over the nodes' summaries, up to the first chunk or run not there") {
  const std::vector<std::string> nodes = {"mem-a", "mem-b", "mem-c"};
  const auto keys = prompt(48, 1);
  const auto chunks = place_prefix(keys, kChunkPages, {});
  REQUIRE(chunks.size() >= 4);

  SECTION("all cached: every page, each on the node of its chunk") {
    const auto a = route_keys(keys, kChunkPages, summaries(stored(keys, 48, nodes)), {});
    CHECK(a.prefix_pages == 48);
    CHECK(a.cached_pages == 48);
    std::map<std::string, uint32_t> want;
    for (size_t c = 0; c < chunks.size(); ++c) want[nodes[c % 3]] += chunks[c].pages;
    CHECK(a.node_pages == want);
  }
  SECTION("a prompt longer than what is cached: counted to the end of the last chunk held, fewer than C more") {
    const uint32_t cached = chunks[2].first_page + 1;  // the cached part ends inside chunk 2
    const auto a = route_keys(keys, kChunkPages, summaries(stored(keys, cached, nodes)), {});
    CHECK(a.cached_pages == chunks[2].first_page + chunks[2].pages);
  }
  SECTION("a chunk no node holds ends the answer there") {
    auto held = stored(keys, 48, nodes);
    auto& node_of_chunk_2 = held[nodes[2]];
    node_of_chunk_2.erase(node_of_chunk_2.begin());  // chunk 2 (the first of mem-c)
    const auto a = route_keys(keys, kChunkPages, summaries(held), {});
    CHECK(a.cached_pages == chunks[2].first_page);
    CHECK(a.node_pages.count(nodes[2]) == 0);
  }
  SECTION("nothing published: nothing cached") {
    const auto a = route_keys(keys, kChunkPages, {}, {});
    CHECK(a.cached_pages == 0);
    CHECK(a.node_pages.empty());
    CHECK(route_keys({}, kChunkPages, summaries(stored(keys, 48, nodes)), {}).cached_pages == 0);
  }
}

TEST_CASE("route ranks workers by their affinity to the nodes holding the prompt") {
  const std::vector<std::string> nodes = {"mem-a", "mem-b", "mem-c"};
  const auto keys = prompt(64, 2);
  const auto s = summaries(stored(keys, 64, nodes));
  const std::vector<RouteWorker> workers = {{"far", {}},
                                            {"rack-b", {{"mem-b", 1.0}, {"mem-c", 0.5}}},
                                            {"rack-a", {{"mem-a", 1.0}, {"mem-x", 1.0}}},
                                            {"also-far", {{"mem-a", 0.0}}}};
  const auto a = route_keys(keys, kChunkPages, s, workers);
  REQUIRE(a.cached_pages == 64);
  const double pa = a.node_pages.at("mem-a"), pb = a.node_pages.at("mem-b"), pc = a.node_pages.at("mem-c");
  std::map<std::string, double> want = {{"far", 0}, {"rack-b", pb + 0.5 * pc}, {"rack-a", pa}, {"also-far", 0}};
  REQUIRE(a.workers.size() == 4);
  for (size_t i = 0; i < a.workers.size(); ++i) {
    CHECK(a.workers[i].score == Catch::Approx(want.at(a.workers[i].name)));
    if (i > 0) CHECK(a.workers[i - 1].score >= a.workers[i].score);
  }
  CHECK(a.workers[2].name == "also-far");  // equal scores: by name
  CHECK(a.workers[3].name == "far");
  const auto& rack_b = a.workers[0].name == "rack-b" ? a.workers[0] : a.workers[1];
  CHECK(rack_b.local_pages == uint32_t(pb + pc));
}
