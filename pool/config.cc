// Configuration: defaults, then the TOML file, then command-line overrides (config.h).
#include "config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>
#include <type_traits>

#include "etcd_client.h"
#include "node_record.h"

namespace cxlkv::pool {

Result<uint64_t> parse_size(const std::string& text) {
  size_t used = 0;
  uint64_t value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    return Status(Code::kInvalidArgument, fmt::format("size '{}' is not a number with an optional unit", text));
  }
  static const std::map<std::string, uint64_t> units = {
      {"", 1},         {"B", 1},          {"K", 1ull << 10},  {"KiB", 1ull << 10}, {"M", 1ull << 20},
      {"MiB", 1ull << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"T", 1ull << 40}, {"TiB", 1ull << 40}};
  const auto unit = units.find(text.substr(used));
  if (unit == units.end())
    return Status(Code::kInvalidArgument, fmt::format("size '{}': unit '{}' is not B, KiB, MiB, GiB or TiB", text,
                                                      text.substr(used)));
  return value * unit->second;
}

Result<uint32_t> parse_socket_mode(const std::string& text) {
  uint32_t mode = 0;
  bool octal = !text.empty() && text.size() <= 4;
  for (char ch : text) {
    octal = octal && ch >= '0' && ch <= '7';
    mode = mode * 8 + uint32_t(ch - '0');
  }
  if (!octal || mode > 0777)
    return Status(Code::kInvalidArgument, fmt::format("socket mode '{}' is not an octal mode such as 0660", text));
  if ((mode & 0600) != 0600)
    return Status(Code::kInvalidArgument, fmt::format("socket mode '{}' leaves the daemon's own user out (0600 needed)", text));
  return mode;
}

namespace {

Status validate_cluster(const PoolConfig& c) {
  if (c.cluster_url.empty()) return Status::ok();
  if (auto url = cluster::parse_cluster_url(c.cluster_url); !url) return url.status();
  if (!c.node_id.empty())
    if (Status st = cluster::check_node_id(c.node_id); !st) return st;
  if (c.cluster_lease_ttl_s < 2 || c.cluster_lease_ttl_s > 3600)
    return Status(Code::kInvalidArgument, fmt::format("cluster lease_ttl_s {} must be 2..3600", c.cluster_lease_ttl_s));
  if (c.chunk_pages == 0 || c.chunk_pages > 16384)
    return Status(Code::kInvalidArgument, fmt::format("chunk_pages {} must be 1..16384", c.chunk_pages));
  for (const std::string& e : c.advertise)
    if (!e.starts_with("unix:") && !e.starts_with("tcp:") && !e.starts_with("tls:"))
      return Status(Code::kInvalidArgument,
                    fmt::format("advertised endpoint '{}' is not unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", e));
  return Status::ok();
}

// Partition names, places and bindings: each partition named once, in a place of its own, bound
// to at least one tenant (else nobody could use it); each tenant bound to one that exists.
Status validate_partitions(const PoolConfig& c) {
  const std::vector<PartitionSpec> partitions = served_partitions(c);
  std::set<std::string> names, places;
  for (const PartitionSpec& p : partitions) {
    const bool name_ok = !p.name.empty() && std::all_of(p.name.begin(), p.name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    });
    if (!name_ok)
      return Status(Code::kInvalidArgument, fmt::format("partition name '{}' must be [A-Za-z0-9._-], not empty", p.name));
    if (!names.insert(p.name).second)
      return Status(Code::kInvalidArgument, fmt::format("partition '{}' is named twice", p.name));
    if (static_cast<uint8_t>(p.region.backend) > static_cast<uint8_t>(cxl::Backend::kNuma))
      return Status(Code::kInvalidArgument, fmt::format("partition '{}': the backend is not one of shm, file, devdax, "
                                                        "numa (give NAME=BACKEND:PATH[:SIZE])", p.name));
    const std::string place = fmt::format("{}:{}", cxl::backend_name(p.region.backend), p.region.path);
    if (p.region.path.empty())
      return Status(Code::kInvalidArgument, fmt::format("partition '{}' needs a path", p.name));
    if (!places.insert(place).second)
      return Status(Code::kInvalidArgument, fmt::format("partition '{}': region {} is another partition's too", p.name, place));
    if (p.region.size == 0 && p.region.backend != cxl::Backend::kDevdax)
      return Status(Code::kInvalidArgument, fmt::format("partition '{}' needs a size (e.g. 4GiB)", p.name));
    auto metadata = metadata_region(p);
    if (!metadata) return Status(metadata.status().code(), fmt::format("partition '{}': {}", p.name, metadata.status().message()));
    const std::string metadata_place = fmt::format("{}:{}", cxl::backend_name(metadata->backend), metadata->path);
    if (!places.insert(metadata_place).second)
      return Status(Code::kInvalidArgument, fmt::format("partition '{}': metadata region {} is taken by another region "
                                                        "or partition", p.name, metadata_place));
  }
  if (!c.partitions.empty() && c.tenants.empty())
    return Status(Code::kInvalidArgument, fmt::format("{} partitions are configured but no tenants: partitions are bound "
                                                      "to tenants (give [[tenant]] entries with partition = NAME)",
                                                      partitions.size()));
  std::vector<bool> bound(partitions.size(), c.partitions.empty());
  for (const Tenant& t : c.tenants) {
    const std::string& want = t.partition.empty() ? c.region_name : t.partition;
    bool found = false;
    for (size_t i = 0; i < partitions.size(); ++i)
      if (partitions[i].name == want) found = true, bound[i] = true;
    if (!found)
      return Status(Code::kInvalidArgument, fmt::format("tenant '{}': partition '{}' is not one of the daemon's ({})",
                                                        t.name, want, fmt::join(names, ", ")));
  }
  for (size_t i = 0; i < partitions.size(); ++i)
    if (!bound[i])
      return Status(Code::kInvalidArgument, fmt::format("partition '{}' is bound to no tenant (give a tenant "
                                                        "partition = \"{}\")", partitions[i].name, partitions[i].name));
  return Status::ok();
}

}  // namespace

