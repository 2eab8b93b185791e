// One client over many nodes: Client::connect("etcd://...") against a real etcd and three real
// cxlkv-poold binaries. Prefixes are placed over the nodes in chunks, read back byte-exact through
// leases that span nodes (gather and bulk fetch), a removed chunk ends the prefix there, and a node
// killed with -9 costs only the chunks it held (misses, quickly) until it is back. The prefix
// directory the daemons publish answers a router: how much of a prompt is cached, where.
#include <catch2/catch_test_macros.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <thread>

#include "cxlkv/admin.h"
#include "cxlkv/client.h"
#include "cxlkv/route.h"
#include "etcd_process.h"
#include "eventually.h"
#include "node_record.h"
#include "placement.h"
#include "poold_process.h"
#include "prefix_io.h"
#include "temp_region.h"
#include "tls_files.h"

using namespace cxlkv;
using namespace std::chrono_literals;
using testing::eventually;
using testing::PooldProcess;

namespace {

constexpr uint32_t kChunkPages = 4;
const char* kLayout = "custom:name=dsv32-3l,layers=3,page_tokens=64,stream=latent/656/704/sparse,stream=indexer/132/132/bulk";

struct Cluster {
  std::unique_ptr<testing::EtcdProcess> etcd;
  std::string url;
  std::vector<std::unique_ptr<PooldProcess>> nodes;
  std::vector<std::string> ids;
  bool admin = false;

  // admin: the nodes know tenants (acme:t, and ops:adm of the admin role) instead of open auth.
  // node1_extra: more flags for mem-1 (another partition, say).
  explicit Cluster(bool with_admin = false, std::vector<std::string> node1_extra = {}) : admin(with_admin) {
    auto e = testing::EtcdProcess::start();
    INFO(e.status().to_string());
    REQUIRE(e.is_ok());
    etcd = std::move(*e);
    url = etcd->url("c3");
    for (int i = 0; i < 3; ++i) {
      ids.push_back(fmt::format("mem-{}", i));
      nodes.push_back(start_node(ids.back(), i == 1 ? node1_extra : std::vector<std::string>{}));
    }
    auto c = etcd->client();
    const auto parsed = *cluster::parse_cluster_url(url);
    REQUIRE(eventually([&] { auto n = cluster::list_nodes(c, parsed); return n && n->size() == 3; }, 10s));
  }

  std::unique_ptr<PooldProcess> start_node(const std::string& id, const std::vector<std::string>& extra = {}) {
    testing::PooldOptions o;
    o.layout = kLayout;
    o.size = "96MiB";
    o.extra = {"--cluster", url, "--node-id", id, "--chunk-pages", std::to_string(kChunkPages),
               "--cluster-lease-ttl-s", "2"};
    if (admin) {
      o.tenants = {"acme:t", "ops:adm"};
      o.extra.insert(o.extra.end(), {"--tenant-roles", "ops=admin"});
    }
    o.extra.insert(o.extra.end(), extra.begin(), extra.end());
    auto p = PooldProcess::start(o);
    INFO(p.status().to_string());
    REQUIRE(p.is_ok());
    return std::move(*p);
  }

  std::unique_ptr<Client> client(int poll_ms = 5000, const std::string& model = "m") {
    ClientOptions o;
    o.cluster_poll_ms = poll_ms;
    o.endpoint = url;
    o.tenant = "acme";
    o.token = "t";
    o.model = model;
    o.io_timeout_ms = 2000;
    o.cluster_directory_max_age_ms = 500;  // the directory again within the tests' waits
    auto c = Client::connect(o);
    INFO(c.status().to_string());
    REQUIRE(c.is_ok());
    return std::move(*c);
  }

  // The nodes as every client places chunks over them (the registered records, capacity-weighted).
  std::vector<cluster::PlacementNode> placement() {
    auto c = etcd->client();
    auto n = cluster::list_nodes(c, *cluster::parse_cluster_url(url));
    REQUIRE(n.is_ok());
    std::vector<cluster::PlacementNode> out;
    for (const auto& r : *n) out.push_back({r.node_id, r.capacity_bytes()});
    return out;
  }
};

std::vector<PageKey> prefix(Client& c, uint32_t pages, int32_t salt) {
  std::vector<int32_t> tokens(size_t{pages} * 64);
  std::iota(tokens.begin(), tokens.end(), salt * 1000000);
  return c.page_keys(tokens);
}

// Every stream and layer of the lease: a random gather (with -1 rows) and a bulk fetch, checked
// against what the writer wrote.
Status read_back(Client& c, const ReadLease& lease, const std::vector<PageKey>& keys, uint32_t seed) {
  std::mt19937 rng(seed);
  for (int s = 0; s < c.layout().stream_count(); ++s) {
    const uint32_t entry = c.layout().stream(s).entry_bytes;
    for (uint32_t l = 0; l < c.layout().layers(); ++l) {
      std::vector<int32_t> idx(300);
      for (auto& i : idx) i = int32_t(rng() % uint32_t(lease.prefix_tokens() + 1)) - 1;
      std::vector<uint8_t> rows(idx.size() * entry, 0xee);
      if (Status st = lease.gather_topk(s, l, idx.data(), int(idx.size()), rows.data()); !st) return st;
      if (Status st = testing::verify_rows(keys, 64, s, l, entry, idx.data(), int(idx.size()), rows.data(), 0xee); !st)
        return st;
      std::vector<uint8_t> all(size_t(lease.prefix_tokens()) * entry);
      if (Status st = lease.fetch_pages(s, l, 0, lease.pages(), all.data()); !st) return st;
      std::vector<int32_t> every(size_t(lease.prefix_tokens()));
      std::iota(every.begin(), every.end(), 0);
      if (Status st = testing::verify_rows(keys, 64, s, l, entry, every.data(), int(every.size()), all.data(), 0); !st)
        return st;
    }
  }
  return Status::ok();
}

// Reserves `keys` over the cluster and writes every page, leaving the lease open (uncommitted).
WriteLease write_uncommitted(Client& c, const std::vector<PageKey>& keys) {
  auto lease = c.reserve(PageKey{}, keys);
  INFO(lease.status().to_string());
  REQUIRE(lease.is_ok());
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < lease->pages(); ++p)
    for (int s = 0; s < c.layout().stream_count(); ++s)
      for (uint32_t l = 0; l < c.layout().layers(); ++l) {
        testing::fill_run(run, keys[p], s, l, c.page_tokens(), c.layout().stream(s).entry_bytes);
        REQUIRE(c.write_entries(*lease, p, s, l, run.data(), c.page_tokens()).is_ok());
      }
  return std::move(*lease);
}

