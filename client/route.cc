// cxlkv::route and PrefixRouter (include/cxlkv/route.h): the cluster's settings and the
// namespace's summaries from etcd (cached by a PrefixRouter), then cluster::route_keys.
#include "cxlkv/route.h"

#include <atomic>
#include <cmath>
#include <mutex>
#include <unordered_map>

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

namespace {

Status check_workers(std::span<const RouteWorker> workers) {
  for (const RouteWorker& w : workers)
    for (const auto& [node, weight] : w.node_affinity)
      if (!std::isfinite(weight) || weight < 0)
        return Status(Code::kInvalidArgument, fmt::format("route: worker '{}': affinity to node '{}' must be a finite "
                                                          "number >= 0, got {}", w.name, node, weight));
  return Status::ok();
}

}  // namespace

struct PrefixRouter::Impl {
  struct Summaries {
    std::map<std::string, cluster::PrefixSummary> by_node;
    std::chrono::steady_clock::time_point read_at;
  };
  cluster::ClusterUrl url;
  Options options;
  std::mutex mu;
  cluster::EtcdClient etcd;                  // guarded by mu (not thread-safe)
  uint32_t chunk_pages = 0;                  // 0: settings not read yet
  std::unordered_map<uint64_t, Summaries> cache;  // namespace -> its summaries
  std::atomic<uint64_t> directory_reads{0};

  Impl(cluster::ClusterUrl u, Options o) : url(std::move(u)), options(o), etcd(url.host, url.port, o.timeout) {}
};

PrefixRouter::PrefixRouter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrefixRouter::~PrefixRouter() = default;

Result<std::unique_ptr<PrefixRouter>> PrefixRouter::open(std::string_view cluster_url, Options options) {
  auto url = cluster::parse_cluster_url(cluster_url);
  if (!url) return Status(Code::kInvalidArgument, url.status().message());
  if (options.timeout.count() <= 0 || options.max_age.count() < 0)
    return Status(Code::kInvalidArgument, fmt::format("route: timeout {} ms must be > 0 and max_age {} ms >= 0",
                                                      options.timeout.count(), options.max_age.count()));
  return std::unique_ptr<PrefixRouter>(new PrefixRouter(std::make_unique<Impl>(std::move(*url), options)));
}

uint64_t PrefixRouter::directory_reads() const { return impl_->directory_reads.load(std::memory_order_relaxed); }

Result<RouteAnswer> PrefixRouter::route(uint64_t namespace_id, std::span<const PageKey> keys,
                                        std::span<const RouteWorker> workers) {
  if (Status st = check_workers(workers); !st) return st;
  Impl& m = *impl_;
  std::lock_guard lock(m.mu);
  if (m.chunk_pages == 0) {  // the cluster's settings never change once written
    auto settings = cluster::read_settings(m.etcd, m.url);
    if (!settings) {
      if (settings.status().code() == Code::kNotFound)
        return Status(Code::kNotFound, fmt::format("route: no memory node has joined cluster {} yet", m.url.to_string()));
      return settings.status();
    }
    m.chunk_pages = settings->chunk_pages;
  }
  const auto now = std::chrono::steady_clock::now();
  auto it = m.cache.find(namespace_id);
  if (it == m.cache.end() || m.options.max_age.count() == 0 || now - it->second.read_at >= m.options.max_age) {
    auto summaries = cluster::read_directory(m.etcd, m.url, namespace_id);
    if (!summaries) return summaries.status();
    m.directory_reads.fetch_add(1, std::memory_order_relaxed);
    it = m.cache.insert_or_assign(namespace_id, Impl::Summaries{std::move(*summaries), now}).first;
  }
  return cluster::route_keys(keys, m.chunk_pages, it->second.by_node, workers);
}

Result<RouteAnswer> route(std::string_view cluster_url, uint64_t namespace_id, std::span<const PageKey> keys,
                          std::span<const RouteWorker> workers, std::chrono::milliseconds timeout) {
  auto router = PrefixRouter::open(cluster_url, {timeout, std::chrono::milliseconds(0)});
  if (!router) return router.status();
  return (*router)->route(namespace_id, keys, workers);
}

}  // namespace cxlkv
