// EtcdClient against a real etcd (testkit/etcd_process.h): keys, prefixes, transactions, leases,
// and an etcd that does not answer.
#include <catch2/catch_test_macros.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "etcd_client.h"
#include "etcd_watch.h"
#include "etcd_process.h"
#include "eventually.h"
#include "node_record.h"

using namespace cxlkv;
using namespace cxlkv::cluster;
using namespace std::chrono_literals;
using testing::eventually;

namespace {

std::unique_ptr<testing::EtcdProcess> start_etcd() {
  auto etcd = testing::EtcdProcess::start();
  if (!etcd) FAIL(etcd.status().to_string());
  return std::move(*etcd);
}


}  // namespace

TEST_CASE("cluster URLs: etcd://HOST:PORT/NAME, and every malformed one named") {
  auto url = parse_cluster_url("etcd://127.0.0.1:2379/serving-1");
  REQUIRE(url.is_ok());
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == 2379);
  CHECK(url->name == "serving-1");
  CHECK(url->key_prefix() == "/cxlkv/serving-1/");
  CHECK(url->to_string() == "etcd://127.0.0.1:2379/serving-1");
  for (const char* bad : {"http://h:1/x", "etcd://h:1", "etcd://h/x", "etcd://h:0/x", "etcd://h:70000/x",
                          "etcd://h:12a/x", "etcd://h:1/", "etcd://h:1/a/b", "etcd://:1/x"}) {
    CAPTURE(bad);
    auto r = parse_cluster_url(bad);
    REQUIRE(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find(bad) != std::string::npos);
  }
}

TEST_CASE("base64 as etcd writes it round-trips any bytes") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(char(i));
  for (size_t n : {0, 1, 2, 3, 4, 255, 256}) {
    const std::string part = bytes.substr(0, n);
    auto back = base64_decode(base64_encode(part));
    REQUIRE(back.is_ok());
    CHECK(*back == part);
  }
  CHECK(base64_encode("/c/n/a") == "L2Mvbi9h");
  CHECK_FALSE(base64_decode("abc").is_ok());
  CHECK_FALSE(base64_decode("a*c=").is_ok());
}

TEST_CASE("keys, prefixes and put_if_absent against a real etcd") {
  auto etcd = start_etcd();
  EtcdClient c = etcd->client();
  const std::string binary_value("\x00\x01\xff value", 9);
  REQUIRE(c.put("/t/nodes/a", binary_value).is_ok());
  REQUIRE(c.put("/t/nodes/b", "B").is_ok());
  REQUIRE(c.put("/t/nodesX", "not under the prefix").is_ok());
  auto a = c.get("/t/nodes/a");
  REQUIRE(a.is_ok());
  REQUIRE(a->has_value());
  CHECK((*a)->value == binary_value);
  auto missing = c.get("/t/nodes/zz");
  REQUIRE(missing.is_ok());
  CHECK_FALSE(missing->has_value());
  auto listed = c.get_prefix("/t/nodes/");
  REQUIRE(listed.is_ok());
  REQUIRE(listed->size() == 2);
  CHECK((*listed)[0].key == "/t/nodes/a");
  CHECK((*listed)[1].key == "/t/nodes/b");
  REQUIRE(c.erase("/t/nodes/a").is_ok());
  CHECK(c.get_prefix("/t/nodes/")->size() == 1);

  auto first = c.put_if_absent("/t/settings", "one");
  REQUIRE(first.is_ok());
  CHECK(*first == "one");
  auto second = c.put_if_absent("/t/settings", "two");
  REQUIRE(second.is_ok());
  CHECK(*second == "one");  // the first writer's value stays
}

TEST_CASE("a key under a lease goes with it: revoked at once, or expired when not kept alive") {
  auto etcd = start_etcd();
  EtcdClient c = etcd->client();
  auto kept = c.grant_lease(2);
  auto dropped = c.grant_lease(2);
  auto revoked = c.grant_lease(30);
  REQUIRE(kept.is_ok());
  REQUIRE(dropped.is_ok());
  REQUIRE(revoked.is_ok());
  REQUIRE(c.put("/l/kept", "k", *kept).is_ok());
  REQUIRE(c.put("/l/dropped", "d", *dropped).is_ok());
  REQUIRE(c.put("/l/revoked", "r", *revoked).is_ok());
  CHECK((*c.get("/l/kept"))->lease == *kept);

  REQUIRE(c.revoke_lease(*revoked).is_ok());
  CHECK_FALSE(c.get("/l/revoked")->has_value());
  CHECK(c.keep_alive(*revoked).status().code() == Code::kNotFound);

  // Kept alive every 500 ms for 4 s (twice the TTL): it stays; the other expires.
  for (int i = 0; i < 8; ++i) {
    auto ttl = c.keep_alive(*kept);
    REQUIRE(ttl.is_ok());
    CHECK(*ttl == 2);
    std::this_thread::sleep_for(500ms);
  }
  CHECK(c.get("/l/kept")->has_value());
  CHECK(eventually([&] { return !c.get("/l/dropped")->has_value(); }, 3s));
  CHECK(c.keep_alive(*dropped).status().code() == Code::kNotFound);
}