Result<cxl::RegionSpec> metadata_region(const PartitionSpec& p) {
  if (p.metadata.empty()) return cxl::Region::metadata_spec_for(p.region);
  const size_t colon = p.metadata.find(':');
  auto backend = cxl::parse_backend(p.metadata.substr(0, colon));
  if (colon == std::string::npos || !backend || *backend == cxl::Backend::kNuma || colon + 1 == p.metadata.size())
    return Status(Code::kInvalidArgument, fmt::format("metadata '{}' must be BACKEND:PATH with backend shm, file or devdax",
                                                      p.metadata));
  cxl::RegionSpec spec;
  spec.backend = *backend;
  spec.path = p.metadata.substr(colon + 1);
  return spec;
}

std::vector<PartitionSpec> served_partitions(const PoolConfig& c) {
  std::vector<PartitionSpec> all{PartitionSpec{c.region_name, c.region, c.region_metadata}};
  all.insert(all.end(), c.partitions.begin(), c.partitions.end());
  return all;
}

std::vector<uint32_t> tenant_partitions(const PoolConfig& c) {
  const std::vector<PartitionSpec> partitions = served_partitions(c);
  std::vector<uint32_t> index;
  for (const Tenant& t : c.tenants) {
    const std::string& want = t.partition.empty() ? c.region_name : t.partition;
    uint32_t i = 0;
    while (i + 1 < partitions.size() && partitions[i].name != want) ++i;
    index.push_back(i);
  }
  return index;
}

Status validate_config(const PoolConfig& c) {
  if (!c.flag_errors.empty()) return Status(Code::kInvalidArgument, c.flag_errors.front());
  const Watermarks& w = c.pool.watermarks;
  if (!(w.low > 0 && w.low <= w.high && w.high <= 1))
    return Status(Code::kInvalidArgument,
                  fmt::format("eviction watermarks low {} / high {} must satisfy 0 < low <= high <= 1", w.low, w.high));
  if (c.pool.read_lease_ttl_ms == 0 || c.pool.write_lease_ttl_ms == 0)
    return Status(Code::kInvalidArgument, fmt::format("lease TTLs must be > 0 ms (read {}, write {})",
                                                      c.pool.read_lease_ttl_ms, c.pool.write_lease_ttl_ms));
  if (c.slab_pages == 0 || c.slab_pages > 1024)
    return Status(Code::kInvalidArgument, fmt::format("slab_pages {} must be 1..1024", c.slab_pages));
  if (c.pool.max_keys == 0 || c.pool.max_keys > 16384)
    return Status(Code::kInvalidArgument, fmt::format("max_keys {} must be 1..16384", c.pool.max_keys));
  if (c.max_connections == 0) return Status(Code::kInvalidArgument, "max_connections must be > 0");
  if (c.max_pending == 0 || c.max_pending > c.max_connections)
    return Status(Code::kInvalidArgument, fmt::format("max_pending must be in 1..max_connections ({}), got {}",
                                                      c.max_connections, c.max_pending));
  if (c.hello_timeout_ms == 0) return Status(Code::kInvalidArgument, "hello_timeout_ms must be > 0");
  if (c.frame_timeout_ms == 0) return Status(Code::kInvalidArgument, "frame_timeout_ms must be > 0");
  if (c.max_sessions_per_tenant == 0 || c.max_connections_per_address == 0)
    return Status(Code::kInvalidArgument, fmt::format("max_sessions_per_tenant ({}) and max_connections_per_address "
                                                      "({}) must be > 0", c.max_sessions_per_tenant,
                                                      c.max_connections_per_address));
  if (c.unix_socket.empty() && c.tcp.empty())
    return Status(Code::kInvalidArgument, "no listener: give a unix socket path or a TCP address");
  if (c.tls_certificate.empty() != c.tls_private_key.empty())
    return Status(Code::kInvalidArgument, fmt::format("TLS needs both a certificate and a private key (certificate "
                                                      "'{}', private key '{}')", c.tls_certificate, c.tls_private_key));
  if (!c.tls_certificate.empty() && c.tcp.empty())
    return Status(Code::kInvalidArgument, "a TLS certificate is given but no TCP listener (--tcp) to use it");
  if (auto layout = Layout::parse(c.layout); !layout) return layout.status();
  if (Status st = validate_cluster(c); !st) return st;
  for (const Tenant& t : c.tenants) {
    if (t.token.empty() && t.share < 0)
      return Status(Code::kInvalidArgument, fmt::format("--tenant-share, --tenant-roles or --tenant-partition {}: no "
                                                        "such tenant (give --tenant {}:TOKEN)", t.name, t.name));
    if (t.name.empty() || t.token.empty())
      return Status(Code::kInvalidArgument, fmt::format("tenant '{}' needs a name and a token", t.name));
    if (!t.may_read && !t.may_write && !t.may_admin)
      return Status(Code::kInvalidArgument, fmt::format("tenant '{}': no role it may take (roles: reader, writer, admin)", t.name));
    if (!(t.share >= 0 && t.share <= 1))
      return Status(Code::kInvalidArgument, fmt::format("tenant '{}': share {} must be in 0..1 (0: no share of its own)",
                                                        t.name, t.share));
  }
  // After the tenants: a binding of an unknown tenant is named as such first.
  if (Status st = validate_partitions(c); !st) return st;
  return Status::ok();
}

