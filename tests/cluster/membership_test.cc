// Membership in etcd: real cxlkv-poold binaries started with --cluster against a real etcd
// (testkit/etcd_process.h). Nodes register with their capacity, endpoints and an epoch per start;
// a node killed with -9 leaves within its lease TTL and comes back with a new epoch and its pages;
// a clean stop leaves at once; with etcd gone the daemons serve on and register again once it is
// back, even when it lost every key.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <set>
#include <chrono>
#include <map>
#include <numeric>
#include <thread>

#include "cxlkv/client.h"
#include "etcd_process.h"
#include "eventually.h"
#include "http_get.h"
#include "node_record.h"
#include "poold_process.h"
#include "prefix_io.h"

using namespace cxlkv;
using namespace cxlkv::cluster;
using namespace std::chrono_literals;
using testing::eventually;
using testing::PooldProcess;

namespace {

constexpr uint32_t kLeaseTtlS = 2;
const char* kLayout = "custom:name=dsv32-3l,layers=3,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";

std::unique_ptr<testing::EtcdProcess> start_etcd() {
  auto etcd = testing::EtcdProcess::start();
  INFO(etcd.status().to_string());
  REQUIRE(etcd.is_ok());
  return std::move(*etcd);
}

// One memory node: a daemon in the raw form (its log kept) over a private shm region that
// outlives the daemon's restarts and is removed with this object.
struct Node {
  std::string id;
  cxl::RegionSpec region;
  std::unique_ptr<PooldProcess> daemon;

  Node(const std::string& cluster_url, const std::string& node_id, std::vector<std::string> extra = {})
      : id(node_id), region{cxl::Backend::kShm, testing::unique_name(node_id, true), -1, 0} {
    const std::string socket = testing::unique_name(node_id + ".sock");
    std::vector<std::string> args{"--backend", "shm", "--path", region.path, "--size", "64MiB",
                                  "--layout", kLayout, "--socket", socket, "--metrics-port", "0",
                                  "--cluster", cluster_url, "--node-id", node_id,
                                  "--cluster-lease-ttl-s", std::to_string(kLeaseTtlS), "--log-level", "info",
                                  "--huge-pages", "off"};  // the region stays the shm object named here
    args.insert(args.end(), extra.begin(), extra.end());
    daemon = std::make_unique<PooldProcess>(std::move(args), socket);
  }
  ~Node() {
    daemon.reset();
    (void)cxl::Region::remove(region);
  }
  size_t log_count(const std::string& what) const {
    const std::string log = daemon->log();
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  }
};

std::map<std::string, NodeRecord> registered(EtcdClient& etcd, const ClusterUrl& url) {
  std::map<std::string, NodeRecord> out;
  auto nodes = list_nodes(etcd, url);
  if (nodes)
    for (NodeRecord& n : *nodes) out[n.node_id] = std::move(n);
  return out;
}


std::unique_ptr<Client> connect(const Node& n) {
  ClientOptions o;
  o.endpoint = n.daemon->unix_endpoint();
  o.tenant = "acme";
  o.token = "t";
  o.model = "m";
  auto c = Client::connect(o);
  INFO(c.status().to_string());
  REQUIRE(c.is_ok());
  return std::move(*c);
}

std::vector<PageKey> prefix_keys(Client& c, uint32_t pages, int32_t salt) {
  std::vector<int32_t> tokens(size_t{pages} * 64);
  std::iota(tokens.begin(), tokens.end(), salt * 100000);
  return c.page_keys(tokens);
}

}  // namespace

TEST_CASE("three daemons register with their capacity, endpoints and an epoch each; the cluster's chunk size is one") {
  auto etcd = start_etcd();
  const ClusterUrl url = *parse_cluster_url(etcd->url("three"));
  EtcdClient c = etcd->client();
  std::vector<std::unique_ptr<Node>> nodes;
  for (const char* id : {"mem-a", "mem-b", "mem-c"}) {
    nodes.push_back(std::make_unique<Node>(url.to_string(), id));
    REQUIRE(nodes.back()->daemon->start());
  }
  REQUIRE(eventually([&] { return registered(c, url).size() == 3; }, 10s));
  auto seen = registered(c, url);
  std::set<uint64_t> epochs;
  for (const auto& n : nodes) {
    const NodeRecord& r = seen.at(n->id);
    CHECK(r.endpoints == std::vector<std::string>{n->daemon->unix_endpoint()});
    REQUIRE(r.regions.size() == 1);
    CHECK(r.regions[0].name == "shm:" + n->region.path);
    CHECK(r.regions[0].layout == kLayout);
    CHECK(r.regions[0].slab_pages == 1);
    CHECK(r.regions[0].slabs_total > 10);
    CHECK(r.regions[0].slabs_free == r.regions[0].slabs_total);
    CHECK(r.capacity_bytes() > 32ull << 20);
    epochs.insert(r.epoch);
  }
  CHECK(epochs.size() == 3);
  CHECK(read_settings(c, url)->chunk_pages == 16);

  // Free space is published as pages are written.
  auto client = connect(*nodes[0]);
  REQUIRE(testing::write_prefix(*client, prefix_keys(*client, 5, 1)).is_ok());
  const uint64_t total = seen.at("mem-a").regions[0].slabs_total;
  CHECK(eventually([&] { return registered(c, url).at("mem-a").regions[0].slabs_free == total - 5; }, 5s));

  // A node configured with another chunk size is refused at start, naming both.
  Node odd(url.to_string(), "mem-odd", {"--chunk-pages", "8"});
  REQUIRE(odd.daemon->launch());
  CHECK(odd.daemon->wait_exit(10s) == 2);
  CHECK(odd.log_count("chunk_pages 8 configured, the cluster records 16") == 1);
  CHECK(registered(c, url).count("mem-odd") == 0);
}

