// Routing by the cluster's prefix directory (docs/cluster.md, Prefix directory): how many leading
// pages of a prompt the memory nodes of a cluster hold, on which nodes, and which of a scheduler's
// decode workers sits closest to them. Reads the per-namespace summaries the daemons publish in
// etcd; talks to no daemon and maps nothing. Called by schedulers and routers (and cxlkv-route,
// cxlkv.route, cxlkv.Router); implemented by client/route.cc over cluster/prefix_directory.
// The answer is advice: summaries trail the pools by up to a few seconds and may say "maybe" for
// a page that is not there (about 1 %). A wrong answer costs a slower hit, never a wrong byte: the
// worker then reads through a lookup, which is exact.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/page_key.h"
#include "cxlkv/status.h"

namespace cxlkv {

// A decode worker and its affinity to memory nodes (from the operator's config): what a cached
// page on each node is worth to it, e.g. 1 for a node in its rack, 0.5 one rack away; absent, 0.
struct RouteWorker {
  std::string name;
  std::map<std::string, double> node_affinity;  // node id -> weight
};

struct RankedWorker {
  std::string name;
  double score = 0;          // sum over nodes of the cached pages there x the worker's affinity
  uint32_t local_pages = 0;  // cached pages on nodes the worker has an affinity > 0 to
};

struct RouteAnswer {
  uint32_t prefix_pages = 0;                   // pages asked about
  uint32_t cached_pages = 0;                   // the leading pages the directory says are cached
  std::map<std::string, uint32_t> node_pages;  // of those, how many on each node
  std::vector<RankedWorker> workers;           // best first: score, then local pages, then name

  // {"prefix_pages":N,"cached_pages":M,"nodes":{"<node>":pages,...},
  //  "workers":[{"name":"<w>","score":S,"local_pages":P},...]}: what cxlkv_route and
  // `cxlkv-route --json` print.
  std::string to_json() const;
};

// The answer for the pages `keys` of namespace `namespace_id` (keys[0] a prefix's first page: see
// page_key.h) in the cluster at `cluster_url` ("etcd://HOST:PORT/NAME"), ranking `workers`.
// kInvalidArgument for a URL that is not etcd:// or an affinity that is negative or not finite;
// kUnavailable when etcd does not answer; kNotFound when no node has joined the cluster.
// Two etcd reads per call: a scheduler asking per request keeps a PrefixRouter instead.
Result<RouteAnswer> route(std::string_view cluster_url, uint64_t namespace_id, std::span<const PageKey> keys,
                          std::span<const RouteWorker> workers,
                          std::chrono::milliseconds timeout = std::chrono::seconds(2));

// route() for a scheduler that asks per request: keeps the cluster's settings (read once) and each
// namespace's summaries for up to max_age, so etcd sees one read per namespace per max_age however
// many requests are routed. An answer is then up to max_age older than route()'s (docs/cluster.md
// says what staleness costs). Thread-safe: one lock; a call that must read etcd holds it for that
// read (at most `timeout`).
class PrefixRouter {
 public:
  struct Options {
    std::chrono::milliseconds timeout{2000};  // each etcd read
    std::chrono::milliseconds max_age{1000};  // summaries older than this are read again; 0: always
  };
  // kInvalidArgument for a URL that is not etcd:// or a negative duration. Reads nothing yet.
  static Result<std::unique_ptr<PrefixRouter>> open(std::string_view cluster_url, Options options);
  ~PrefixRouter();
  PrefixRouter(const PrefixRouter&) = delete;
  PrefixRouter& operator=(const PrefixRouter&) = delete;

  // As route(), from the cache where it is fresh enough.
  Result<RouteAnswer> route(uint64_t namespace_id, std::span<const PageKey> keys, std::span<const RouteWorker> workers);
  // etcd reads of a namespace's summaries so far (what the cache saves shows here).
  uint64_t directory_reads() const;

 private:
  struct Impl;
  explicit PrefixRouter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