namespace {

using Apply = std::function<void(PoolConfig&)>;

// Registers an option whose value, when given, is applied to the config after the file is read.
template <typename T, typename F>
CLI::Option* override_option(CLI::App& app, std::vector<Apply>& later, const std::string& name,
                             const std::string& help, F apply) {
  CLI::Option* o = app.add_option_function<T>(
      name, [&later, apply](const T& v) { later.push_back([apply, v](PoolConfig& c) { apply(c, v); }); }, help);
  if constexpr (!std::is_same_v<T, std::vector<std::string>>) o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  return o;
}

Status check_keys(const toml::table& t, const std::string& where, const std::set<std::string>& known) {
  for (const auto& [k, v] : t)
    if (!known.count(std::string(k.str())))
      return Status(Code::kInvalidArgument, fmt::format("config: unknown key '{}' in [{}]", k.str(), where));
  return Status::ok();
}

const char* toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

// One key of a table into `out`, when present: a value of another type, or an integer out of
// the field's range, is an error naming the key (never a silent default, never a float cast to
// an integer: toml++ converts those without a range check).
template <typename T>
Status read(const toml::table& t, const char* key, T& out) {
  const toml::node* node = t.get(key);
  if (!node) return Status::ok();
  if constexpr (std::is_same_v<T, bool>) {
    if (auto v = node->value_exact<bool>()) return out = *v, Status::ok();
  } else if constexpr (std::is_integral_v<T>) {
    if (auto v = node->value_exact<int64_t>()) {
      if (*v >= int64_t(std::numeric_limits<T>::min()) && uint64_t(*v) <= uint64_t(std::numeric_limits<T>::max()))
        return out = static_cast<T>(*v), Status::ok();
      return Status(Code::kInvalidArgument, fmt::format("config: {} = {} is outside {}..{}", key, *v,
                                                        std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto v = node->value<double>()) return out = static_cast<T>(*v), Status::ok();  // an integer is a number too
  } else {
    if (auto v = node->value_exact<std::string>()) return out = *v, Status::ok();
  }
  return Status(Code::kInvalidArgument, fmt::format("config: {} has the wrong type ({})", key, toml_type_name(*node)));
}

Status read_table(const toml::table& root, PoolConfig& c);

// "reader", "writer", "admin", comma-separated: the roles a tenant's sessions may take.
Status parse_roles(const std::string& list, Tenant& t) {
  t.may_read = t.may_write = t.may_admin = false;
  std::stringstream in(list);
  for (std::string role; std::getline(in, role, ',');) {
    if (role == "reader") t.may_read = true;
    else if (role == "writer") t.may_write = true;
    else if (role == "admin") t.may_admin = true;
    else return Status(Code::kInvalidArgument, fmt::format("tenant '{}': role '{}' is not reader, writer or admin", t.name, role));
  }
  if (!t.may_read && !t.may_write && !t.may_admin)
    return Status(Code::kInvalidArgument, fmt::format("tenant '{}': no role given (reader, writer, admin)", t.name));
  return Status::ok();
}

Status read_toml(const std::string& path, PoolConfig& c) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status(Code::kInvalidArgument, fmt::format("config {}: {} (line {})", path, e.description(),
                                                      e.source().begin.line));
  }
  return read_table(root, c);
}

// The keys of a region's place in [region] or a [[partition]]: backend, path, numa_node, size
// (a string with a unit, or bytes).
Status read_region_spec(const toml::table& t, cxl::RegionSpec& spec) {
  if (auto b = t["backend"].value<std::string>()) {
    auto backend = cxl::parse_backend(*b);
    if (!backend) return backend.status();
    spec.backend = *backend;
  }
  if (Status st = read(t, "path", spec.path); !st) return st;
  if (Status st = read(t, "numa_node", spec.numa_node); !st) return st;
  if (auto size = t["size"].value<std::string>()) {
    auto bytes = parse_size(*size);
    if (!bytes) return bytes.status();
    spec.size = *bytes;
    return Status::ok();
  }
  return read(t, "size", spec.size);
}

Status read_table(const toml::table& root, PoolConfig& c) {
  if (Status st = check_keys(root, "top level", {"region", "server", "metrics", "leases", "eviction", "log", "tenant",
                                                "cluster", "partition"});
      !st)
    return st;
  if (const toml::table* r = root["region"].as_table()) {
    if (Status st = check_keys(*r, "region", {"backend", "path", "numa_node", "size", "layout", "slab_pages", "verify_data",
                                          "huge_pages", "name", "metadata"}); !st)
      return st;
    if (Status st = read(*r, "name", c.region_name); !st) return st;
    if (Status st = read(*r, "metadata", c.region_metadata); !st) return st;
    if (Status st = read_region_spec(*r, c.region); !st) return st;
    if (Status st = read(*r, "layout", c.layout); !st) return st;
    if (Status st = read(*r, "slab_pages", c.slab_pages); !st) return st;
    if (Status st = read(*r, "verify_data", c.pool.verify_data); !st) return st;
    if (auto h = (*r)["huge_pages"].value<std::string>()) {
      auto policy = cxl::parse_huge_page_policy(*h);
      if (!policy) return policy.status();
      c.huge_pages = *policy;
    }
  }
  if (const toml::table* s = root["server"].as_table()) {
    if (Status st = check_keys(*s, "server", {"unix_socket", "unix_socket_mode", "unix_socket_group", "tcp",
                                              "max_connections", "max_pending", "hello_timeout_ms", "frame_timeout_ms",
                                              "idle_timeout_ms", "max_sessions_per_tenant",
                                              "max_connections_per_address", "max_keys",
                                              "max_leases", "tls_certificate", "tls_private_key", "insecure_tcp"});
        !st)
      return st;
    if (Status st = read(*s, "unix_socket", c.unix_socket); !st) return st;
    std::string mode;
    if (Status st = read(*s, "unix_socket_mode", mode); !st) return st;
    if (!mode.empty()) {
      auto m = parse_socket_mode(mode);
      if (!m) return m.status();
      c.unix_socket_mode = *m;
    }
    if (Status st = read(*s, "unix_socket_group", c.unix_socket_group); !st) return st;
    if (Status st = read(*s, "tcp", c.tcp); !st) return st;
    if (Status st = read(*s, "tls_certificate", c.tls_certificate); !st) return st;
    if (Status st = read(*s, "tls_private_key", c.tls_private_key); !st) return st;
    if (Status st = read(*s, "insecure_tcp", c.insecure_tcp); !st) return st;
    if (Status st = read(*s, "max_connections", c.max_connections); !st) return st;
    if (Status st = read(*s, "max_pending", c.max_pending); !st) return st;
    if (Status st = read(*s, "hello_timeout_ms", c.hello_timeout_ms); !st) return st;
    if (Status st = read(*s, "frame_timeout_ms", c.frame_timeout_ms); !st) return st;
    if (Status st = read(*s, "idle_timeout_ms", c.idle_timeout_ms); !st) return st;
    if (Status st = read(*s, "max_sessions_per_tenant", c.max_sessions_per_tenant); !st) return st;
    if (Status st = read(*s, "max_connections_per_address", c.max_connections_per_address); !st) return st;
    if (Status st = read(*s, "max_keys", c.pool.max_keys); !st) return st;
    if (Status st = read(*s, "max_leases", c.pool.max_leases); !st) return st;
  }
  if (const toml::table* m = root["metrics"].as_table()) {
    if (Status st = check_keys(*m, "metrics", {"bind", "port"}); !st) return st;
    if (Status st = read(*m, "bind", c.metrics_bind); !st) return st;
    if (Status st = read(*m, "port", c.metrics_port); !st) return st;
  }
  if (const toml::table* l = root["leases"].as_table()) {
    if (Status st = check_keys(*l, "leases", {"read_ttl_ms", "write_ttl_ms", "reaper_interval_ms"}); !st) return st;
    if (Status st = read(*l, "read_ttl_ms", c.pool.read_lease_ttl_ms); !st) return st;
    if (Status st = read(*l, "write_ttl_ms", c.pool.write_lease_ttl_ms); !st) return st;
    if (Status st = read(*l, "reaper_interval_ms", c.reaper_interval_ms); !st) return st;
  }
  if (const toml::table* e = root["eviction"].as_table()) {
    if (Status st = check_keys(*e, "eviction", {"high_watermark", "low_watermark"}); !st) return st;
    if (Status st = read(*e, "high_watermark", c.pool.watermarks.high); !st) return st;
    if (Status st = read(*e, "low_watermark", c.pool.watermarks.low); !st) return st;
  }
  if (const toml::table* l = root["log"].as_table()) {
    if (Status st = check_keys(*l, "log", {"level"}); !st) return st;
    if (Status st = read(*l, "level", c.log_level); !st) return st;
  }
  if (const toml::table* k = root["cluster"].as_table()) {
    if (Status st = check_keys(*k, "cluster", {"url", "node_id", "advertise", "lease_ttl_s", "chunk_pages"}); !st)
      return st;
    if (Status st = read(*k, "url", c.cluster_url); !st) return st;
    if (Status st = read(*k, "node_id", c.node_id); !st) return st;
    if (Status st = read(*k, "lease_ttl_s", c.cluster_lease_ttl_s); !st) return st;
    if (Status st = read(*k, "chunk_pages", c.chunk_pages); !st) return st;
    if (const toml::node* a = k->get("advertise")) {
      const toml::array* list = a->as_array();
      if (!list) return Status(Code::kInvalidArgument, "config: [cluster] advertise must be an array of strings");
      c.advertise.clear();
      for (const auto& e : *list) {
        auto v = e.value_exact<std::string>();
        if (!v) return Status(Code::kInvalidArgument, "config: [cluster] advertise must be an array of strings");
        c.advertise.push_back(*v);
      }
    }
  }
  if (const toml::array* tenants = root["tenant"].as_array()) {
    for (const auto& node : *tenants) {
      const toml::table* t = node.as_table();
      if (!t) return Status(Code::kInvalidArgument, "config: [[tenant]] entries must be tables");
      if (Status st = check_keys(*t, "tenant", {"name", "token", "share", "roles", "partition"}); !st) return st;
      Tenant tenant;
      if (Status st = read(*t, "partition", tenant.partition); !st) return st;
      if (Status st = read(*t, "name", tenant.name); !st) return st;
      if (Status st = read(*t, "token", tenant.token); !st) return st;
      if (Status st = read(*t, "share", tenant.share); !st) return st;
      if (const toml::array* roles = (*t)["roles"].as_array()) {
        std::string list;
        for (const auto& r : *roles) list += (list.empty() ? "" : ",") + r.value_or(std::string("?"));
        if (Status st = parse_roles(list, tenant); !st) return st;
      }
      c.tenants.push_back(tenant);
    }
  }
  if (const toml::array* partitions = root["partition"].as_array()) {
    for (const auto& node : *partitions) {
      const toml::table* t = node.as_table();
      if (!t) return Status(Code::kInvalidArgument, "config: [[partition]] entries must be tables");
      if (Status st = check_keys(*t, "partition", {"name", "backend", "path", "numa_node", "size", "metadata"}); !st)
        return st;
      PartitionSpec p{"", cxl::RegionSpec{cxl::Backend::kShm, "", -1, c.region.size}};
      if (Status st = read(*t, "name", p.name); !st) return st;
      if (Status st = read(*t, "metadata", p.metadata); !st) return st;
      if (Status st = read_region_spec(*t, p.region); !st)
        return Status(st.code(), fmt::format("partition '{}': {}", p.name, st.message()));
      c.partitions.push_back(p);
    }
  }
  return Status::ok();
}

// [region]: backend, path, NUMA node, size, layout, slab pages.
void add_region_overrides(CLI::App& app, std::vector<Apply>& later) {
  override_option<std::string>(app, later, "--backend", "region backend: shm, file, devdax or numa (default shm)",
                               [](PoolConfig& c, const std::string& v) {
                                 if (auto b = cxl::parse_backend(v)) c.region.backend = *b;
                                 else c.region.backend = static_cast<cxl::Backend>(0xff);
                               });
  override_option<std::string>(app, later, "--path",
                               "region path: shm/numa object name (/cxlkv-pool), file path or /dev/daxX.Y",
                               [](PoolConfig& c, const std::string& v) { c.region.path = v; });
  override_option<std::string>(app, later, "--metadata",
                               "the region's metadata region (page records and allocator state, mapped by the daemon "
                               "only): BACKEND:PATH, backend shm, file or devdax; default PATH.meta beside a shm, numa "
                               "or file region; a devdax region must name one (another dax device, or a file)",
                               [](PoolConfig& c, const std::string& v) { c.region_metadata = v; });
  override_option<std::string>(app, later, "--region-name", "the region's partition name, as tenants name it (default main)",
                               [](PoolConfig& c, const std::string& v) { c.region_name = v; });
  override_option<int>(app, later, "--numa-node", "NUMA node of the numa backend",
                       [](PoolConfig& c, int v) { c.region.numa_node = v; });
  override_option<std::string>(app, later, "--size", "region size when created, e.g. 4GiB, 512MiB (default 4GiB)",
                               [](PoolConfig& c, const std::string& v) {
                                 auto b = parse_size(v);
                                 c.region.size = b ? *b : 0;
                               });
  // After --size: flags apply in the order they are registered, and a partition's size defaults to it.
  override_option<std::vector<std::string>>(
      app, later, "--partition",
      "NAME=BACKEND:PATH[:SIZE], repeatable: another partition (its own region) beside the [region]'s, for the tenants "
      "bound to it by --tenant-partition; replaces the file's [[partition]]s; SIZE defaults to --size",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        c.partitions.clear();
        for (const std::string& item : v) {
          // NAME=BACKEND:PATH[:SIZE]; anything unparsable becomes a spec validate_config names.
          PartitionSpec p{item.substr(0, item.find('=')), cxl::RegionSpec{cxl::Backend::kShm, "", -1, c.region.size}};
          const size_t eq = item.find('=');
          const std::string rest = eq == std::string::npos ? "" : item.substr(eq + 1);
          const size_t colon = rest.find(':');
          auto backend = cxl::parse_backend(rest.substr(0, colon));
          if (!backend) p.region.backend = static_cast<cxl::Backend>(0xff);
          if (backend && colon != std::string::npos) {
            p.region.backend = *backend;
            std::string path = rest.substr(colon + 1);
            const size_t last = path.rfind(':');
            if (last != std::string::npos) {
              auto bytes = parse_size(path.substr(last + 1));
              if (!bytes) c.flag_errors.push_back(fmt::format("--partition {}: {}", item, bytes.status().message()));
              p.region.size = bytes ? *bytes : 0;
              path.resize(last);
            }
            p.region.path = path;
          }
          c.partitions.push_back(p);
        }
      });
  // After --partition: names partitions it made.
  override_option<std::vector<std::string>>(
      app, later, "--partition-metadata",
      "NAME=BACKEND:PATH, repeatable: where partition NAME's metadata region lies (as --metadata; needed for a devdax "
      "partition)",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        for (const std::string& item : v) {
          const size_t eq = item.find('=');
          const std::string name = item.substr(0, eq), where = eq == std::string::npos ? "" : item.substr(eq + 1);
          if (where.empty()) {
            c.flag_errors.push_back(fmt::format("--partition-metadata {}: give NAME=BACKEND:PATH", item));
            continue;
          }
          bool found = false;
          for (PartitionSpec& p : c.partitions)
            if (p.name == name) p.metadata = where, found = true;
          if (!found && name == c.region_name) c.region_metadata = where, found = true;
          if (!found)
            c.flag_errors.push_back(fmt::format("--partition-metadata {}: no partition '{}' (give NAME=BACKEND:PATH for "
                                                "the region's or a --partition's NAME)", item, name));
        }
      });
  override_option<std::string>(app, later, "--layout",
                               fmt::format("layout class: a preset ({}; default deepseek-v3.2; deepseek-v3.2-split for "
                                           "GPU decode), a preset with strides (deepseek-v3.2:latent_stride=704), or "
                                           "custom:...",
                                           fmt::join(Layout::preset_names(), ", ")),
                               [](PoolConfig& c, const std::string& v) { c.layout = v; });
  override_option<uint32_t>(app, later, "--slab-pages", "pages per slab E when created (default 1)",
                            [](PoolConfig& c, uint32_t v) { c.slab_pages = v; });
  override_option<std::string>(app, later, "--huge-pages",
                               fmt::format("huge pages for the region: auto (default: shmem THP where the kernel allows "
                                           "it, else a shm region goes onto a hugetlbfs mount with enough free pages, "
                                           "else 4 KiB pages and a warning), require (refuse to start without), off. "
                                           "This machine: {}",
                                           cxl::probe_huge_pages().describe()),
                               [](PoolConfig& c, const std::string& v) {
                                 auto p = cxl::parse_huge_page_policy(v);
                                 c.huge_pages = p ? *p : static_cast<cxl::HugePagePolicy>(0xff);
                               });
}