// Pages of `keys` a lookup can find while the node `down` holds nothing: the chunks before its first.
uint32_t pages_before_node(const std::vector<PageKey>& keys, const std::vector<cluster::PlacementNode>& nodes,
                           const std::string& down) {
  for (const auto& chunk : cluster::place_prefix(keys, kChunkPages, nodes))
    if (nodes[size_t(chunk.node)].node_id == down) return chunk.first_page;
  return uint32_t(keys.size());
}

}  // namespace

TEST_CASE("a client over three nodes spreads prefixes over them and reads them back byte-exact") {
  Cluster cl;
  auto c = cl.client();
  CHECK(c->cluster_nodes() == 3);
  CHECK(c->chunk_pages() == kChunkPages);
  std::vector<std::vector<PageKey>> prefixes;
  for (int p = 0; p < 8; ++p) {
    prefixes.push_back(prefix(*c, 40, p + 1));
    auto written = testing::write_prefix(*c, prefixes.back());
    INFO(written.status().to_string());
    REQUIRE(written.is_ok());
    CHECK(*written == 40);
  }
  // Every node holds a share, and the shares add up.
  uint64_t total = 0;
  for (auto& node : cl.nodes) {
    ClientOptions o;
    o.endpoint = node->unix_endpoint(), o.tenant = "acme", o.token = "t", o.model = "m";
    auto one = Client::connect(o);
    REQUIRE(one.is_ok());
    const uint64_t committed = (*one)->stats()->pages_committed;
    CHECK(committed >= 40);  // 8 x 40 pages in chunks of 4 over 3 equal nodes: about 107 each
    total += committed;
  }
  CHECK(total == 8 * 40);
  CHECK(c->stats()->pages_committed == 8 * 40);

  int spanning = 0;
  for (size_t p = 0; p < prefixes.size(); ++p) {
    auto lease = c->lookup(prefixes[p]);
    REQUIRE(lease.is_ok());
    REQUIRE(lease->pages() == 40);
    spanning += lease->nodes() > 1;
    INFO("prefix " << p);
    Status st = read_back(*c, *lease, prefixes[p], uint32_t(p));
    INFO(st.to_string());
    CHECK(st.is_ok());
    REQUIRE(lease->renew().is_ok());
    REQUIRE(lease->release().is_ok());
  }
  CHECK(spanning == 8);  // 10 chunks each: every prefix spans nodes

  // A second client (another process's view of the same cluster) finds the same pages.
  auto other = cl.client();
  auto again = other->lookup(prefixes[3]);
  REQUIRE(again.is_ok());
  CHECK(again->pages() == 40);
  CHECK(read_back(*other, *again, prefixes[3], 99).is_ok());

  // A writer of a prefix already cached writes nothing; a bad index is refused across nodes too.
  CHECK(*testing::write_prefix(*c, prefixes[0]) == 0);
  const int32_t past[] = {0, 40 * 64};
  std::vector<uint8_t> rows(2 * 656);
  CHECK(again->gather_topk(0, 0, past, 2, rows.data()).code() == Code::kInvalidArgument);
}

TEST_CASE("over the cluster, a prefix ends at its first chunk not cached: removed pages end it there") {
  Cluster cl;
  auto c = cl.client();
  const auto keys = prefix(*c, 24, 7);
  REQUIRE(testing::write_prefix(*c, keys).is_ok());
  const auto chunks = cluster::place_prefix(keys, kChunkPages, cl.placement());
  REQUIRE(chunks.size() >= 3);
  const cluster::ChunkPlacement third = chunks[2];
  const std::vector<PageKey> third_chunk(keys.begin() + third.first_page,
                                         keys.begin() + third.first_page + third.pages);
  REQUIRE(c->remove(third_chunk).value() == third.pages);
  auto lease = c->lookup(keys);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == third.first_page);
  CHECK(read_back(*c, *lease, keys, 5).is_ok());
  (void)lease->release();
  // Written again, the prefix is whole.
  REQUIRE(testing::write_prefix(*c, keys).value() == third.pages);
  CHECK(c->lookup(keys)->pages() == 24);
}

