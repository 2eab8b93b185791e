// The prefix directory (DESIGN.md, Cluster): what each memory node holds, published per namespace
// as a compact summary for routing, so a scheduler can tell how much of a prompt the pool holds and
// where, without asking any daemon. Owns the summary (a Bloom filter over the keys that start a
// placement chunk), its etcd keys, and the routing answer computed from the summaries.
// Written by the daemon's registration thread (pool/cluster_registration.cc); read by
// cxlkv::route (client/route.cc), hence cxlkv-route and cxlkv.route. The answer's types are the
// public ones (include/cxlkv/route.h).
//
// A summary can be stale (published at a bounded rate) or answer a false "maybe" (about 1 % at 10
// bits per key): a route is advice. A wrong answer costs a worker a slower hit; the bytes it then
// reads come through a lookup, which is always exact.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/page_key.h"
#include "cxlkv/route.h"
#include "cxlkv/status.h"
#include "etcd_client.h"

namespace cxlkv::cluster {

// Whether a page is in its node's summary by its key: it starts a prefix (no parent) or a chunk
// (starts_chunk). Routing walks a prompt chunk by chunk and asks for these keys only. The summary
// also lists a run whose parent its node does not hold (PrefixIndex::set_committed): an extension
// placed away from its parent, which a cluster client's lookup asks for when a chunk ends early.
bool starts_summarised_chunk(const PageKey& key, const PageKey& parent, uint32_t chunk_pages);

// A Bloom filter over the chunk-start keys a node holds: 10 bits and 7 probes per key (about 1 %
// false positives), probes from XXH3-128 of the key (double hashing). Serialised as "CXS1", then
// the probe count, the bit count and the key count (little-endian u32, u64, u64), then the bits as
// little-endian u64 words. Chunk starts only, not every page: a summary is 1/C the size (C pages
// per chunk on average), which is what lets the directory fit etcd at 1,000 nodes
// (docs/cluster.md); the price is that a route counts whole chunks.
class PrefixSummary {
 public:
  PrefixSummary() = default;
  static PrefixSummary build(std::span<const PageKey> chunk_starts);
  bool may_contain(const PageKey& key) const;
  uint64_t keys() const { return keys_; }
  uint64_t bits() const { return words_.size() * 64; }

  std::string serialize() const;
  // The error names what is wrong with the bytes (magic, sizes).
  static Result<PrefixSummary> parse(std::string_view bytes);

 private:
  uint32_t probes_ = 7;
  uint64_t keys_ = 0;
  std::vector<uint64_t> words_;
};

// "/cxlkv/<cluster>/directory/<ns, 16 hex digits>/" and the key of one node's summary under it
// (attached to the node's lease: a node that leaves takes its summaries with it).
std::string directory_prefix(const ClusterUrl& url, uint64_t ns);
std::string directory_key(const ClusterUrl& url, uint64_t ns, std::string_view node_id);

// Every node's summary for `ns`, by node id. A summary that does not parse is left out (named in
// `skipped` when given).
Result<std::map<std::string, PrefixSummary>> read_directory(EtcdClient& etcd, const ClusterUrl& url, uint64_t ns,
                                                            std::vector<std::string>* skipped = nullptr);

// The answer for the pages `keys` (keys[0] a prefix's first page) from the summaries: walks the
// chunks (place_prefix's cut), each found on the node whose summary holds its first key (the lowest
// node id if several say maybe), up to the first chunk none holds. Whole chunks are counted: where
// a prompt goes on past (or differs from) what is cached inside a chunk, the answer counts that
// chunk's remaining pages too, fewer than C.
RouteAnswer route_keys(std::span<const PageKey> keys, uint32_t chunk_pages,
                       const std::map<std::string, PrefixSummary>& summaries, std::span<const RouteWorker> workers);

}  // namespace cxlkv::cluster