// [server] and [metrics]: listeners and limits.
void add_server_overrides(CLI::App& app, std::vector<Apply>& later) {
  override_option<std::string>(app, later, "--socket", "Unix socket path (default /tmp/cxlkv-poold.sock; '' = none)",
                               [](PoolConfig& c, const std::string& v) { c.unix_socket = v; });
  override_option<std::string>(app, later, "--socket-mode",
                               "Unix socket file mode, octal, set whatever the umask (default 0660)",
                               [](PoolConfig& c, const std::string& v) { c.unix_socket_mode = *parse_socket_mode(v); })
      ->check([](const std::string& v) {
        auto m = parse_socket_mode(v);
        return m ? std::string() : m.status().message();
      });
  override_option<std::string>(app, later, "--socket-group", "group owning the Unix socket (default: the daemon's)",
                               [](PoolConfig& c, const std::string& v) { c.unix_socket_group = v; });
  override_option<std::string>(app, later, "--tcp", "TCP listen address host:port (default none)",
                               [](PoolConfig& c, const std::string& v) { c.tcp = v; });
  override_option<std::string>(app, later, "--tls-certificate",
                               "PEM certificate chain: the TCP listener speaks TLS (clients use tls:HOST:PORT)",
                               [](PoolConfig& c, const std::string& v) { c.tls_certificate = v; });
  override_option<std::string>(app, later, "--tls-private-key", "PEM private key of --tls-certificate",
                               [](PoolConfig& c, const std::string& v) { c.tls_private_key = v; });
  app.add_flag_callback(
      "--insecure-tcp", [&later] { later.push_back([](PoolConfig& c) { c.insecure_tcp = true; }); },
      "allow a non-loopback TCP listener without TLS (tokens cross the network in clear)");
  override_option<uint32_t>(app, later, "--max-connections", "open connections at most (default 256)",
                            [](PoolConfig& c, uint32_t v) { c.max_connections = v; });
  override_option<uint32_t>(app, later, "--max-pending",
                            "connections that have not said Hello, at most; a new one closes the oldest (default 64)",
                            [](PoolConfig& c, uint32_t v) { c.max_pending = v; });
  override_option<uint32_t>(app, later, "--hello-timeout-ms",
                            "a connection that has not said Hello by then is closed (default 5000)",
                            [](PoolConfig& c, uint32_t v) { c.hello_timeout_ms = v; });
  override_option<uint32_t>(app, later, "--frame-timeout-ms",
                            "a frame begun must be whole by then, else the connection closes (default 5000)",
                            [](PoolConfig& c, uint32_t v) { c.frame_timeout_ms = v; });
  override_option<uint32_t>(app, later, "--idle-timeout-ms",
                            "a session holding no lease and silent this long is closed (default 600000; 0 = never)",
                            [](PoolConfig& c, uint32_t v) { c.idle_timeout_ms = v; });
  override_option<uint32_t>(app, later, "--max-sessions-per-tenant", "sessions of one tenant at most (default 128)",
                            [](PoolConfig& c, uint32_t v) { c.max_sessions_per_tenant = v; });
  override_option<uint32_t>(app, later, "--max-connections-per-address",
                            "TCP connections from one address at most (default 128)",
                            [](PoolConfig& c, uint32_t v) { c.max_connections_per_address = v; });
  override_option<uint32_t>(app, later, "--max-keys", "keys per request at most, <= 16384 (default 16384)",
                            [](PoolConfig& c, uint32_t v) { c.pool.max_keys = v; });
  override_option<uint32_t>(app, later, "--max-leases", "live leases at most (default 65536)",
                            [](PoolConfig& c, uint32_t v) { c.pool.max_leases = v; });
  override_option<std::string>(app, later, "--metrics-bind", "metrics HTTP address (default 127.0.0.1)",
                               [](PoolConfig& c, const std::string& v) { c.metrics_bind = v; });
  override_option<uint16_t>(app, later, "--metrics-port", "metrics HTTP port, GET /metrics (default 9464; 0 = off)",
                            [](PoolConfig& c, uint16_t v) { c.metrics_port = v; });
}

