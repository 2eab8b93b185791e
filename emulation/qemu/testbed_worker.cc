// cxlkv-testbed-worker: the decode worker of guest B in the QEMU CXL testbed (emulation/qemu/).
// It talks to guest A's cxlkv-poold over TCP on the guests' private network and maps the pool by
// its own devdax path (/dev/dax0.0 over the same CXL bytes), as a worker on another host would.
// Steps, one per run, chosen by the first argument; scripts/testbed greps the PASS/FAIL lines:
//   write    reserve + write + commit prefix A as a prefill worker, then verify it as a decoder
//   hold     reserve prefix B and write half of it, then wait until the daemon is gone (guest A
//            loses power with this write lease open)
//   recover  reconnect to the restarted daemon; prefix A must be whole and byte-exact, prefix B
//            must be gone (its reserved slots reclaimed); then write, commit and verify prefix B
//   restart  hold, then recover, in one process: the decode worker outlives the daemon's host
//   tenants  a second tenant, bound to the other partition (/dev/dax0.1, the second devdax device
//            of the same CXL device), writes and reads its own prefix there, then stores into every
//            OS page of the mapping it was handed after the region header (the published slab
//            words and every slab; the records lie on a metadata device no client maps); prefix A
//            of the first tenant (on /dev/dax0.0) must still read back byte-exact
//   cluster  a cluster client (--cluster etcd://...) over guest A's two memory nodes writes prefix
//            C in chunks of one page, which land on both nodes; its lease spans both mappings
//            (/dev/dax0.0 and the second node's device, each by the path its node names) and
//            reads back byte-exact; then it is removed from both nodes
// Contents are synthetic (testkit/synthetic.h): every byte follows from its page key, so
// any reader (this worker, cxlkv-testbed-inspect on the host) checks them without a copy.
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cxlkv/client.h"
#include "prefix_io.h"

