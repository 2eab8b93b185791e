#include "node_record.h"

#include <cctype>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cxlkv::cluster {

using json = nlohmann::json;

uint64_t NodeRecord::capacity_bytes() const {
  uint64_t total = 0;
  for (const RegionRecord& r : regions) total += r.slabs_total * r.slab_bytes;
  return total;
}

uint64_t NodeRecord::free_bytes() const {
  uint64_t total = 0;
  for (const RegionRecord& r : regions) total += r.slabs_free * r.slab_bytes;
  return total;
}

std::string NodeRecord::to_json() const {
  json regions_json = json::array();
  for (const RegionRecord& r : regions)
    regions_json.push_back({{"name", r.name}, {"layout", r.layout}, {"slab_pages", r.slab_pages},
                            {"slab_bytes", r.slab_bytes}, {"slabs_total", r.slabs_total},
                            {"slabs_free", r.slabs_free}});
  // The epoch as a string: JSON readers elsewhere (etcd's own tools, Python) may hold numbers as
  // doubles, which cannot carry 64 bits.
  json j{{"version", 1}, {"node_id", node_id}, {"epoch", std::to_string(epoch)},
         {"endpoints", endpoints}, {"regions", regions_json}};
  if (draining) j["draining"] = true;  // absent while serving: a reader that predates drains reads it as ever
  return j.dump();
}

Result<NodeRecord> NodeRecord::from_json(std::string_view text) {
  try {
    const json j = json::parse(text);
    if (j.at("version").get<int>() != 1)
      return Status(Code::kMismatch, fmt::format("node record version {} (this build reads 1)", j.at("version").dump()));
    NodeRecord n;
    n.node_id = j.at("node_id").get<std::string>();
    n.epoch = std::stoull(j.at("epoch").get<std::string>());
    n.endpoints = j.at("endpoints").get<std::vector<std::string>>();
    for (const json& r : j.at("regions"))
      n.regions.push_back({r.at("name").get<std::string>(), r.at("layout").get<std::string>(),
                           r.at("slab_pages").get<uint32_t>(), r.at("slab_bytes").get<uint64_t>(),
                           r.at("slabs_total").get<uint64_t>(), r.at("slabs_free").get<uint64_t>()});
    n.draining = j.contains("draining") && j.at("draining").get<bool>();
    if (Status st = check_node_id(n.node_id); !st) return st;
    return n;
  } catch (const std::exception& e) {
    return Status(Code::kCorrupt, fmt::format("node record: {}: {}", e.what(), text.substr(0, 200)));
  }
}

std::string ClusterSettings::to_json() const { return json{{"version", 1}, {"chunk_pages", chunk_pages}}.dump(); }

Result<ClusterSettings> ClusterSettings::from_json(std::string_view text) {
  try {
    const json j = json::parse(text);
    ClusterSettings s;
    s.chunk_pages = j.at("chunk_pages").get<uint32_t>();
    if (s.chunk_pages == 0) throw std::runtime_error("chunk_pages is 0");
    return s;
  } catch (const std::exception& e) {
    return Status(Code::kCorrupt, fmt::format("cluster settings: {}: {}", e.what(), text.substr(0, 200)));
  }
}

Status check_node_id(std::string_view id) {
  if (id.empty() || id.size() > 128)
    return Status(Code::kInvalidArgument, fmt::format("node id '{}': 1 to 128 characters", id));
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return Status(Code::kInvalidArgument,
                    fmt::format("node id '{}' has '{}': only letters, digits, '.', '_' and '-'", id, c));
  return Status::ok();
}

std::string nodes_prefix(const ClusterUrl& url) { return url.key_prefix() + "nodes/"; }
std::string node_key(const ClusterUrl& url, std::string_view node_id) { return nodes_prefix(url) + std::string(node_id); }
std::string settings_key(const ClusterUrl& url) { return url.key_prefix() + "settings"; }

Result<std::vector<NodeRecord>> list_nodes(EtcdClient& etcd, const ClusterUrl& url, std::vector<std::string>* skipped) {
  auto kvs = etcd.get_prefix(nodes_prefix(url));
  if (!kvs) return kvs.status();
  std::vector<NodeRecord> nodes;
  for (const EtcdKv& kv : *kvs) {
    auto n = NodeRecord::from_json(kv.value);
    if (n) nodes.push_back(std::move(*n));
    else if (skipped) skipped->push_back(kv.key + ": " + n.status().message());
  }
  return nodes;
}

Result<ClusterSettings> join_settings(EtcdClient& etcd, const ClusterUrl& url, const ClusterSettings& wanted) {
  auto stored = etcd.put_if_absent(settings_key(url), wanted.to_json());
  if (!stored) return stored.status();
  auto settings = ClusterSettings::from_json(*stored);
  if (!settings) return settings.status();
  if (settings->chunk_pages != wanted.chunk_pages)
    return Status(Code::kMismatch, fmt::format("cluster {}: chunk_pages {} configured, the cluster records {}",
                                               url.to_string(), wanted.chunk_pages, settings->chunk_pages));
  return settings;
}

Result<ClusterSettings> read_settings(EtcdClient& etcd, const ClusterUrl& url) {
  auto kv = etcd.get(settings_key(url));
  if (!kv) return kv.status();
  if (!*kv) return Status(Code::kNotFound, fmt::format("cluster {}: no node has joined it yet", url.to_string()));
  return ClusterSettings::from_json((*kv)->value);
}

}  // namespace cxlkv::cluster