// [leases] and [eviction].
void add_lease_and_eviction_overrides(CLI::App& app, std::vector<Apply>& later) {
  override_option<uint32_t>(app, later, "--read-lease-ttl-ms", "read lease TTL in ms (default 30000)",
                            [](PoolConfig& c, uint32_t v) { c.pool.read_lease_ttl_ms = v; });
  override_option<uint32_t>(app, later, "--write-lease-ttl-ms", "write lease TTL in ms (default 30000)",
                            [](PoolConfig& c, uint32_t v) { c.pool.write_lease_ttl_ms = v; });
  override_option<uint32_t>(app, later, "--reaper-interval-ms",
                            "lease reaper period in ms (default: a quarter of the shortest TTL, 10..1000)",
                            [](PoolConfig& c, uint32_t v) { c.reaper_interval_ms = v; });
  override_option<double>(app, later, "--evict-high", "evict above this fraction of slabs in use (default 0.95)",
                          [](PoolConfig& c, double v) { c.pool.watermarks.high = v; });
  override_option<double>(app, later, "--evict-low", "evict down to this fraction of slabs in use (default 0.90)",
                          [](PoolConfig& c, double v) { c.pool.watermarks.low = v; });
}

// NAME=VALUE items of a repeatable flag applied to the named tenants. A name no tenant has becomes
// an entry without a token, which validate_config refuses, naming it.
template <typename F>
void for_each_tenant_item(PoolConfig& c, const std::vector<std::string>& items, F apply) {
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    const std::string name = item.substr(0, eq);
    bool known = false;
    for (Tenant& t : c.tenants)
      if (t.name == name) {
        known = true;
        apply(t, eq != std::string::npos, eq == std::string::npos ? std::string() : item.substr(eq + 1));
      }
    if (!known) c.tenants.push_back(Tenant{name, "", -1});
  }
}

