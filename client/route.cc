// cxlkv::route (include/cxlkv/route.h): the cluster's settings and the namespace's summaries from
// etcd, then cluster::route_keys. Two etcd reads per call; nothing cached between calls.
#include "cxlkv/route.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "etcd_client.h"
#include "node_record.h"
#include "prefix_directory.h"

namespace cxlkv {

std::string RouteAnswer::to_json() const {
  nlohmann::json j = {{"prefix_pages", prefix_pages}, {"cached_pages", cached_pages}, {"nodes", node_pages},
                      {"workers", nlohmann::json::array()}};
  for (const RankedWorker& w : workers)
    j["workers"].push_back({{"name", w.name}, {"score", w.score}, {"local_pages", w.local_pages}});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // names need not be UTF-8
}

Result<RouteAnswer> route(std::string_view cluster_url, uint64_t namespace_id, std::span<const PageKey> keys,
                          std::span<const RouteWorker> workers, std::chrono::milliseconds timeout) {
  for (const RouteWorker& w : workers)
    for (const auto& [node, weight] : w.node_affinity)
      if (!std::isfinite(weight) || weight < 0)
        return Status(Code::kInvalidArgument, fmt::format("route: worker '{}': affinity to node '{}' must be a finite "
                                                          "number >= 0, got {}", w.name, node, weight));
  auto url = cluster::parse_cluster_url(cluster_url);
  if (!url) return Status(Code::kInvalidArgument, url.status().message());
  cluster::EtcdClient etcd(url->host, url->port, timeout);
  auto settings = cluster::read_settings(etcd, *url);
  if (!settings) {
    if (settings.status().code() == Code::kNotFound)
      return Status(Code::kNotFound, fmt::format("route: no memory node has joined cluster {} yet", url->to_string()));
    return settings.status();
  }
  auto summaries = cluster::read_directory(etcd, *url, namespace_id);
  if (!summaries) return summaries.status();
  return cluster::route_keys(keys, settings->chunk_pages, *summaries, workers);
}

}  // namespace cxlkv
