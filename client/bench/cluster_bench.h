// The cluster lookup benchmark (cluster_bench.cc): a prefix's lookup through a client over N
// memory nodes (etcd://) against the same lookup on one node, alternated in one run. Starts its
// own etcd and daemons (testkit); the daemon binary is --poold or $CXLKV_POOLD.
#pragma once

#include <cstdint>
#include <string>

namespace cxlkv::bench {

struct ClusterBenchOptions {
  std::string poold;  // the daemon binary; empty: $CXLKV_POOLD
  // One small layer: a lookup's cost does not depend on the bytes of a page.
  std::string layout = "custom:name=lookup-1l,layers=1,page_tokens=64,stream=latent/64/64/sparse,stream=indexer/64/64/bulk";
  uint32_t nodes = 3;
  uint32_t keys = 2048;
  uint32_t chunk_pages = 16;
  int iters = 500;
  std::string json;  // also write the figures here
};

int run_cluster_lookup_bench(const ClusterBenchOptions& options);

}  // namespace cxlkv::bench