// [[tenant]] and [log].
void add_tenant_and_log_overrides(CLI::App& app, std::vector<Apply>& later) {
  override_option<std::vector<std::string>>(
      app, later, "--tenant", "tenant NAME:TOKEN, repeatable; replaces the file's tenants (default: open auth)",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        c.tenants.clear();
        for (const std::string& t : v) {
          const size_t colon = t.find(':');
          c.tenants.push_back(colon == std::string::npos ? Tenant{t, ""} : Tenant{t.substr(0, colon), t.substr(colon + 1)});
        }
      });
  override_option<std::vector<std::string>>(
      app, later, "--tenant-share",
      "NAME=FRACTION, repeatable: the share of the pool a tenant's pages may hold; over it, it evicts only its own "
      "(default: no share, the whole pool)",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        for_each_tenant_item(c, v, [](Tenant& t, bool given, const std::string& value) {
          char* end = nullptr;
          const double share = given ? std::strtod(value.c_str(), &end) : -1;
          t.share = given && end && *end == '\0' && !value.empty() ? share : -1;  // -1: refused, naming the tenant
        });
      });
  override_option<std::vector<std::string>>(
      app, later, "--tenant-roles",
      "NAME=ROLES, repeatable: the roles a tenant's sessions may take, comma-separated: reader, writer (default both), "
      "admin (cxlkv-admin: no mapping, no pages; default not); a reader's fd and mapping are read-only",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        for_each_tenant_item(c, v, [](Tenant& t, bool given, const std::string& value) {
          if (!given || !parse_roles(value, t)) t.may_read = t.may_write = t.may_admin = false;  // refused, naming it
        });
      });
  override_option<std::vector<std::string>>(
      app, later, "--tenant-partition",
      "NAME=PARTITION, repeatable: the partition a tenant's sessions are handed (default: the region's)",
      [](PoolConfig& c, const std::vector<std::string>& v) {
        for_each_tenant_item(c, v, [](Tenant& t, bool given, const std::string& value) {
          t.partition = given ? value : "(none: give NAME=PARTITION)";  // no partition has it: refused, named
        });
      });
  override_option<std::string>(app, later, "--log-level", "trace, debug, info, warn, error (default info)",
                               [](PoolConfig& c, const std::string& v) { c.log_level = v; });
}