namespace {

using namespace cxlkv;
using Clock = std::chrono::steady_clock;

struct Options {
  ClientOptions client;
  uint32_t pages = 8;          // pages per prefix
  uint32_t seed = 1;           // prefix A; prefix B uses seed + 1
  int k = 256;                 // top-k entries gathered per layer
  int connect_wait_s = 120;    // how long to retry connecting while the daemon boots
  int gone_wait_s = 120;       // hold: how long to wait for the daemon to go away
  ClientOptions tenant_b;      // tenants: the second tenant (its endpoint is client's)
  std::string cluster;         // cluster: etcd://HOST:PORT/NAME of guest A's two memory nodes
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The synthetic prompt of one prefix of `pages` pages (testkit/synthetic.h).
std::vector<int32_t> prompt(uint32_t pages, uint32_t seed) { return testing::synthetic_prompt(pages * 64, seed); }

// Connects, retrying while the daemon is not up yet (guest A boots alongside, or reboots).
Result<std::unique_ptr<Client>> connect_retry(const Options& o) {
  const auto t0 = Clock::now();
  Status last;
  int tries = 0;
  while (since(t0) < o.connect_wait_s) {
    ++tries;
    auto c = Client::connect(o.client);
    if (c) {
      fmt::print("worker: connected to {} after {} tries in {:.1f} s; region {} mapped by path\n", o.client.endpoint,
                 tries, since(t0), (*c)->info().region);
      return c;
    }
    last = c.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return Status(Code::kUnavailable, fmt::format("no daemon at {} within {} s ({} tries); last: {}", o.client.endpoint,
                                                o.connect_wait_s, tries, last.to_string()));
}

// Connects as `client`, retrying while the daemon is not up yet (as connect_retry).
Result<std::unique_ptr<Client>> connect_as(const Options& o, const ClientOptions& client) {
  Options as = o;
  as.client = client;
  return connect_retry(as);
}

// Looks the prefix up and checks it as a decode worker would read it: the whole prefix is
// leased, the top-k latent entries of every layer gather byte-exact (with FlashMLA's -1
// padding left untouched), and the bulk indexer stream of every layer matches too.
Status verify_prefix(Client& c, const std::vector<PageKey>& keys, int k) {
  auto lease = c.lookup(keys);
  if (!lease) return lease.status();
  if (lease->pages() != keys.size())
    return Status(Code::kNotFound, fmt::format("lookup found {} of {} pages", lease->pages(), keys.size()));
  const Layout& layout = c.layout();
  const int latent = layout.find_stream("latent"), indexer = layout.find_stream("indexer");
  if (latent < 0 || indexer < 0)
    return Status(Code::kMismatch, fmt::format("layout {} lacks a latent or an indexer stream", layout.name()));
  const uint32_t lbytes = layout.stream(latent).entry_bytes, ibytes = layout.stream(indexer).entry_bytes;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(lease->prefix_tokens()) - 1);
  std::vector<int32_t> idx(static_cast<size_t>(k));
  std::vector<uint8_t> dst(size_t(k) * lbytes);
  std::vector<int32_t> all(size_t(lease->prefix_tokens()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = int32_t(i);
  std::vector<uint8_t> whole(all.size() * ibytes);
  for (uint32_t l = 0; l < layout.layers(); ++l) {
    for (auto& i : idx) i = pick(rng);
    idx[l % idx.size()] = -1;
    std::fill(dst.begin(), dst.end(), uint8_t(0xA5));
    if (Status st = lease->gather_topk(latent, l, idx.data(), k, dst.data()); !st) return st;
    if (Status st = testing::verify_rows(keys, c.page_tokens(), latent, l, lbytes, idx.data(), k, dst.data(), 0xA5); !st)
      return Status(st.code(), fmt::format("top-k gather, layer {}: {}", l, st.message()));
    if (Status st = lease->fetch_pages(indexer, l, 0, lease->pages(), whole.data()); !st) return st;
    if (Status st = testing::verify_rows(keys, c.page_tokens(), indexer, l, ibytes, all.data(), int(all.size()),
                                         whole.data(), 0);
        !st)
      return Status(st.code(), fmt::format("bulk indexer fetch, layer {}: {}", l, st.message()));
  }
  return lease->release();
}

// Prefill: writes and commits a whole prefix; every page must be new.
Status write_prefix(Client& c, const std::vector<PageKey>& keys) {
  auto n = testing::write_prefix(c, keys);
  if (!n) return n.status();
  if (*n != keys.size()) return Status(Code::kAlreadyExists, fmt::format("committed {} of {} pages", *n, keys.size()));
  return Status::ok();
}

int step_write(Client& c, const Options& o) {
  const auto keys = c.page_keys(prompt(o.pages, o.seed));
  auto t0 = Clock::now();
  if (Status st = write_prefix(c, keys); !st) return fmt::print("FAIL worker write: prefill: {}\n", st.to_string()), 1;
  const double write_s = since(t0);
  t0 = Clock::now();
  if (Status st = verify_prefix(c, keys, o.k); !st) return fmt::print("FAIL worker write: decode: {}\n", st.to_string()), 1;
  fmt::print("worker: prefix A: {} pages committed in {:.2f} s, looked up + top-{} gathered + indexer fetched over {} "
             "layers in {:.2f} s, byte-exact\n", keys.size(), write_s, o.k, c.layout().layers(), since(t0));
  fmt::print("PASS worker write: {} pages written through this host, served by the daemon, read back byte-exact\n",
             keys.size());
  return 0;
}

int step_hold(Client& c, const Options& o) {
  const auto keys = c.page_keys(prompt(o.pages, o.seed + 1));
  auto lease = c.reserve(PageKey{}, keys);
  if (!lease) return fmt::print("FAIL worker hold: reserve: {}\n", lease.status().to_string()), 1;
  // Half the pages get their runs, none is committed: the daemon dies with the lease open.
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < lease->pages() / 2; ++p)
    for (int s = 0; s < c.layout().stream_count(); ++s)
      for (uint32_t l = 0; l < c.layout().layers(); ++l) {
        testing::fill_run(run, keys[p], s, l, c.page_tokens(), c.layout().stream(s).entry_bytes);
        if (Status st = c.write_entries(*lease, p, s, l, run.data(), c.page_tokens()); !st)
          return fmt::print("FAIL worker hold: write: {}\n", st.to_string()), 1;
      }
  fmt::print("HOLD worker: write lease {} open on {} pages of prefix B, {} written; power guest A off now\n",
             lease->id(), lease->pages(), lease->pages() / 2);
  std::fflush(stdout);
  const auto t0 = Clock::now();
  while (since(t0) < o.gone_wait_s) {
    auto s = c.stats();
    if (!s) {
      fmt::print("worker: daemon gone after {:.1f} s: {}\n", since(t0), s.status().to_string());
      fmt::print("PASS worker hold\n");
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return fmt::print("FAIL worker hold: the daemon still answers after {} s\n", o.gone_wait_s), 1;
}

int step_recover(Client& c, const Options& o) {
  const auto keys_a = c.page_keys(prompt(o.pages, o.seed));
  const auto keys_b = c.page_keys(prompt(o.pages, o.seed + 1));
  if (Status st = verify_prefix(c, keys_a, o.k); !st)
    return fmt::print("FAIL worker recover: prefix A after the restart: {}\n", st.to_string()), 1;
  fmt::print("worker: prefix A: all {} committed pages survived guest A's power loss, byte-exact\n", keys_a.size());
  {
    auto lease = c.lookup(keys_b);
    if (!lease) return fmt::print("FAIL worker recover: lookup of prefix B: {}\n", lease.status().to_string()), 1;
    if (lease->pages() != 0)
      return fmt::print("FAIL worker recover: prefix B was never committed, yet lookup found {} pages\n", lease->pages()), 1;
  }
  if (Status st = write_prefix(c, keys_b); !st)
    return fmt::print("FAIL worker recover: rewriting prefix B: {}\n", st.to_string()), 1;
  if (Status st = verify_prefix(c, keys_b, o.k); !st)
    return fmt::print("FAIL worker recover: prefix B: {}\n", st.to_string()), 1;
  auto s = c.stats();
  if (!s) return fmt::print("FAIL worker recover: stats: {}\n", s.status().to_string()), 1;
  fmt::print("worker: prefix B (reserved at the power loss) was reclaimed, written again and verified; pool holds {} "
             "committed pages, {} of {} slabs free\n", s->pages_committed, s->slabs_free, s->slabs_total);
  fmt::print("PASS worker recover: {} committed pages kept across the daemon host's reboot\n", keys_a.size());
  return 0;
}

int step_tenants(Client& a, const Options& o) {
  ClientOptions bo = o.tenant_b;
  bo.endpoint = o.client.endpoint;
  auto b = connect_as(o, bo);
  if (!b) return fmt::print("FAIL worker tenants: tenant {}: {}\n", bo.tenant, b.status().to_string()), 1;
  Client& c = **b;
  if (c.info().region == a.info().region)
    return fmt::print("FAIL worker tenants: tenants {} and {} were both handed {}\n", o.client.tenant, bo.tenant,
                      a.info().region), 1;
  const auto keys = c.page_keys(prompt(o.pages, o.seed + 2));
  if (Status st = write_prefix(c, keys); !st) return fmt::print("FAIL worker tenants: prefill: {}\n", st.to_string()), 1;
  if (Status st = verify_prefix(c, keys, o.k); !st)
    return fmt::print("FAIL worker tenants: decode: {}\n", st.to_string()), 1;
  // Every OS page of its mapping after the region header (4 KiB): the published allocator header
  // and slab words, and every slab of its partition. The page records and the allocator's own
  // words lie in the partition's metadata device, which no client maps (region format 2).
  const PoolView& view = c.view();
  const uint64_t first = 4096;
  // A line into every OS page of it: every page it can reach, at 1/64 of the bytes (emulated CXL
  // moves a few MB/s, and the whole 120 MiB took most of a minute).
  uint64_t pages = 0;
  for (uint64_t at = first; at < view.region_bytes; at += 4096, ++pages) std::memset(view.base + at, 0x5B, 64);
  fmt::print("worker: tenant {} ({}) stored 0x5B into all {} OS pages of its mapping after the region header ({} "
             "bytes): the published slab words and every slab of its partition\n", bo.tenant, c.info().region, pages,
             view.region_bytes - first);
  const auto keys_a = a.page_keys(prompt(o.pages, o.seed));
  if (Status st = verify_prefix(a, keys_a, o.k); !st)
    return fmt::print("FAIL worker tenants: prefix A of tenant {} after tenant {}'s stores: {}\n", o.client.tenant,
                      bo.tenant, st.to_string()), 1;
  fmt::print("PASS worker tenants: tenant {} on {} and tenant {} on {}: the second's stores over its whole partition "
             "left the first's {} pages byte-exact\n", o.client.tenant, a.info().region, bo.tenant, c.info().region,
             keys_a.size());
  return 0;
}

int step_cluster(const Options& o) {
  ClientOptions co = o.client;
  co.endpoint = o.cluster;
  co.region_path.clear();  // each node's region by the path it names: this guest's devices mirror guest A's
  // Guest A starts etcd and both daemons at once: retry until the client sees both nodes.
  const auto t0 = Clock::now();
  std::unique_ptr<Client> c;
  std::string last = "not tried";
  while (!c && since(t0) < o.connect_wait_s) {
    auto r = Client::connect(co);
    if (r && (*r)->cluster_nodes() == 2) c = std::move(*r);
    else last = r ? fmt::format("{} node(s) registered", (*r)->cluster_nodes()) : r.status().to_string();
    if (!c) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!c) return fmt::print("FAIL worker cluster: no cluster of 2 nodes at {} within {} s; last: {}\n", o.cluster,
                            o.connect_wait_s, last), 1;
  fmt::print("worker: cluster client over {} nodes after {:.1f} s, chunks of {} page(s)\n", c->cluster_nodes(),
             since(t0), c->chunk_pages());
  const auto keys = c->page_keys(prompt(o.pages, o.seed + 3));
  if (Status st = write_prefix(*c, keys); !st) return fmt::print("FAIL worker cluster: prefill: {}\n", st.to_string()), 1;
  uint32_t nodes = 0;
  {
    auto lease = c->lookup(keys);
    if (!lease) return fmt::print("FAIL worker cluster: lookup: {}\n", lease.status().to_string()), 1;
    nodes = lease->nodes();
  }
  if (nodes != 2) return fmt::print("FAIL worker cluster: prefix C's lease spans {} node(s), not 2\n", nodes), 1;
  if (Status st = verify_prefix(*c, keys, o.k); !st)
    return fmt::print("FAIL worker cluster: decode: {}\n", st.to_string()), 1;
  auto removed = c->remove(keys);
  if (!removed || *removed != keys.size())
    return fmt::print("FAIL worker cluster: remove: {}\n",
                      removed ? fmt::format("{} of {} pages", *removed, keys.size()) : removed.status().to_string()), 1;
  auto after = c->lookup(keys);
  if (!after || after->pages() != 0)
    return fmt::print("FAIL worker cluster: after the remove, lookup: {}\n",
                      after ? fmt::format("{} pages", after->pages()) : after.status().to_string()), 1;
  fmt::print("PASS worker cluster: prefix C ({} pages) written over memory nodes mem-a and mem-b, read back byte-exact "
             "through one lease over both mappings, removed from both\n", keys.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.client.endpoint = "tcp:10.0.2.1:7000";
  o.client.tenant = "testbed";
  o.client.token = "testbed-token";
  o.client.model = "tb";
  o.client.region_path = "/dev/dax0.0";
  o.client.want_fd = false;
  o.client.populate = false;     // fault in only what the test touches: emulated CXL is slow
  o.client.io_timeout_ms = 3000; // a powered-off daemon host shows up as a timeout
  o.tenant_b = o.client;
  o.tenant_b.region_path = "/dev/dax0.1";
  std::string tenant_b;
  std::string step;
  CLI::App app{"cxlkv-testbed-worker: guest B's decode worker in the QEMU CXL testbed"};
  app.add_option("step", step, "write | hold | recover | restart | tenants | cluster")
      ->required()
      ->check(CLI::IsMember({"write", "hold", "recover", "restart", "tenants", "cluster"}));
  app.add_option("--endpoint", o.client.endpoint, "daemon endpoint, tcp:host:port");
  app.add_option("--region", o.client.region_path, "this host's path of the pool (devdax)");
  app.add_option("--tenant", o.client.tenant, "tenant");
  app.add_option("--token", o.client.token, "tenant token");
  app.add_option("--model", o.client.model, "model (namespace = tenant x model)");
  app.add_option("--tenant-b", tenant_b, "tenants: the second tenant, NAME:TOKEN (bound to the other partition)");
  app.add_option("--region-b", o.tenant_b.region_path, "tenants: this host's path of the second tenant's partition");
  app.add_option("--cluster", o.cluster, "cluster: etcd://HOST:PORT/NAME of the memory nodes");
  app.add_option("--pages", o.pages, "pages per prefix")->check(CLI::Range(1u, 4096u));
  app.add_option("--seed", o.seed, "seed of prefix A (prefix B: seed + 1)");
  app.add_option("-k", o.k, "top-k entries gathered per layer")->check(CLI::Range(1, 65536));
  app.add_option("--connect-wait", o.connect_wait_s, "seconds to retry connecting");
  app.add_option("--gone-wait", o.gone_wait_s, "hold: seconds to wait for the daemon to disappear");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (step == "tenants") {
    const size_t colon = tenant_b.find(':');
    if (colon == std::string::npos || colon == 0)
      return fmt::print("FAIL worker tenants: --tenant-b '{}' is not NAME:TOKEN\n", tenant_b), 1;
    o.tenant_b.tenant = tenant_b.substr(0, colon);
    o.tenant_b.token = tenant_b.substr(colon + 1);
  }

  if (step == "cluster") {
    if (o.cluster.empty()) return fmt::print("FAIL worker cluster: --cluster etcd://HOST:PORT/NAME is required\n"), 1;
    return step_cluster(o);
  }
  auto client = connect_retry(o);
  if (!client) return fmt::print("FAIL worker {}: {}\n", step, client.status().to_string()), 1;
  if (step == "write") return step_write(**client, o);
  if (step == "hold") return step_hold(**client, o);
  if (step == "recover") return step_recover(**client, o);
  if (step == "tenants") return step_tenants(**client, o);
  // restart: the same process holds the lease through the power loss, then reconnects.
  if (int rc = step_hold(**client, o); rc != 0) return rc;
  client->reset();
  auto again = connect_retry(o);
  if (!again) return fmt::print("FAIL worker recover: {}\n", again.status().to_string()), 1;
  return step_recover(**again, o);
}
