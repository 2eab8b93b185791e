// EtcdClient: the cluster's one way to etcd, through etcd's documented v3 API over its JSON
// gateway (HTTP/1.1 POSTs to /v3/kv/*, /v3/lease/*; keys and values base64 in the JSON, as the
// gateway requires). Blocking calls with a deadline each, one short-lived TCP connection per call:
// membership and summaries talk to etcd a few times a second at most, never on a data path.
// Called by cluster/membership.cc (the daemon's registration thread) and by whoever lists the
// cluster's nodes. Not thread-safe: one EtcdClient per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::cluster {

// "etcd://HOST:PORT/NAME": where etcd answers and which cluster (a key prefix) is meant.
struct ClusterUrl {
  std::string host;
  uint16_t port = 0;
  std::string name;  // [A-Za-z0-9._-]+, the cluster's keys live under /cxlkv/<name>/

  std::string to_string() const;
  // The prefix of every key of this cluster: "/cxlkv/<name>/".
  std::string key_prefix() const { return "/cxlkv/" + name + "/"; }
};
// Parses an etcd URL; the error names the text and what is wrong with it.
Result<ClusterUrl> parse_cluster_url(std::string_view text);

// One key as etcd holds it.
struct EtcdKv {
  std::string key;
  std::string value;
  int64_t lease = 0;         // 0: not attached to a lease
  int64_t mod_revision = 0;  // the cluster revision of its last change
};

class EtcdClient {
 public:
  EtcdClient(std::string host, uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(2));

  // A new lease of `ttl_s` seconds; its id.
  Result<int64_t> grant_lease(int64_t ttl_s);
  // Refreshes `lease`; the TTL it has again. kNotFound when etcd no longer has it (it expired).
  Result<int64_t> keep_alive(int64_t lease);
  // Ends `lease` now, deleting every key attached to it.
  Status revoke_lease(int64_t lease);

  // Writes key = value, attached to `lease` (0: none).
  Status put(std::string_view key, std::string_view value, int64_t lease = 0);
  // Writes key = value only if the key does not exist; returns the value the key holds afterwards
  // (`value` if it was created, the existing one if not). Atomic in etcd (a transaction).
  Result<std::string> put_if_absent(std::string_view key, std::string_view value);
  // The key, or nullopt when it does not exist.
  Result<std::optional<EtcdKv>> get(std::string_view key);
  // Every key that starts with `prefix`, in key order.
  Result<std::vector<EtcdKv>> get_prefix(std::string_view prefix);
  Status erase(std::string_view key);

  // "HOST:PORT", for messages.
  std::string where() const;

 private:
  // POSTs `json_body` to `path` and returns the response body; every error names the call and
  // the address.
  Result<std::string> post(std::string_view path, const std::string& json_body);

  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
};

// The end of the key range that holds every key starting with `prefix` (etcd's range_end).
std::string prefix_end(std::string_view prefix);

// Base64 as etcd's JSON gateway writes bytes (standard alphabet, padded).
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);

}  // namespace cxlkv::cluster
