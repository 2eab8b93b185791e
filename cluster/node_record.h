// NodeRecord: what a memory node says of itself in etcd (DESIGN.md, Cluster): its id, the epoch
// of this start, where clients reach it, and its regions with layout, capacity and free space.
// The record is JSON under /cxlkv/<cluster>/nodes/<node id>, attached to the node's etcd lease so
// a node that dies leaves when the lease runs out. ClusterSettings is what every node of a
// cluster shares (the chunk size of placement), written once by the first node.
// Written by the daemon's registration (pool/cluster_registration.cc); read by list_nodes, the
// cluster client and cxlkv-route.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"
#include "etcd_client.h"

namespace cxlkv::cluster {

struct RegionRecord {
  std::string name;        // "<backend>:<path>"
  std::string layout;      // the layout's spec (Layout::spec)
  uint32_t slab_pages = 0; // E
  uint64_t slab_bytes = 0;
  uint64_t slabs_total = 0;
  uint64_t slabs_free = 0;
};

struct NodeRecord {
  std::string node_id;                 // stable across restarts of the same node
  uint64_t epoch = 0;                  // different at every start of the daemon
  std::vector<std::string> endpoints;  // "unix:/path", "tcp:host:port": the control plane
  std::vector<RegionRecord> regions;
  // cxlkv-admin drain: the node takes no new chunks (clients place them elsewhere) but still
  // serves the pages it holds.
  bool draining = false;

  uint64_t capacity_bytes() const;
  uint64_t free_bytes() const;
  std::string to_json() const;
  // The error names what is missing or of the wrong type.
  static Result<NodeRecord> from_json(std::string_view text);
};

// Settings shared by every node of a cluster, recorded once under /cxlkv/<cluster>/settings.
struct ClusterSettings {
  uint32_t chunk_pages = 16;  // C: pages per placement chunk

  std::string to_json() const;
  static Result<ClusterSettings> from_json(std::string_view text);
};

// A node id may hold [A-Za-z0-9._-] only (it is part of an etcd key); 1 to 128 characters.
Status check_node_id(std::string_view node_id);
// "/cxlkv/<cluster>/nodes/" and the key of one node.
std::string nodes_prefix(const ClusterUrl& url);
std::string node_key(const ClusterUrl& url, std::string_view node_id);
std::string settings_key(const ClusterUrl& url);

// Every node registered now, in node id order. A record that does not parse is left out (and
// named in `skipped` when given): one bad writer never hides the others.
Result<std::vector<NodeRecord>> list_nodes(EtcdClient& etcd, const ClusterUrl& url,
                                           std::vector<std::string>* skipped = nullptr);

// The cluster's settings: `wanted` if this call recorded them first, else the recorded ones, which
// must equal `wanted` (kMismatch naming both otherwise).
Result<ClusterSettings> join_settings(EtcdClient& etcd, const ClusterUrl& url, const ClusterSettings& wanted);
// The recorded settings, or kNotFound when no node has joined the cluster yet.
Result<ClusterSettings> read_settings(EtcdClient& etcd, const ClusterUrl& url);

}  // namespace cxlkv::cluster
