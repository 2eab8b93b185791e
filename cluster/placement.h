// Placement: which memory node holds which chunk of a prefix, computed, never stored (DESIGN.md,
// Cluster). A prefix's pages are cut into chunks of C consecutive pages on average; a chunk lives
// on the node chosen by capacity-weighted rendezvous hashing of the chunk's first page key, so a
// prefix spreads over the nodes, every client computes the same answer from the same membership,
// and a node that joins takes only its weighted share of chunks (each chunk moves to it or stays).
// Chunk boundaries are chosen by the keys themselves (a page starts a chunk when its key hashes to
// 0 mod C), not by page index: a writer that extends a prefix knows its new keys but seldom the
// index of its first page (an engine hands over the pages it has, not where they sit), and it
// still cuts them where a lookup from the root does. Pure functions; called by the cluster client.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cxlkv/page_key.h"

namespace cxlkv::cluster {

// A node as placement sees it: a stable name and a weight (its capacity, in any one unit).
struct PlacementNode {
  std::string node_id;
  uint64_t weight = 0;  // 0: takes no chunk (draining, or full)
};

// The node's rendezvous score for `key`: weight / -ln(u), u in (0, 1) from XXH3 of the key seeded
// by the node id. The highest score wins; ties (equal id and weight only) go to the lower index.
double rendezvous_score(const PageKey& key, const PlacementNode& node);

// The index in `nodes` of the node that holds the chunk whose first page is `first_key`; -1 when
// no node has weight.
int choose_node(const PageKey& first_key, std::span<const PlacementNode> nodes);

// One chunk of a prefix: pages [first_page, first_page + pages) on nodes[node].
struct ChunkPlacement {
  uint32_t first_page = 0;
  uint32_t pages = 0;
  int node = -1;
};

// Whether a page whose key is `key` starts a chunk when chunks are `chunk_pages` pages on average:
// XXH3 of the key is 0 mod chunk_pages (every page at 1). Chunk lengths are geometric, mean C.
bool starts_chunk(const PageKey& key, uint32_t chunk_pages);

// The chunks of the pages whose keys are `keys`, in order: a chunk starts at keys[0] and at every
// key that starts_chunk. When keys[0] is a prefix's first page these are the prefix's chunks; when
// it extends a prefix, the first run (up to the first key that starts a chunk) continues the
// chunk of the page before it, which the caller places (cluster client: where that page is).
// Empty when `keys` is; every chunk's node is -1 when no node has weight.
std::vector<ChunkPlacement> place_prefix(std::span<const PageKey> keys, uint32_t chunk_pages,
                                         std::span<const PlacementNode> nodes);

}  // namespace cxlkv::cluster