TEST_CASE("over the cluster, a prefix written in parts (each naming its parent) is found whole from the root") {
  Cluster cl;
  auto c = cl.client();
  const auto keys = prefix(*c, 60, 11);
  // Cut where no chunk starts, so each later part's first run continues a chunk of the part before.
  std::vector<size_t> cuts{0};
  for (size_t i = 5; i < keys.size() && cuts.size() < 4; ++i)
    if (!cluster::starts_chunk(keys[i], kChunkPages) && i >= cuts.back() + 7) cuts.push_back(i);
  cuts.push_back(keys.size());
  REQUIRE(cuts.size() == 5);
  for (size_t part = 0; part + 1 < cuts.size(); ++part) {
    const std::vector<PageKey> mine(keys.begin() + cuts[part], keys.begin() + cuts[part + 1]);
    const PageKey parent = cuts[part] == 0 ? PageKey{} : keys[cuts[part] - 1];
    auto written = testing::write_prefix(*c, mine, parent);
    INFO(written.status().to_string());
    REQUIRE(written.value() == mine.size());
  }
  auto lease = c->lookup(keys);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == 60);
  CHECK(lease->nodes() > 1);
  CHECK(read_back(*c, *lease, keys, 3).is_ok());
  (void)lease->release();
  // Each page sits where a lookup from the root places it: the prefix's chunks' nodes hold them.
  const auto nodes = cl.placement();
  for (const auto& chunk : cluster::place_prefix(keys, kChunkPages, nodes)) {
    ClientOptions o;
    const auto at = std::find(cl.ids.begin(), cl.ids.end(), nodes[size_t(chunk.node)].node_id) - cl.ids.begin();
    o.endpoint = cl.nodes[size_t(at)]->unix_endpoint(), o.tenant = "acme", o.token = "t", o.model = "m";
    auto one = Client::connect(o);
    REQUIRE(one.is_ok());
    const std::vector<PageKey> upto(keys.begin(), keys.begin() + chunk.first_page + chunk.pages);
    auto on_node = (*one)->lookup(std::vector<PageKey>(upto.begin() + chunk.first_page, upto.end()));
    REQUIRE(on_node.is_ok());
    INFO("chunk at page " << chunk.first_page);
    CHECK(on_node->pages() == chunk.pages);
  }
}

TEST_CASE("a node killed with -9 costs only its chunks, as quick misses; back again, it serves them") {
  Cluster cl;
  auto c = cl.client();
  std::vector<std::vector<PageKey>> prefixes;
  for (int p = 0; p < 6; ++p) {
    prefixes.push_back(prefix(*c, 32, 20 + p));
    REQUIRE(testing::write_prefix(*c, prefixes.back()).is_ok());
  }
  const auto placement = cl.placement();
  const std::string down = cl.ids[1];
  cl.nodes[1]->kill9();

  uint32_t whole = 0;
  for (size_t p = 0; p < prefixes.size(); ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    auto lease = c->lookup(prefixes[p]);
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(lease.is_ok());
    CHECK(took < 2s);  // well inside the I/O timeout: a dead Unix peer answers at once
    CHECK(lease->pages() == pages_before_node(prefixes[p], placement, down));
    whole += lease->pages() == 32;
    if (lease->pages() > 0) CHECK(read_back(*c, *lease, prefixes[p], uint32_t(p)).is_ok());
  }
  // A reserve that needs the dead node names it.
  const auto fresh = prefix(*c, 32, 90);
  auto r = c->reserve(PageKey{}, fresh);
  if (pages_before_node(fresh, placement, down) < 32) {
    REQUIRE(r.status().code() == Code::kUnavailable);
    CHECK(r.status().message().find(down) != std::string::npos);
  }

  REQUIRE(cl.nodes[1]->start());  // the same region: it recovers its pages, registers a new epoch
  for (size_t p = 0; p < prefixes.size(); ++p) {
    INFO("prefix " << p);
    REQUIRE(eventually([&] { auto l = c->lookup(prefixes[p]); return l && l->pages() == 32; }, 15s));
    auto lease = c->lookup(prefixes[p]);
    CHECK(read_back(*c, *lease, prefixes[p], uint32_t(p) + 50).is_ok());
  }
  INFO("prefixes whole while the node was down: " << whole);
}

TEST_CASE("with etcd stopped the client keeps reading and writing on the membership it last saw") {
  Cluster cl;
  auto c = cl.client();
  const auto before = prefix(*c, 16, 40);
  REQUIRE(testing::write_prefix(*c, before).is_ok());
  cl.etcd->kill9();
  std::this_thread::sleep_for(2500ms);  // refreshes fail meanwhile; the last membership stays in use
  CHECK(c->cluster_nodes() == 3);
  auto lease = c->lookup(before);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == 16);
  CHECK(read_back(*c, *lease, before, 1).is_ok());
  const auto during = prefix(*c, 16, 41);
  REQUIRE(testing::write_prefix(*c, during).value() == 16);
  REQUIRE(cl.etcd->restart().is_ok());
  auto after = c->lookup(during);
  REQUIRE(after.is_ok());
  CHECK(after->pages() == 16);
  CHECK(read_back(*c, *after, during, 2).is_ok());
}