TEST_CASE("a node killed with -9 leaves within its lease TTL; restarted, it is back with a new epoch and its pages") {
  auto etcd = start_etcd();
  const ClusterUrl url = *parse_cluster_url(etcd->url("kill"));
  EtcdClient c = etcd->client();
  Node a(url.to_string(), "mem-a"), b(url.to_string(), "mem-b");
  REQUIRE(a.daemon->start());
  REQUIRE(b.daemon->start());
  REQUIRE(eventually([&] { return registered(c, url).size() == 2; }, 10s));
  const uint64_t old_epoch = registered(c, url).at("mem-b").epoch;
  std::vector<PageKey> keys;
  {
    auto client = connect(b);
    keys = prefix_keys(*client, 4, 2);
    REQUIRE(testing::write_prefix(*client, keys).is_ok());
  }

  b.daemon->kill9();
  // Gone within the TTL, plus etcd's expiry check and slack for a loaded machine (a bound, not a timing).
  REQUIRE(eventually([&] { return registered(c, url).count("mem-b") == 0; }, std::chrono::seconds(kLeaseTtlS + 6)));
  CHECK(registered(c, url).count("mem-a") == 1);             // the other node stays

  REQUIRE(b.daemon->start());
  REQUIRE(eventually([&] { return registered(c, url).count("mem-b") == 1; }, 10s));
  CHECK(registered(c, url).at("mem-b").epoch != old_epoch);
  auto client = connect(b);
  auto lease = client->lookup(keys);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == 4);  // recovered from the region
}

TEST_CASE("a node stopped cleanly leaves the cluster at once") {
  auto etcd = start_etcd();
  const ClusterUrl url = *parse_cluster_url(etcd->url("stop"));
  EtcdClient c = etcd->client();
  Node a(url.to_string(), "mem-a");
  REQUIRE(a.daemon->start());
  REQUIRE(eventually([&] { return registered(c, url).size() == 1; }, 10s));
  REQUIRE(a.daemon->stop() == 0);
  CHECK(registered(c, url).empty());  // revoked before the daemon exited, not at the TTL
  CHECK(a.log_count("left (lease revoked)") == 1);
}

TEST_CASE("with etcd gone the daemon serves on and warns once; it registers again when etcd returns, even empty") {
  auto etcd = start_etcd();
  const ClusterUrl url = *parse_cluster_url(etcd->url("outage"));
  const uint16_t metrics = *testing::free_tcp_port();
  Node a(url.to_string(), "mem-a", {"--metrics-port", std::to_string(metrics)});
  auto readyz = [&] { return testing::http_get(metrics, "/readyz"); };
  REQUIRE(a.daemon->start());
  {
    EtcdClient c = etcd->client();
    REQUIRE(eventually([&] { return registered(c, url).size() == 1; }, 10s));
  }
  CHECK(eventually([&] { return readyz().find("200 OK") != std::string::npos; }, 5s));
  // Prometheus shows the node in the cluster (and, below, out of it while etcd is gone).
  const std::string registered_line =
      fmt::format("cxlkv_cluster_registered{{cluster=\"{}\",node=\"mem-a\"}} ", url.to_string());
  auto metric = [&] { return testing::http_get(metrics, "/metrics"); };
  CHECK(eventually([&] { return metric().find(registered_line + "1") != std::string::npos; }, 5s));
  const uint64_t epoch = [&] {
    EtcdClient c = etcd->client();
    return registered(c, url).at("mem-a").epoch;
  }();
  auto client = connect(a);
  const auto keys = prefix_keys(*client, 3, 3);
  REQUIRE(testing::write_prefix(*client, keys).is_ok());

  etcd->kill9();
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtlS * 2));  // several keepalives fail meanwhile
  {
    auto lease = client->lookup(keys);  // the data plane and the control plane do not need etcd
    REQUIRE(lease.is_ok());
    CHECK(lease->pages() == 3);
  }
  CHECK(a.log_count("serving on, and registering again once etcd answers") == 1);
  const std::string not_ready = readyz();  // serving, but not in the cluster
  CHECK(not_ready.find("503") != std::string::npos);
  CHECK(not_ready.find("not registered in cluster " + url.to_string()) != std::string::npos);
  CHECK(metric().find(registered_line + "0") != std::string::npos);
  CHECK(metric().find(fmt::format("epoch=\"{:016x}\"", epoch)) != std::string::npos);

  REQUIRE(etcd->restart().is_ok());
  EtcdClient c = etcd->client();
  REQUIRE(eventually([&] { return a.log_count("etcd answers again") == 1; }, 10s));
  REQUIRE(eventually([&] { return registered(c, url).count("mem-a") == 1; }, 10s));
  CHECK(registered(c, url).at("mem-a").epoch == epoch);  // the same run of the daemon
  CHECK(eventually([&] { return readyz().find("200 OK") != std::string::npos; }, 5s));

  // etcd comes back having lost everything: the node's lease is unknown, so it registers anew and
  // records the cluster's settings again.
  REQUIRE(etcd->restart(/*wipe=*/true).is_ok());
  EtcdClient fresh = etcd->client();
  REQUIRE(eventually([&] { return registered(fresh, url).count("mem-a") == 1; }, std::chrono::seconds(kLeaseTtlS + 8)));
  CHECK(registered(fresh, url).at("mem-a").epoch == epoch);
  CHECK(read_settings(fresh, url).is_ok());
}
