#include "placement.h"

#include <algorithm>
#include <cmath>
#include <xxhash.h>

namespace cxlkv::cluster {

double rendezvous_score(const PageKey& key, const PlacementNode& node) {
  if (node.weight == 0) return 0;
  const uint64_t seed = XXH3_64bits(node.node_id.data(), node.node_id.size());
  const uint64_t h = XXH3_64bits_withSeed(key.bytes.data(), key.bytes.size(), seed);
  // The top 53 bits as a double in (0, 1): never 0 or 1, so the logarithm is finite and negative.
  const double u = (double(h >> 11) + 0.5) * 0x1.0p-53;
  return double(node.weight) / -std::log(u);
}

int choose_node(const PageKey& first_key, std::span<const PlacementNode> nodes) {
  int best = -1;
  double best_score = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const double s = rendezvous_score(first_key, nodes[i]);
    if (s > best_score) best = int(i), best_score = s;
  }
  return best;
}

bool starts_chunk(const PageKey& key, uint32_t chunk_pages) {
  // A seed of its own, so where chunks start is independent of any node's rendezvous score.
  constexpr uint64_t kChunkBoundarySeed = 0x63786c6b76636875;  // "cxlkvchu"
  if (chunk_pages <= 1) return true;
  return XXH3_64bits_withSeed(key.bytes.data(), key.bytes.size(), kChunkBoundarySeed) % chunk_pages == 0;
}

std::vector<ChunkPlacement> place_prefix(std::span<const PageKey> keys, uint32_t chunk_pages,
                                         std::span<const PlacementNode> nodes) {
  std::vector<ChunkPlacement> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i == 0 || starts_chunk(keys[i], chunk_pages))
      out.push_back({uint32_t(i), 1, choose_node(keys[i], nodes)});
    else
      ++out.back().pages;
  }
  return out;
}

}  // namespace cxlkv::cluster