TEST_CASE("a client hears nodes join and leave through its etcd watch, with no poll in between") {
  Cluster cl;
  auto c = cl.client(/*poll_ms=*/600000);  // the poll never comes within this test: only the watch can tell
  REQUIRE(c->cluster_nodes() == 3);
  std::vector<std::vector<PageKey>> before;
  for (int p = 0; p < 8; ++p) {
    before.push_back(prefix(*c, 40, 200 + p));
    REQUIRE(testing::write_prefix(*c, before.back()).is_ok());
  }
  auto fourth = cl.start_node("mem-3");
  CHECK(eventually([&] { return c->cluster_nodes() == 4; }, 10s));
  // Prefixes written before it joined: chunks now placed on mem-3 are still where they were
  // written, and the client finds them there through the prefix directory (the daemons publish
  // within 2 s): every prefix whole and byte-exact.
  uint32_t moved_placement = 0;
  const auto placement = cl.placement();
  for (const auto& keys : before)
    for (const auto& chunk : cluster::place_prefix(keys, kChunkPages, placement))
      moved_placement += placement[size_t(chunk.node)].node_id == "mem-3";
  CHECK(moved_placement > 0);  // 8 x 10 chunks, a quarter of them placed on mem-3 now
  REQUIRE(eventually([&] {
    for (const auto& keys : before)
      if (auto l = c->lookup(keys); !l || l->pages() != keys.size()) return false;
    return true;
  }, 10s));
  for (size_t p = 0; p < before.size(); ++p) {
    auto l = c->lookup(before[p]);
    REQUIRE(l.is_ok());
    INFO("prefix " << p);
    CHECK(read_back(*c, *l, before[p], uint32_t(200 + p)).is_ok());
  }
  // With the directory turned off, a client finds some only up to their first chunk placed on
  // mem-3 now, however long it asks (one with it on has them whole within a read: above).
  ClientOptions off;
  off.endpoint = cl.url, off.tenant = "acme", off.token = "t", off.model = "m";
  off.cluster_directory_max_age_ms = 0;
  auto blind = Client::connect(off);
  REQUIRE(blind.is_ok());
  uint32_t short_prefixes = 0;
  for (const auto until = std::chrono::steady_clock::now() + 2s; std::chrono::steady_clock::now() < until;) {
    short_prefixes = 0;
    for (const auto& keys : before) {
      auto l = (*blind)->lookup(keys);
      REQUIRE(l.is_ok());
      short_prefixes += l->pages() < keys.size();
    }
    std::this_thread::sleep_for(100ms);
  }
  CHECK(short_prefixes > 0);
  // The new node takes its share of new prefixes at once.
  bool placed_on_fourth = false;
  for (int p = 0; p < 12 && !placed_on_fourth; ++p) {
    const auto keys = prefix(*c, 16, 300 + p);
    REQUIRE(testing::write_prefix(*c, keys).is_ok());
    for (const auto& chunk : cluster::place_prefix(keys, kChunkPages, cl.placement()))
      placed_on_fourth |= cl.placement()[size_t(chunk.node)].node_id == "mem-3";
  }
  CHECK(placed_on_fourth);
  ClientOptions o;
  o.endpoint = fourth->unix_endpoint(), o.tenant = "acme", o.token = "t", o.model = "m";
  CHECK((*Client::connect(o))->stats()->pages_committed > 0);
  // A clean stop revokes its lease: the record goes, and the client hears it.
  REQUIRE(fourth->shutdown().is_ok());
  CHECK(eventually([&] { return c->cluster_nodes() == 3; }, 10s));
}

TEST_CASE("the prefix directory tells a router how much of a prompt the nodes hold, where, and whose workers are near") {
  Cluster cl;
  auto c = cl.client();
  std::vector<std::vector<PageKey>> prefixes;
  for (int32_t p = 0; p < 3; ++p) {
    prefixes.push_back(prefix(*c, 40, 60 + p));
    REQUIRE(testing::write_prefix(*c, prefixes.back()).is_ok());
  }
  const auto placement = cl.placement();
  const uint64_t ns = c->info().namespace_id;
  const std::vector<RouteWorker> workers = {
      {"near-0", {{cl.ids[0], 1.0}}}, {"near-1-2", {{cl.ids[1], 1.0}, {cl.ids[2], 0.5}}}, {"nowhere", {}}};
  // Where the chunks of prefix p are, by node, as placement put them.
  auto chunks_by_node = [&](const std::vector<PageKey>& keys) {
    std::map<std::string, uint32_t> out;
    for (const auto& chunk : cluster::place_prefix(keys, kChunkPages, placement))
      out[placement[size_t(chunk.node)].node_id] += chunk.pages;
    return out;
  };

  // The daemons publish within their directory interval (2 s): every prefix found whole.
  for (size_t p = 0; p < prefixes.size(); ++p) {
    Result<RouteAnswer> a = Status(Code::kNotFound, "not asked yet");
    REQUIRE(eventually([&] {
      a = route(cl.url, ns, prefixes[p], workers);
      return a.is_ok() && a->cached_pages == 40;
    }, 15s));
    CHECK(a->prefix_pages == 40);
    const auto want = chunks_by_node(prefixes[p]);
    CHECK(a->node_pages == want);
    auto pages_on = [&](const std::string& id) { return want.count(id) ? double(want.at(id)) : 0.0; };
    std::map<std::string, double> score = {{"near-0", pages_on(cl.ids[0])},
                                           {"near-1-2", pages_on(cl.ids[1]) + 0.5 * pages_on(cl.ids[2])},
                                           {"nowhere", 0.0}};
    REQUIRE(a->workers.size() == 3);
    CHECK(a->workers.back().name == "nowhere");
    for (const auto& w : a->workers) CHECK(w.score == score.at(w.name));
    CHECK(a->workers[0].score >= a->workers[1].score);
  }

  // Another namespace, and an unknown prompt: nothing cached.
  auto other = route(cl.url, namespace_id("acme", "other-model"), prefixes[0], workers);
  REQUIRE(other.is_ok());
  CHECK(other->cached_pages == 0);
  const auto unknown = prefix(*c, 10, 99);
  CHECK(route(cl.url, ns, unknown, workers)->cached_pages == 0);

  // A PrefixRouter keeps what it read: many routes, one etcd read per namespace while fresh.
  auto kept = PrefixRouter::open(cl.url, {2s, 600s});
  REQUIRE(kept.is_ok());
  for (int i = 0; i < 20; ++i) {
    auto a = (*kept)->route(ns, prefixes[i % 3], workers);
    REQUIRE(a.is_ok());
    CHECK(a->cached_pages == 40);
  }
  CHECK((*kept)->directory_reads() == 1);
  auto fresh = PrefixRouter::open(cl.url, {2s, 300ms});
  REQUIRE(fresh.is_ok());
  CHECK((*fresh)->route(ns, prefixes[1], workers)->cached_pages == 40);  // read before the cut
  CHECK(PrefixRouter::open(cl.url, {2s, -1ms}).status().code() == Code::kInvalidArgument);
  CHECK(PrefixRouter::open("tcp:127.0.0.1:1", {}).status().code() == Code::kInvalidArgument);

  // Removed pages leave the directory at the next publish: the answer ends at the first chunk gone.
  const auto chunks = cluster::place_prefix(prefixes[1], kChunkPages, placement);
  REQUIRE(chunks.size() >= 3);
  const auto& cut = chunks[chunks.size() / 2];
  REQUIRE(c->remove(std::span(prefixes[1]).subspan(cut.first_page)).is_ok());
  CHECK(eventually([&] {
    auto a = route(cl.url, ns, prefixes[1], workers);
    return a.is_ok() && a->cached_pages == cut.first_page;
  }, 15s));
  // A router within max_age still answers from what it read (stale: a slower hit, never a wrong
  // byte); one with a short max_age reads again and sees the cut.
  CHECK((*kept)->route(ns, prefixes[1], workers)->cached_pages == 40);
  CHECK((*kept)->directory_reads() == 1);
  CHECK(eventually([&] {
    auto a = (*fresh)->route(ns, prefixes[1], workers);
    return a.is_ok() && a->cached_pages == cut.first_page;
  }, 15s));
  CHECK((*fresh)->directory_reads() >= 2);  // read again after its max_age

  // A node killed with -9 takes its summaries with its lease: routes stop at its first chunk.
  const std::string down = cl.ids[2];
  cl.nodes[2]->kill9();
  CHECK(eventually([&] {
    auto a = route(cl.url, ns, prefixes[0], workers);
    return a.is_ok() && a->cached_pages == pages_before_node(prefixes[0], placement, down) &&
           a->node_pages.count(down) == 0;
  }, 15s));

  // Bad input: an endpoint that is not etcd, and an etcd that does not answer.
  auto bad = route("unix:/tmp/x.sock", ns, prefixes[0], workers);
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  auto port = testing::free_tcp_port();
  REQUIRE(port.is_ok());
  auto gone = route(fmt::format("etcd://127.0.0.1:{}/c3", *port), ns, prefixes[0], workers, 500ms);
  REQUIRE_FALSE(gone.is_ok());
  CHECK(gone.status().code() == Code::kUnavailable);
}

