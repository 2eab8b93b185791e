// Placement: capacity-weighted rendezvous hashing of prefix chunks (cluster/placement.h).
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "placement.h"

using namespace cxlkv;
using namespace cxlkv::cluster;

namespace {

// `n` page keys drawn from a fixed seed: stand-ins for the first keys of n chunks.
std::vector<PageKey> random_keys(size_t n, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<PageKey> keys(n);
  for (PageKey& k : keys)
    for (uint8_t& b : k.bytes) b = uint8_t(rng());
  return keys;
}

std::vector<int> choices(const std::vector<PageKey>& keys, const std::vector<PlacementNode>& nodes) {
  std::vector<int> out;
  for (const PageKey& k : keys) out.push_back(choose_node(k, nodes));
  return out;
}

std::vector<double> shares(const std::vector<int>& chosen, size_t nodes) {
  std::vector<double> out(nodes, 0);
  for (int c : chosen) out.at(size_t(c)) += 1.0 / double(chosen.size());
  return out;
}

constexpr size_t kChunks = 30000;

}  // namespace

TEST_CASE("chunks spread over nodes of equal capacity in equal shares") {
  const std::vector<PlacementNode> nodes{{"node-a", 100}, {"node-b", 100}, {"node-c", 100}};
  const auto s = shares(choices(random_keys(kChunks), nodes), nodes.size());
  for (double share : s) CHECK(share == Catch::Approx(1.0 / 3).margin(0.02));
}

TEST_CASE("a node's share follows its capacity") {
  const std::vector<PlacementNode> nodes{{"small", 1ull << 40}, {"large", 2ull << 40}, {"other", 1ull << 40}};
  const auto s = shares(choices(random_keys(kChunks), nodes), nodes.size());
  CHECK(s[0] == Catch::Approx(0.25).margin(0.02));
  CHECK(s[1] == Catch::Approx(0.50).margin(0.02));
  CHECK(s[2] == Catch::Approx(0.25).margin(0.02));
}

TEST_CASE("a fourth node takes its share of chunks, every moved chunk moves to it, and no other moves") {
  const auto keys = random_keys(kChunks, 11);
  std::vector<PlacementNode> nodes{{"node-a", 100}, {"node-b", 100}, {"node-c", 100}};
  const auto before = choices(keys, nodes);
  nodes.push_back({"node-d", 100});
  const auto after = choices(keys, nodes);
  size_t moved = 0;
  for (size_t i = 0; i < keys.size(); ++i)
    if (before[i] != after[i]) {
      ++moved;
      REQUIRE(after[i] == 3);  // only to the new node
    }
  const double fraction = double(moved) / double(keys.size());
  CHECK(fraction <= 0.25 + 0.05);  // the bar: 1/4 + 5 %
  CHECK(fraction >= 0.25 - 0.05);  // and it does take its share
}

TEST_CASE("a node that leaves gives up only its own chunks, spread over the rest") {
  const auto keys = random_keys(kChunks, 13);
  std::vector<PlacementNode> nodes{{"node-a", 100}, {"node-b", 100}, {"node-c", 100}, {"node-d", 100}};
  const auto before = choices(keys, nodes);
  nodes.erase(nodes.begin() + 1);  // node-b leaves: indices of c and d shift down by one
  const auto after = choices(keys, nodes);
  const std::vector<int> renumber{0, -1, 1, 2};
  std::vector<size_t> took(3, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (before[i] == 1) ++took.at(size_t(after[i]));
    else REQUIRE(after[i] == renumber[size_t(before[i])]);
  }
  const size_t orphans = took[0] + took[1] + took[2];
  for (size_t t : took) CHECK(double(t) / double(orphans) == Catch::Approx(1.0 / 3).margin(0.04));
}

TEST_CASE("the answer depends on the nodes, not on their order in the list") {
  const auto keys = random_keys(2000, 17);
  std::vector<PlacementNode> nodes{{"n1", 3}, {"n2", 5}, {"n3", 7}, {"n4", 5}};
  std::vector<PlacementNode> shuffled{nodes[2], nodes[0], nodes[3], nodes[1]};
  for (const PageKey& k : keys) REQUIRE(nodes[size_t(choose_node(k, nodes))].node_id ==
                                        shuffled[size_t(choose_node(k, shuffled))].node_id);
}

TEST_CASE("a node of weight 0 takes no chunk; with no weight anywhere nothing is placed") {
  const auto keys = random_keys(2000, 19);
  const std::vector<PlacementNode> draining{{"a", 10}, {"draining", 0}, {"c", 10}};
  for (int c : choices(keys, draining)) REQUIRE(c != 1);
  const std::vector<PlacementNode> none{{"a", 0}, {"b", 0}};
  CHECK(choose_node(keys[0], none) == -1);
  CHECK(choose_node(keys[0], std::vector<PlacementNode>{}) == -1);
}

TEST_CASE("a prefix is cut where its keys start chunks, each chunk placed by its first page's key") {
  const auto keys = random_keys(4000, 23);
  const std::vector<PlacementNode> nodes{{"a", 1}, {"b", 1}, {"c", 1}};
  const auto chunks = place_prefix(keys, 16, nodes);
  REQUIRE(!chunks.empty());
  CHECK(chunks.front().first_page == 0);
  uint32_t next = 0;
  for (const ChunkPlacement& c : chunks) {
    CHECK(c.first_page == next);  // the chunks tile the prefix in order
    CHECK(c.pages >= 1);
    CHECK(c.node == choose_node(keys[c.first_page], nodes));
    for (uint32_t j = 1; j < c.pages; ++j) CHECK_FALSE(starts_chunk(keys[c.first_page + j], 16));
    if (c.first_page > 0) CHECK(starts_chunk(keys[c.first_page], 16));
    next = c.first_page + c.pages;
  }
  CHECK(next == keys.size());
  // 16 pages a chunk on average: 4000 pages make about 250 chunks.
  CHECK(chunks.size() > 180);
  CHECK(chunks.size() < 330);
  CHECK(place_prefix(std::span<const PageKey>(), 16, nodes).empty());
  CHECK(place_prefix(keys, 1, nodes).size() == keys.size());
}

TEST_CASE("an extension is cut where a lookup from the root cuts it") {
  const auto keys = random_keys(600, 29);
  const std::vector<PlacementNode> nodes{{"a", 1}, {"b", 2}, {"c", 1}};
  const auto whole = place_prefix(keys, 8, nodes);
  const size_t from = 301;  // an extension starting mid-prefix, its index unknown to the writer
  const auto tail = place_prefix(std::span<const PageKey>(keys).subspan(from), 8, nodes);
  REQUIRE(tail.size() >= 2);
  // Past its first run (which continues the chunk before it) every chunk is the whole prefix's.
  for (size_t t = 1; t < tail.size(); ++t) {
    const uint32_t at = uint32_t(from) + tail[t].first_page;
    const auto it = std::find_if(whole.begin(), whole.end(), [&](const ChunkPlacement& c) { return c.first_page == at; });
    REQUIRE(it != whole.end());
    CHECK(it->pages == tail[t].pages);
    CHECK(it->node == tail[t].node);
  }
}