TEST_CASE("an etcd that does not answer is an unavailable error naming its address, within the timeout") {
  auto port = testing::free_tcp_port();
  REQUIRE(port.is_ok());
  EtcdClient c("127.0.0.1", *port, 500ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.get("/x");
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  REQUIRE(r.status().code() == Code::kUnavailable);
  CHECK(r.status().message().find(fmt::format("127.0.0.1:{}", *port)) != std::string::npos);
  CHECK(c.grant_lease(5).status().code() == Code::kUnavailable);
  CHECK(c.put("/x", "y").code() == Code::kUnavailable);
}

TEST_CASE("a watch on a prefix calls back at creation and on each change under it, and stops when told") {
  auto etcd = start_etcd();
  EtcdClient c = etcd->client();
  EtcdWatch watch("127.0.0.1", etcd->client_port(), 2s);
  std::atomic<int> changes{0};
  Status ended(Code::kNotFound, "running");
  std::thread t([&] { ended = watch.run("/w/nodes/", [&] { changes.fetch_add(1); }); });
  REQUIRE(eventually([&] { return changes.load() == 1; }, 10s));  // created
  REQUIRE(c.put("/w/nodesX", "beside the prefix").is_ok());
  REQUIRE(c.put("/w/nodes/a", "1").is_ok());
  REQUIRE(eventually([&] { return changes.load() == 2; }, 10s));
  REQUIRE(c.erase("/w/nodes/a").is_ok());
  REQUIRE(eventually([&] { return changes.load() == 3; }, 10s));
  std::this_thread::sleep_for(200ms);
  CHECK(changes.load() == 3);  // the key beside the prefix was never reported
  watch.stop();
  t.join();
  CHECK(ended.is_ok());
}

TEST_CASE("a watch on an etcd that does not answer, or that goes away, ends with an error naming it") {
  auto port = testing::free_tcp_port();
  REQUIRE(port.is_ok());
  EtcdWatch nobody("127.0.0.1", *port, 500ms);
  const Status st = nobody.run("/w/", [] {});
  CHECK(st.code() == Code::kUnavailable);
  CHECK(st.message().find(fmt::format("127.0.0.1:{}", *port)) != std::string::npos);

  auto etcd = start_etcd();
  EtcdWatch watch("127.0.0.1", etcd->client_port(), 2s);
  std::atomic<int> changes{0};
  Status ended(Code::kNotFound, "running");
  std::thread t([&] { ended = watch.run("/w/", [&] { changes.fetch_add(1); }); });
  REQUIRE(eventually([&] { return changes.load() == 1; }, 10s));
  etcd.reset();  // etcd stops: the stream ends
  t.join();
  CHECK(ended.code() == Code::kUnavailable);
}

TEST_CASE("cluster settings: the first node records them, a later one must agree") {
  auto etcd = start_etcd();
  EtcdClient c = etcd->client();
  const ClusterUrl url = *parse_cluster_url(etcd->url("s"));
  CHECK(read_settings(c, url).status().code() == Code::kNotFound);
  auto first = join_settings(c, url, ClusterSettings{8});
  REQUIRE(first.is_ok());
  CHECK(first->chunk_pages == 8);
  CHECK(join_settings(c, url, ClusterSettings{8}).is_ok());
  auto other = join_settings(c, url, ClusterSettings{16});
  REQUIRE(other.status().code() == Code::kMismatch);
  CHECK(other.status().message().find("chunk_pages 16 configured, the cluster records 8") != std::string::npos);
  CHECK(read_settings(c, url)->chunk_pages == 8);
}

TEST_CASE("node records round-trip through JSON; a bad record is named, not fatal to the listing") {
  NodeRecord n{"mem-1", 0xfedcba9876543210ull, {"unix:/tmp/a.sock", "tcp:10.0.0.1:7000"},
               {{"shm:/pool", "deepseek-v3.2", 8, 1u << 20, 100, 40}}};
  auto back = NodeRecord::from_json(n.to_json());
  REQUIRE(back.is_ok());
  CHECK(back->node_id == n.node_id);
  CHECK(back->epoch == n.epoch);
  CHECK(back->endpoints == n.endpoints);
  REQUIRE(back->regions.size() == 1);
  CHECK(back->capacity_bytes() == 100ull << 20);
  CHECK(back->free_bytes() == 40ull << 20);
  CHECK_FALSE(back->draining);
  CHECK(n.to_json().find("draining") == std::string::npos);  // a serving node's record is as before drains
  NodeRecord drained = n;
  drained.draining = true;
  CHECK(NodeRecord::from_json(drained.to_json())->draining);
  CHECK(NodeRecord::from_json("{\"version\": 1}").status().code() == Code::kCorrupt);
  CHECK(NodeRecord::from_json("not json").status().code() == Code::kCorrupt);

  auto etcd = start_etcd();
  EtcdClient c = etcd->client();
  const ClusterUrl url = *parse_cluster_url(etcd->url("r"));
  REQUIRE(c.put(node_key(url, "mem-1"), n.to_json()).is_ok());
  REQUIRE(c.put(node_key(url, "broken"), "{").is_ok());
  std::vector<std::string> skipped;
  auto nodes = list_nodes(c, url, &skipped);
  REQUIRE(nodes.is_ok());
  REQUIRE(nodes->size() == 1);
  CHECK((*nodes)[0].node_id == "mem-1");
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].find("broken") != std::string::npos);
}