TEST_CASE("nodes on TLS: a client with the CA writes and reads over them; a plain-TCP node is refused to it") {
  auto e = testing::EtcdProcess::start();
  REQUIRE(e.is_ok());
  const std::string url = (*e)->url("tls");
  std::vector<std::unique_ptr<PooldProcess>> nodes;
  auto start = [&](const std::string& id, bool tls) {
    const uint16_t port = *testing::free_tcp_port();
    const std::string listen = fmt::format("127.0.0.1:{}", port);
    testing::PooldOptions o;
    o.layout = kLayout;
    o.size = "96MiB";
    // Advertised by TCP only, as a node on another host would be: the client may not use the socket.
    o.extra = {"--cluster", url, "--node-id", id, "--chunk-pages", std::to_string(kChunkPages), "--tcp", listen,
               "--advertise", (tls ? "tls:" : "tcp:") + listen};
    if (tls)
      o.extra.insert(o.extra.end(), {"--tls-certificate", testing::tls_file("server.pem"), "--tls-private-key",
                                     testing::tls_file("server.key")});
    auto p = PooldProcess::start(o);
    INFO(p.status().to_string());
    REQUIRE(p.is_ok());
    nodes.push_back(std::move(*p));
  };
  start("tls-0", true);
  start("tls-1", true);
  ClientOptions o;
  o.endpoint = url, o.tenant = "acme", o.token = "t", o.model = "m", o.io_timeout_ms = 2000;
  o.tls_ca_file = testing::tls_file("ca.pem");
  auto c = Client::connect(o);
  INFO(c.status().to_string());
  REQUIRE(c.is_ok());
  REQUIRE(eventually([&] { return (*c)->cluster_nodes() == 2; }, 10s));
  const auto keys = prefix(**c, 48, 71);
  REQUIRE(testing::write_prefix(**c, keys).is_ok());
  auto lease = (*c)->lookup(keys);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == 48);
  CHECK(lease->nodes() == 2);
  const Status st = read_back(**c, *lease, keys, 71);
  INFO(st.to_string());
  CHECK(st.is_ok());
  REQUIRE(lease->release().is_ok());

  // A node offering only plain TCP joins: the client with a CA file never sends it its token.
  start("plain-2", false);
  auto late = Client::connect(o);
  REQUIRE(late.is_ok());
  REQUIRE(eventually([&] { return (*late)->cluster_nodes() == 3; }, 10s));  // its record is in etcd
  // 96 pages in chunks of 4: chunks fall on the plain node too, and none of them is written there.
  const auto more = prefix(**late, 96, 72);
  const auto wrote = testing::write_prefix(**late, more);
  INFO(wrote.status().to_string());
  CHECK_FALSE(wrote.is_ok());
  CHECK(wrote.status().message().find("requires TLS") != std::string::npos);
  ClientOptions local = o;
  local.endpoint = nodes[2]->unix_endpoint();
  auto plain = Client::connect(local);
  REQUIRE(plain.is_ok());
  CHECK((*plain)->stats()->pages_committed == 0);
}

