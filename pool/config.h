// The daemon's configuration: defaults, a TOML file (--config) and command-line overrides, in
// that order of precedence (the command line wins). main.cc calls load_config once; nothing
// else parses options. toml++ and CLI11 throw; this unit catches and returns a Status.
// The keys and flags are listed in pool/cxlkv-poold.example.toml and `cxlkv-poold --help`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"
#include "huge_pages.h"
#include "pool_service.h"
#include "region.h"

namespace cxlkv::pool {

struct Tenant {
  std::string name;
  std::string token;
  // The fraction of the pool's slabs the tenant's pages may hold (0: no share of its own, the
  // whole pool). Over it, a reserve evicts only the tenant's own pages, or is refused.
  double share = 0;
  // The roles its sessions may take (Hello names one): a reader only reads (its fd and mapping
  // are read-only); a writer also writes. Default: both. An admin session maps nothing and moves
  // no pages: it asks what the daemon serves (cxlkv-admin). Default: not admin.
  bool may_read = true, may_write = true, may_admin = false;
  // The partition its sessions are handed (PartitionSpec::name); empty: the [region] one.
  std::string partition{};
};

// A partition: one region the daemon serves (its own shm object, file, devdax device or NUMA
// object, allocator, index and leases), bound to the tenants that name it. A session maps only its
// tenant's partition, so no tenant can load or store another's bytes. Every partition has the
// daemon's layout and slab_pages.
struct PartitionSpec {
  std::string name;  // [A-Za-z0-9._-], unique
  cxl::RegionSpec region;
  // Where its metadata region (page records, allocator state; only the daemon maps it) lies:
  // "BACKEND:PATH" with backend shm, file or devdax; empty: cxl::Region::metadata_spec_for
  // (PATH.meta beside a shm, numa or file region; a devdax region must name one).
  std::string metadata{};
};

struct PoolConfig {
  // [region]
  cxl::RegionSpec region{cxl::Backend::kShm, "/cxlkv-pool", -1, 4ull << 30};
  std::string region_name = "main";  // the [region]'s partition name
  std::string region_metadata;       // the [region]'s metadata region (PartitionSpec::metadata)
  // [[partition]]: more partitions beside the [region]'s, each bound to the tenants naming it
  std::vector<PartitionSpec> partitions;
  std::string layout = "deepseek-v3.2";
  uint32_t slab_pages = 1;
  bool format = false;  // format an existing region (destroys it)
  // Huge pages for the region (cxl/huge_pages.h): a shm region may go onto hugetlbfs for them.
  cxl::HugePagePolicy huge_pages = cxl::HugePagePolicy::kAuto;
  // [server]
  std::string unix_socket = "/tmp/cxlkv-poold.sock";
  uint32_t unix_socket_mode = 0660;  // set at bind whatever the umask: owner and group connect
  std::string unix_socket_group;     // empty: the daemon's group
  std::string tcp;                 // "host:port"; empty: no TCP listener
  // TLS on the TCP listener (PEM files): every TCP connection then starts with a TLS handshake
  // and clients use "tls:host:port". A non-loopback TCP listener without TLS is refused unless
  // insecure_tcp says the network is trusted (tokens would cross it in clear).
  std::string tls_certificate;     // the daemon's certificate chain
  std::string tls_private_key;     // its private key
  bool insecure_tcp = false;
  uint32_t max_connections = 256;
  // Connections that have not said Hello: at most max_pending (a new one closes the oldest), each
  // closed hello_timeout_ms after it opened. Stalled peers so never lock legitimate clients out.
  uint32_t max_pending = 64;
  uint32_t hello_timeout_ms = 5000;
  // A frame whose first byte has come must be whole within frame_timeout_ms; a session that holds
  // no lease and sends nothing for idle_timeout_ms is closed (0: never).
  uint32_t frame_timeout_ms = 5000;
  uint32_t idle_timeout_ms = 600000;
  // Sessions of one tenant, and TCP connections from one address, at most: one tenant or host
  // cannot take every connection.
  uint32_t max_sessions_per_tenant = 128;
  uint32_t max_connections_per_address = 128;
  // [metrics]
  std::string metrics_bind = "127.0.0.1";
  uint16_t metrics_port = 9464;    // 0: no metrics listener
  // [leases], [eviction], limits, recovery
  PoolOptions pool;
  uint32_t reaper_interval_ms = 0;  // 0: a quarter of the shortest TTL, within 10..1000 ms
  // [[tenant]]; empty: open auth, any tenant and token accepted (logged as a warning)
  std::vector<Tenant> tenants;
  // [log]
  std::string log_level = "info";
  // [cluster]: membership in an etcd cluster (pool/cluster_registration.h); empty url: a lone node
  std::string cluster_url;               // "etcd://HOST:PORT/NAME"
  std::string node_id;                   // empty: <hostname>-<region path>, stable across restarts
  std::vector<std::string> advertise;    // control endpoints clients use; empty: the listeners
  uint32_t cluster_lease_ttl_s = 10;     // a dead node leaves within this
  uint32_t chunk_pages = 16;             // placement chunk C, recorded with the cluster
  // What applying the flags found wrong (a flag's value a field cannot hold); validate_config
  // reports the first.
  std::vector<std::string> flag_errors;
};

// What load_config decided: run with `config`, or exit with `exit_code` (--help: 0).
struct ConfigOutcome {
  PoolConfig config;
  bool exit_now = false;
  int exit_code = 0;
  std::string message;  // help text or the error, for main to print
};

ConfigOutcome load_config(int argc, char** argv);

// Every partition the daemon serves: the [region]'s first, then [[partition]]s in order.
std::vector<PartitionSpec> served_partitions(const PoolConfig& config);
// The index in served_partitions() of the partition each tenant is bound to (validate_config has
// checked that each names one).
std::vector<uint32_t> tenant_partitions(const PoolConfig& config);

// The metadata region of a partition: as configured, or the default beside its region.
Result<cxl::RegionSpec> metadata_region(const PartitionSpec& partition);

// Parses "4GiB", "512MiB", "65536", "2G" into bytes.
Result<uint64_t> parse_size(const std::string& text);
// "0660" -> 0660: an octal file mode of at most 0777 that keeps the owner's read and write.
Result<uint32_t> parse_socket_mode(const std::string& text);
// The settings of a TOML text (what --config reads from its file) over `config`; names the bad
// key or value. Ranges across fields are validate_config's.
Status read_config_text(std::string_view toml_text, PoolConfig& config);
// Checks value ranges across fields (watermarks, TTLs, E, the layout spec); names the bad one.
Status validate_config(const PoolConfig& config);

}  // namespace cxlkv::pool
