// Lookup of one prefix over N nodes vs one node: both prefixes written first, then the two
// lookups (each followed by an untimed release) take turns, so the machine's noise falls on both.
#include "cluster_bench.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "cxlkv/client.h"
#include "etcd_process.h"
#include "eventually.h"
#include "node_record.h"
#include "poold_process.h"
#include "prefix_io.h"

namespace cxlkv::bench {

namespace {

Result<std::unique_ptr<testing::PooldProcess>> start_node(const ClusterBenchOptions& o, const std::string& size,
                                                          std::vector<std::string> extra) {
  testing::PooldOptions po;
  po.exe = o.poold;
  po.layout = o.layout;
  po.size = size;
  po.extra = std::move(extra);
  return testing::PooldProcess::start(po);
}

Result<std::unique_ptr<Client>> connect(const std::string& endpoint) {
  ClientOptions co;
  co.endpoint = endpoint;
  co.tenant = "bench";
  co.model = "lookup";
  return Client::connect(co);
}

struct Samples {
  std::vector<double> us;
  uint32_t pages = 0, nodes = 0;
};

Status time_lookup(Client& c, const std::vector<PageKey>& keys, Samples& out, bool keep) {
  const double t0 = now_s();
  auto lease = c.lookup(keys);
  const double t1 = now_s();
  if (!lease) return lease.status();
  out.pages = lease->pages(), out.nodes = lease->nodes();
  if (keep) out.us.push_back((t1 - t0) * 1e6);
  return lease->release();
}

}  // namespace

int run_cluster_lookup_bench(const ClusterBenchOptions& o) {
  auto fail = [](const Status& st) { return fmt::print(stderr, "cluster-lookup: {}\n", st.to_string()), 1; };
  auto layout = Layout::parse(o.layout);
  if (!layout) return fail(layout.status());
  const uint64_t bytes = region_bytes_for(*layout, 1, o.keys);
  const std::string size = fmt::format("{}MiB", (bytes >> 20) + 16);
  auto etcd = testing::EtcdProcess::start();
  if (!etcd) return fail(etcd.status());
  const std::string url = (*etcd)->url("bench");
  std::vector<std::unique_ptr<testing::PooldProcess>> nodes;
  for (uint32_t i = 0; i < o.nodes; ++i) {
    auto p = start_node(o, size, {"--cluster", url, "--node-id", fmt::format("bench-{}", i), "--chunk-pages",
                                  std::to_string(o.chunk_pages)});
    if (!p) return fail(p.status());
    nodes.push_back(std::move(*p));
  }
  auto lone = start_node(o, size, {});
  if (!lone) return fail(lone.status());
  auto probe = (*etcd)->client();
  const auto parsed = *cluster::parse_cluster_url(url);
  if (!testing::eventually([&] { auto n = cluster::list_nodes(probe, parsed); return n && n->size() == o.nodes; },
                           std::chrono::seconds(10)))
    return fail(Status(Code::kUnavailable, "the nodes did not register within 10 s"));

  auto over_cluster = connect(url);
  if (!over_cluster) return fail(over_cluster.status());
  auto one_node = connect((*lone)->unix_endpoint());
  if (!one_node) return fail(one_node.status());
  std::vector<int32_t> tokens(size_t{o.keys} * 64);
  std::iota(tokens.begin(), tokens.end(), 17);
  const auto keys = (*one_node)->page_keys(tokens);
  for (Client* c : {over_cluster->get(), one_node->get()})
    if (auto w = testing::write_prefix(*c, keys); !w) return fail(w.status());

  Samples cl, one;
  for (int i = 0; i < o.iters + 20; ++i) {
    const bool keep = i >= 20;  // the first rounds warm connections and caches
    if (Status st = time_lookup(**over_cluster, keys, cl, keep); !st) return fail(st);
    if (Status st = time_lookup(**one_node, keys, one, keep); !st) return fail(st);
  }
  const double p50_one = percentile(one.us, 0.5), p99_one = percentile(one.us, 0.99);
  const double p50_cl = percentile(cl.us, 0.5), p99_cl = percentile(cl.us, 0.99);
  fmt::print("lookup of {} keys, {} rounds taking turns (each followed by an untimed release), chunks of {} pages\n",
             o.keys, o.iters, o.chunk_pages);
  fmt::print("  {:<22} {:>10} {:>10} {:>7} {:>7}\n", "", "p50 us", "p99 us", "pages", "nodes");
  fmt::print("  {:<22} {:>10.1f} {:>10.1f} {:>7} {:>7}\n", "one node", p50_one, p99_one, one.pages, one.nodes);
  fmt::print("  {:<22} {:>10.1f} {:>10.1f} {:>7} {:>7}\n", fmt::format("cluster of {} nodes", o.nodes), p50_cl,
             p99_cl, cl.pages, cl.nodes);
  fmt::print("  cluster / one node: p50 {:.2f}x, p99 {:.2f}x (bar: p50 <= 1.5x)\n", p50_cl / p50_one, p99_cl / p99_one);
  if (!o.json.empty()) {
    std::ofstream(o.json) << fmt::format(
        "{{\"keys\":{},\"nodes\":{},\"chunk_pages\":{},\"iters\":{},\"one_p50_us\":{:.1f},\"one_p99_us\":{:.1f},"
        "\"cluster_p50_us\":{:.1f},\"cluster_p99_us\":{:.1f},\"p50_ratio\":{:.3f}}}\n",
        o.keys, o.nodes, o.chunk_pages, o.iters, p50_one, p99_one, p50_cl, p99_cl, p50_cl / p50_one);
  }
  return one.pages == o.keys && cl.pages == o.keys ? 0 : 1;
}

}  // namespace cxlkv::bench