// [cluster]: membership in etcd.
void add_cluster_overrides(CLI::App& app, std::vector<Apply>& later) {
  override_option<std::string>(app, later, "--cluster",
                               "join the cluster etcd://HOST:PORT/NAME: register this node in etcd under a lease "
                               "kept alive (default: a lone node)",
                               [](PoolConfig& c, const std::string& v) { c.cluster_url = v; });
  override_option<std::string>(app, later, "--node-id",
                               "this node's id in the cluster, [A-Za-z0-9._-] (default <hostname>-<region path>)",
                               [](PoolConfig& c, const std::string& v) { c.node_id = v; });
  override_option<std::vector<std::string>>(
      app, later, "--advertise",
      "control endpoint clients reach this node at (unix:PATH, tcp:HOST:PORT), repeatable (default: the listeners)",
      [](PoolConfig& c, const std::vector<std::string>& v) { c.advertise = v; });
  override_option<uint32_t>(app, later, "--cluster-lease-ttl-s",
                            "etcd lease TTL: a node that dies leaves the cluster within it (default 10)",
                            [](PoolConfig& c, uint32_t v) { c.cluster_lease_ttl_s = v; });
  override_option<uint32_t>(app, later, "--chunk-pages",
                            "pages per placement chunk, recorded by the cluster's first node; every node must "
                            "agree (default 16)",
                            [](PoolConfig& c, uint32_t v) { c.chunk_pages = v; });
}