TEST_CASE("a draining node takes no new chunk, keeps serving its pages and its open leases; resumed, it takes its share") {
  Cluster cl(/*admin=*/true);
  auto c = cl.client();
  auto node_admin = [&](int i) {
    ClientOptions o;
    o.endpoint = cl.nodes[size_t(i)]->unix_endpoint(), o.tenant = "ops", o.token = "adm";
    auto a = AdminClient::connect(o);
    INFO(a.status().to_string());
    REQUIRE(a.is_ok());
    return std::move(*a);
  };
  std::vector<std::vector<PageKey>> before;
  for (int p = 0; p < 10; ++p) {
    before.push_back(prefix(*c, 24, p + 1));
    REQUIRE(testing::write_prefix(*c, before.back()).is_ok());
  }
  // A prefix reserved and written before the drain and committed after it: a lease already
  // granted is honoured. Its chunks must include the node that drains.
  int open_salt = 100;
  std::vector<PageKey> open_keys;
  do {
    open_keys = prefix(*c, 24, ++open_salt);
  } while (pages_before_node(open_keys, cl.placement(), "mem-1") == 24);
  WriteLease open = write_uncommitted(*c, open_keys);
  // A prefix written in two parts, the first before the drain and the second during it, cut where
  // a chunk starts; both parts have a chunk placed on mem-1 by full weights, so neither placement
  // alone finds it whole: the second part's chunks are where the prefix directory says.
  std::vector<PageKey> two_parts;
  size_t cut = 0;
  for (int salt = 500; cut == 0; ++salt) {
    REQUIRE(salt < 600);
    two_parts = prefix(*c, 48, salt);
    const auto chunks = cluster::place_prefix(two_parts, kChunkPages, cl.placement());
    bool first_on_1 = false, second_on_1 = false;
    size_t at = 0;
    for (const auto& ch : chunks) {
      const bool on_1 = cl.placement()[size_t(ch.node)].node_id == "mem-1";
      if (ch.first_page >= 16 && ch.first_page <= 32 && at == 0) at = ch.first_page;
      (at == 0 || ch.first_page < at ? first_on_1 : second_on_1) |= on_1;
    }
    if (at != 0 && first_on_1 && second_on_1) cut = at;
  }
  const std::vector<PageKey> first_part(two_parts.begin(), two_parts.begin() + cut);
  const std::vector<PageKey> second_part(two_parts.begin() + cut, two_parts.end());
  REQUIRE(testing::write_prefix(*c, first_part).is_ok());
  // A prefix written in two parts cut inside a chunk placed on mem-1: the second part's first run
  // continues that chunk, cannot go beside its parent (mem-1 drains) and lands elsewhere, where
  // no placement of the chunk looks; its node's summary names the run's first page.
  std::vector<PageKey> split_chunk;
  size_t inside = 0;
  for (int salt = 600; inside == 0; ++salt) {
    REQUIRE(salt < 800);
    split_chunk = prefix(*c, 48, salt);
    for (const auto& ch : cluster::place_prefix(split_chunk, kChunkPages, cl.placement()))
      if (inside == 0 && ch.pages >= 2 && ch.first_page >= 8 && cl.placement()[size_t(ch.node)].node_id == "mem-1")
        inside = ch.first_page + 1;
  }
  const std::vector<PageKey> split_first(split_chunk.begin(), split_chunk.begin() + inside);
  const std::vector<PageKey> split_second(split_chunk.begin() + inside, split_chunk.end());
  REQUIRE(testing::write_prefix(*c, split_first).is_ok());

  auto admin1 = node_admin(1);
  const uint64_t held_before = (*admin1->stats()).pages_committed;
  REQUIRE(held_before > 0);
  auto drained = admin1->drain(true);
  REQUIRE(drained.is_ok());
  CHECK(drained->draining);
  CHECK(drained->write_leases == 1);
  CHECK(drained->pages_committed == held_before);
  // Its record says so; a session straight to it is refused a reserve, naming the drain.
  auto etcd = cl.etcd->client();
  const auto url = *cluster::parse_cluster_url(cl.url);
  REQUIRE(eventually([&] {
    auto n = cluster::list_nodes(etcd, url);
    return n && n->size() == 3 && (*n)[1].node_id == "mem-1" && (*n)[1].draining && !(*n)[0].draining;
  }, 5s));
  {
    ClientOptions o;
    o.endpoint = cl.nodes[1]->unix_endpoint(), o.tenant = "acme", o.token = "t", o.model = "m";
    auto direct = Client::connect(o);
    REQUIRE(direct.is_ok());
    auto refused = (*direct)->reserve(PageKey{}, prefix(**direct, 2, 900));
    CHECK(refused.status().code() == Code::kBusy);
    CHECK(refused.status().message().find("draining") != std::string::npos);
  }
  // The open lease commits.
  CHECK(c->commit(open).value() == 24);
  const uint64_t held = (*admin1->stats()).pages_committed;

  // New prefixes land on the other nodes only: whether or not the client has heard the record
  // yet (a busy answer from mem-1 makes it place the chunk again), every write succeeds.
  std::vector<std::vector<PageKey>> after;
  for (int p = 0; p < 10; ++p) {
    after.push_back(prefix(*c, 24, 300 + p));
    auto written = testing::write_prefix(*c, after.back());
    INFO(written.status().to_string());
    REQUIRE(written.is_ok());
  }
  CHECK((*admin1->stats()).pages_committed == held);
  // found whole (once the summaries are read) and byte-exact
  auto found_whole = [&](const std::vector<PageKey>& keys, uint32_t seed) {
    REQUIRE(eventually([&] { auto l = c->lookup(keys); return l && l->pages() == keys.size(); }, 10s));
    auto l = c->lookup(keys);
    REQUIRE(l.is_ok());
    CHECK(read_back(*c, *l, keys, seed).is_ok());
  };
  REQUIRE(testing::write_prefix(*c, second_part, first_part.back()).is_ok());
  {
    INFO("the prefix in two parts, cut at page " << cut);
    found_whole(two_parts, 500);
  }
  REQUIRE(testing::write_prefix(*c, split_second, split_first.back()).is_ok());
  {
    INFO("the prefix in two parts, cut inside a chunk of mem-1's at page " << inside);
    found_whole(split_chunk, 600);
  }
  // Every prefix, from before the drain (found where it was placed), the one committed under it
  // and those after, reads back whole and byte-exact.
  before.push_back(open_keys);
  for (const auto* set : {&before, &after})
    for (size_t p = 0; p < set->size(); ++p) {
      auto lease = c->lookup((*set)[p]);
      REQUIRE(lease.is_ok());
      INFO("prefix " << p << (set == &before ? " before" : " after") << " the drain");
      CHECK(lease->pages() == 24);
      Status st = read_back(*c, *lease, (*set)[p], uint32_t(p));
      INFO(st.to_string());
      CHECK(st.is_ok());
    }

  // Resumed: the record says so and new chunks land on mem-1 again.
  auto resumed = admin1->drain(false);
  REQUIRE(resumed.is_ok());
  CHECK(!resumed->draining);
  REQUIRE(eventually([&] { auto n = cluster::list_nodes(etcd, url); return n && !(*n)[1].draining; }, 5s));
  REQUIRE(eventually([&] {
    after.push_back(prefix(*c, 24, 400 + int32_t(after.size())));
    (void)testing::write_prefix(*c, after.back());
    return (*admin1->stats()).pages_committed > held;
  }, 5s));
  // A tenant without the admin role opens no admin session, so it cannot drain a node.
  ClientOptions o;
  o.endpoint = cl.nodes[0]->unix_endpoint(), o.tenant = "acme", o.token = "t";
  CHECK(AdminClient::connect(o).status().code() == Code::kPermissionDenied);
}