// The file, then the flags over it, then the checks no single source can make alone.
void settle_config(ConfigOutcome& out, const std::string& config_path, const std::vector<Apply>& later, bool format,
                   bool verify) {
  if (!config_path.empty()) {
    if (Status st = read_toml(config_path, out.config); !st) {
      out.exit_now = true, out.exit_code = 2, out.message = st.to_string();
      return;
    }
  }
  for (const Apply& apply : later) apply(out.config);
  out.config.format = format;
  if (verify) out.config.pool.verify_data = true;
  if (static_cast<uint8_t>(out.config.region.backend) > static_cast<uint8_t>(cxl::Backend::kNuma))
    out.exit_now = true, out.exit_code = 2, out.message = "--backend: not one of shm, file, devdax, numa";
  else if (static_cast<uint8_t>(out.config.huge_pages) > static_cast<uint8_t>(cxl::HugePagePolicy::kOff))
    out.exit_now = true, out.exit_code = 2, out.message = "--huge-pages: not one of auto, require, off";
  else if (out.config.region.size == 0 && out.config.region.backend != cxl::Backend::kDevdax)
    out.exit_now = true, out.exit_code = 2, out.message = "--size: not a size like 4GiB";
  else if (Status st = validate_config(out.config); !st)
    out.exit_now = true, out.exit_code = 2, out.message = st.to_string();
}

}  // namespace

Status read_config_text(std::string_view text, PoolConfig& config) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view("config text"));
  } catch (const toml::parse_error& e) {
    return Status(Code::kInvalidArgument, fmt::format("config: {} (line {})", e.description(), e.source().begin.line));
  }
  return read_table(root, config);
}


ConfigOutcome load_config(int argc, char** argv) {
  ConfigOutcome out;
  CLI::App app{"cxlkv-poold: the cxlkv KV-cache pool daemon. Serves one or more partitions (each a region: shm, file, "
               "devdax or numa), each bound to tenants, to clients over a Unix socket and TCP. Settings come from defaults, then --config, then flags. "
               "SIGHUP (or cxlkv-admin reload) reads them again and serves the partitions and tenants new in them."};
  std::vector<Apply> later;
  std::string config_path;
  app.add_option("--config", config_path, "TOML configuration file (see cxlkv-poold.example.toml)")
      ->check(CLI::ExistingFile);
  add_region_overrides(app, later);
  add_server_overrides(app, later);
  add_lease_and_eviction_overrides(app, later);
  add_tenant_and_log_overrides(app, later);
  add_cluster_overrides(app, later);
  bool format = false, verify = false;
  app.add_flag("--format", format, "format the region even if it exists (destroys its pages)");
  app.add_flag("--verify-data", verify, "at recovery, recompute every committed page's data checksum");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream msg;
    out.exit_code = app.exit(e, msg, msg);
    out.exit_now = true;
    out.message = msg.str();
    if (out.exit_code != 0) out.exit_code = 2;
    return out;
  }
  settle_config(out, config_path, later, format, verify);
  return out;
}

}  // namespace cxlkv::pool