TEST_CASE("a drained node's pages move to the others, namespace by namespace; stopped, no prefix loses a page") {
  Cluster cl(/*admin=*/true);
  auto c = cl.client();
  auto c2 = cl.client(5000, "m2");  // another namespace (model) of the same tenant
  std::vector<std::vector<PageKey>> written, written2;
  for (int p = 0; p < 12; ++p) {
    written.push_back(prefix(*c, 24, p + 1));
    REQUIRE(testing::write_prefix(*c, written.back()).is_ok());
  }
  // A branch: the first 10 pages of prefix 0, then pages of its own (a prompt tree on the nodes).
  std::vector<int32_t> branch(size_t{24} * 64);
  std::iota(branch.begin(), branch.end(), 1000000);
  std::iota(branch.begin() + 10 * 64, branch.end(), 77000000);
  written.push_back(c->page_keys(branch));
  REQUIRE(testing::write_prefix(*c, written.back()).value() == 14);
  for (int p = 0; p < 4; ++p) {
    written2.push_back(prefix(*c2, 24, p + 50));
    REQUIRE(testing::write_prefix(*c2, written2.back()).is_ok());
  }
  auto etcd = cl.etcd->client();
  const auto url = *cluster::parse_cluster_url(cl.url);
  ClientOptions ao;
  ao.endpoint = cl.nodes[1]->unix_endpoint(), ao.tenant = "ops", ao.token = "adm";
  auto admin = std::move(*AdminClient::connect(ao));
  const uint64_t held = admin->stats()->pages_committed;
  REQUIRE(held > 20);
  REQUIRE(admin->drain(true).is_ok());

  // With a node that takes chunks down, the move stops at the first chunk bound there, naming
  // the node, and removes nothing: copies made so far are found there next time.
  cl.nodes[2]->kill9();
  REQUIRE(eventually([&] {
    auto r = c->move_off_draining();
    return !r && r.status().message().find("mem-2") != std::string::npos;
  }, 5s));
  CHECK(admin->stats()->pages_committed == held);
  REQUIRE(cl.nodes[2]->start());  // its region: it recovers its pages, registers a new epoch
  REQUIRE(eventually([&] {
    auto n = cluster::list_nodes(etcd, url);
    return n && n->size() == 3 && (*n)[2].node_id == "mem-2" && c->lookup(written[0]).is_ok() &&
           c->lookup(written[0])->pages() == 24;
  }, 10s));

  // The move runs under load: another client of the same namespace writes new prefixes while it
  // runs (they go to the other nodes), and every one it committed must read back too. At most 8,
  // so the two other nodes keep room for everything (a full pool would evict, which is not a loss
  // the move makes). A jthread: joined on any way out of the test.
  std::vector<std::vector<PageKey>> during;
  std::jthread writer([&, w = cl.client()](std::stop_token stop) {
    for (int32_t salt = 600; salt < 608 && (salt == 600 || !stop.stop_requested()); ++salt) {
      auto keys = prefix(*w, 24, salt);
      if (testing::write_prefix(*w, keys).is_ok()) during.push_back(std::move(keys));
    }
  });
  MoveReport report;
  REQUIRE(eventually([&] {  // once the client has heard the drain through its watch
    auto r = c->move_off_draining();
    if (r) report = *r;
    return r && r->draining_nodes == 1;
  }, 5s));
  writer.request_stop();
  writer.join();
  CHECK(during.size() > 0);
  written.insert(written.end(), during.begin(), during.end());
  INFO("listed " << report.pages_listed << " moved " << report.pages_moved << " there " << report.pages_already_there
                 << " removed " << report.pages_removed << " left " << report.pages_left);
  CHECK(report.pages_listed > 0);
  CHECK(report.pages_listed < held);  // the other namespace's pages are not this client's to list
  CHECK(report.pages_moved + report.pages_already_there == report.pages_listed);
  CHECK(report.pages_removed == report.pages_listed);
  CHECK(report.pages_left == 0);
  const uint64_t other_ns = admin->stats()->pages_committed;
  CHECK(other_ns == held - report.pages_listed);  // (acme, m2)'s pages stay until its own move
  // The other namespace is moved by cxlkv-admin move, as an operator would, with that tenant's token.
  const char* tool = std::getenv("CXLKV_ADMIN");
  REQUIRE(tool != nullptr);
  std::string out;
  std::FILE* pipe = ::popen(fmt::format("{} --endpoint {} --tenant acme --token t --json move --model m2 2>&1", tool,
                                        cl.url).c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int rc = ::pclose(pipe);
  INFO(out);
  CHECK((WIFEXITED(rc) && WEXITSTATUS(rc) == 0));
  CHECK(out.find(fmt::format("\"pages_listed\":{}", other_ns)) != std::string::npos);
  CHECK(out.find(fmt::format("\"pages_removed\":{}", other_ns)) != std::string::npos);
  CHECK(out.find("\"pages_left\":0") != std::string::npos);
  CHECK(admin->stats()->pages_committed == 0);
  // A second run finds nothing to move.
  CHECK(c->move_off_draining()->pages_listed == 0);

  // Every prefix reads back whole and byte-exact from the other nodes, with mem-1 still up and
  // after it is stopped: lost = 0.
  auto check_all = [&](const char* when) {
    uint32_t read = 0, lost = 0;
    for (auto [client, set] : {std::pair{c.get(), &written}, std::pair{c2.get(), &written2}})
      for (size_t p = 0; p < set->size(); ++p) {
        auto lease = client->lookup((*set)[p]);
        REQUIRE(lease.is_ok());
        Status st = lease->pages() == 24 ? read_back(*client, *lease, (*set)[p], uint32_t(p))
                                          : Status(Code::kNotFound, fmt::format("{} of 24 pages", lease->pages()));
        INFO(when << ": prefix " << p << ": " << st.to_string());
        CHECK(st.is_ok());
        st.is_ok() ? ++read : ++lost;
      }
    CHECK(read == written.size() + written2.size());
    CHECK(lost == 0);
    WARN(when << ": prefixes written " << written.size() + written2.size() << " (" << during.size()
              << " during the move), read " << read << ", lost " << lost);
  };
  check_all("mem-1 drained, still up");
  REQUIRE(cl.nodes[1]->shutdown().is_ok());
  REQUIRE(eventually([&] { auto n = cluster::list_nodes(etcd, url); return n && n->size() == 2; }, 5s));
  REQUIRE(eventually([&] { return c->cluster_nodes() == 2 && c2->cluster_nodes() == 2; }, 5s));
  check_all("mem-1 stopped");

  // A client of one daemon has no other node to move to.
  ClientOptions one;
  one.endpoint = cl.nodes[0]->unix_endpoint(), one.tenant = "acme", one.token = "t", one.model = "m";
  CHECK((*Client::connect(one))->move_off_draining().status().code() == Code::kInvalidArgument);
}

TEST_CASE("a node removes the partition a cluster client writes to: the client connects again, the pages stay on the node") {
  const cxl::RegionSpec b{cxl::Backend::kShm, testing::unique_name("cluster-b", true), -1, 0};
  testing::RegionCleanup b_cleanup{b};
  Cluster cl(/*admin=*/true, {"--partition", "b=shm:" + b.path + ":96MiB", "--tenant-partition", "acme=b"});
  auto c = cl.client();
  std::vector<std::vector<PageKey>> written;
  for (int p = 0; p < 8; ++p) {
    written.push_back(prefix(*c, 24, p + 1));
    REQUIRE(testing::write_prefix(*c, written.back()).is_ok());
  }
  ClientOptions ao;
  ao.endpoint = cl.nodes[1]->unix_endpoint(), ao.tenant = "ops", ao.token = "adm";
  auto admin = std::move(*AdminClient::connect(ao));
  const uint64_t in_b = (*admin->partitions())[1].pages_committed;
  REQUIRE(in_b > 0);  // mem-1 took chunks, into acme's partition b

  const auto placement_before = cl.placement();
  auto r = admin->remove_partition("b", "main");
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (r && !r->removed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    r = admin->remove_partition("b", "main");
  }
  REQUIRE(r.is_ok());
  CHECK(r->pages_copied == in_b);
  CHECK(r->sessions_closed >= 1);  // the cluster client's session on mem-1
  CHECK((*admin->partitions())[0].pages_committed == in_b);

  // The node's record changes (one region less); the client hears it, finds its session closed,
  // connects again (handed main now) and writes and reads across all three nodes as before.
  const auto fresh = prefix(*c, 24, 100);
  REQUIRE(eventually([&] { return testing::write_prefix(*c, fresh).is_ok(); }, 10s));
  auto lease = c->lookup(fresh);
  REQUIRE(lease.is_ok());
  REQUIRE(lease->pages() == 24);
  CHECK(read_back(*c, *lease, fresh, 100).is_ok());
  CHECK((*admin->partitions())[0].pages_committed > in_b);  // some of its chunks went to mem-1
  // Prefixes written before: mem-1's capacity halved, so some of their chunks are placed elsewhere
  // now; their pages are still on mem-1, where the prefix directory says they are. Every prefix is
  // found whole (once the client has read the directory) and reads back byte-exact: lost = 0.
  uint32_t moved_placement = 0;
  const auto placement_after = cl.placement();
  for (const auto& keys : written) {
    const auto now = cluster::place_prefix(keys, kChunkPages, placement_after);
    const auto then = cluster::place_prefix(keys, kChunkPages, placement_before);
    for (size_t i = 0; i < now.size(); ++i)
      moved_placement += placement_after[size_t(now[i].node)].node_id != placement_before[size_t(then[i].node)].node_id;
  }
  CHECK(moved_placement > 0);  // the fallback is what finds them
  REQUIRE(eventually([&] {
    for (const auto& keys : written)
      if (auto l = c->lookup(keys); !l || l->pages() != keys.size()) return false;
    return true;
  }, 10s));
  uint32_t read = 0, lost = 0;
  for (size_t p = 0; p < written.size(); ++p) {
    auto l = c->lookup(written[p]);
    REQUIRE(l.is_ok());
    INFO("prefix " << p << ", " << l->pages() << " pages found");
    const bool ok = l->pages() == written[p].size() && read_back(*c, *l, written[p], uint32_t(p)).is_ok();
    CHECK(ok);
    ok ? ++read : ++lost;
  }
  CHECK(lost == 0);
  WARN("after mem-1's partition b was removed: prefixes written before " << written.size() << ", read whole "
       << read << ", lost " << lost << "; " << in_b << " pages moved into main on mem-1; "
       << moved_placement << " chunks placed elsewhere now");
}

