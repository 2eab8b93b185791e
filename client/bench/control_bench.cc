// Lookup round trips (p50/p99, Unix socket and TCP), reserve+commit of a prefix, with and
// without writing its data, lookups under load and a partition removed online, against the real
// daemon.
#include "control_bench.h"

#include <atomic>
#include <sched.h>
#include <cstdio>
#include <cstring>
#include <thread>
#include <memory>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "cxlkv/admin.h"
#include "cxlkv/client.h"
#include "poold_process.h"
#include "temp_region.h"
#include "synthetic.h"
#include "tls_files.h"

namespace cxlkv::bench {

namespace {

struct Daemon {
  std::unique_ptr<testing::PooldProcess> process;
  std::string unix_ep, tcp_ep;
};

Result<Daemon> start_daemon(const ControlBenchOptions& o, std::vector<std::string> extra = {}) {
  Daemon d;
  if (!o.endpoint.empty()) {
    (o.endpoint.rfind("tcp:", 0) == 0 ? d.tcp_ep : d.unix_ep) = o.endpoint;
    return d;
  }
  testing::PooldOptions po;
  po.exe = o.poold;
  po.layout = o.layout;
  po.size = "512MiB";
  po.tcp = true;
  po.extra = std::move(extra);
  auto p = testing::PooldProcess::start(po);
  if (!p) return p.status();
  d.unix_ep = (*p)->unix_endpoint();
  d.tcp_ep = (*p)->tcp_endpoint();
  d.process = std::move(*p);
  return d;
}

Result<std::unique_ptr<Client>> connect(const std::string& endpoint) {
  ClientOptions co;
  co.endpoint = endpoint;
  co.tls_ca_file = testing::tls_file("ca.pem");  // tls: endpoints are the private TLS daemon's
  co.tenant = "bench";
  co.model = "deepseek-v3.2";
  return Client::connect(co);
}

std::vector<int32_t> tokens_for(uint32_t pages, uint32_t page_tokens, int32_t salt) {
  std::vector<int32_t> t(size_t{pages} * page_tokens);
  std::iota(t.begin(), t.end(), salt * 1000003);
  return t;
}

// Writes every run of every writable page of the lease. With `runs` (one packed run per stream,
// made beforehand), the timed span holds only the copies; without, synthetic data per page.
Status write_pages(Client& c, WriteLease& lease, const std::vector<PageKey>& keys,
                   const std::vector<std::vector<uint8_t>>* runs = nullptr) {
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < lease.pages(); ++p)
    for (int s = 0; s < c.layout().stream_count(); ++s)
      for (uint32_t l = 0; l < c.layout().layers(); ++l) {
        if (!runs) testing::fill_run(run, keys[p], s, l, c.page_tokens(), c.layout().stream(s).entry_bytes);
        const uint8_t* data = runs ? (*runs)[s].data() : run.data();
        if (Status st = c.write_entries(lease, p, s, l, data, c.page_tokens()); !st) return st;
      }
  return Status::ok();
}

Status commit_prefix(Client& c, const std::vector<PageKey>& keys, const std::vector<std::vector<uint8_t>>* runs = nullptr) {
  auto lease = c.reserve(PageKey{}, keys);
  if (!lease) return lease.status();
  if (Status st = write_pages(c, *lease, keys, runs); !st) return st;
  auto n = c.commit(*lease);
  return n ? Status::ok() : n.status();
}

#define BENCH_CHECK(expr)                                                           \
  do {                                                                              \
    if (Status st_ = (expr); !st_) {                                                \
      fmt::print(stderr, "bench: {}: {}\n", #expr, st_.to_string());                \
      return 1;                                                                     \
    }                                                                               \
  } while (0)

}  // namespace

int run_lookup_bench(const ControlBenchOptions& o) {
  auto daemon = start_daemon(o);
  if (!daemon) return fmt::print(stderr, "lookup: {}\n", daemon.status().to_string()), 2;
  fmt::print("lookup of {} keys (a {}-token prefix), {} round trips per transport, each followed by an untimed release\n",
             o.keys, uint64_t{o.keys} * 64, o.iters);
  fmt::print("  {:<10} {:>10} {:>10} {:>10} {:>8}\n", "transport", "p50 us", "p99 us", "mean us", "hits");
  // With --tls, a second daemon whose TCP listener speaks TLS: the same lookups, one run.
  std::string tls_ep;
  Result<Daemon> tls_daemon = Daemon{};
  if (o.tls && o.endpoint.empty()) {
    tls_daemon = start_daemon(o, {"--tls-certificate", testing::tls_file("server.pem"), "--tls-private-key",
                                  testing::tls_file("server.key")});
    if (!tls_daemon) return fmt::print(stderr, "lookup: TLS daemon: {}\n", tls_daemon.status().to_string()), 2;
    tls_ep = "tls:" + tls_daemon->tcp_ep.substr(4);
  }
  bool prefilled = false, tls_prefilled = false;
  for (const std::string& ep : {daemon->unix_ep, daemon->tcp_ep, tls_ep}) {
    if (ep.empty()) continue;
    auto c = connect(ep);
    if (!c) return fmt::print(stderr, "lookup: {}\n", c.status().to_string()), 1;
    const auto keys = (*c)->page_keys(tokens_for(o.keys, (*c)->page_tokens(), 1));
    bool& filled = ep == tls_ep ? tls_prefilled : prefilled;  // each daemon holds the prefix once
    if (!filled) {
      BENCH_CHECK(commit_prefix(**c, keys));
      filled = true;
    }
    std::vector<double> us;
    uint32_t hits = 0;
    for (int i = 0; i < o.iters + 20; ++i) {
      const double t0 = now_s();
      auto lease = (*c)->lookup(keys);
      const double t1 = now_s();
      if (!lease) return fmt::print(stderr, "lookup: {}\n", lease.status().to_string()), 1;
      hits = lease->pages();
      BENCH_CHECK(lease->release());
      if (i >= 20) us.push_back((t1 - t0) * 1e6);
    }
    const double mean = std::accumulate(us.begin(), us.end(), 0.0) / double(us.size());
    fmt::print("  {:<10} {:>10.1f} {:>10.1f} {:>10.1f} {:>8}\n", ep.substr(0, ep.find(':')), percentile(us, 0.5),
               percentile(us, 0.99), mean, hits);
  }
  fmt::print("  bar: Unix socket p50 <= 200 us\n");
  return 0;
}

int run_commit_bench(const ControlBenchOptions& o) {
  auto daemon = start_daemon(o);
  if (!daemon) return fmt::print(stderr, "commit: {}\n", daemon.status().to_string()), 2;
  auto c = connect(daemon->unix_ep.empty() ? daemon->tcp_ep : daemon->unix_ep);
  if (!c) return fmt::print(stderr, "commit: {}\n", c.status().to_string()), 1;
  Client& client = **c;
  const double page_bytes = double(client.layout().page_payload_bytes());
  std::vector<double> ctrl_us, reserve_us, full_ms;
  std::vector<std::vector<uint8_t>> runs(client.layout().stream_count());
  for (int s = 0; s < client.layout().stream_count(); ++s)
    testing::fill_run(runs[s], PageKey{}, s, 0, client.page_tokens(), client.layout().stream(s).entry_bytes);
  for (int i = 0; i < o.commit_iters; ++i) {
    // Control plane only: reserve + commit, the data written outside the timed span.
    {
      const auto keys = client.page_keys(tokens_for(o.keys, client.page_tokens(), 100 + 2 * i));
      const double t0 = now_s();
      auto lease = client.reserve(PageKey{}, keys);
      const double t1 = now_s();
      if (!lease) return fmt::print(stderr, "commit: {}\n", lease.status().to_string()), 1;
      BENCH_CHECK(write_pages(client, *lease, keys));
      const double t2 = now_s();
      auto n = client.commit(*lease);
      const double t3 = now_s();
      if (!n) return fmt::print(stderr, "commit: {}\n", n.status().to_string()), 1;
      reserve_us.push_back((t1 - t0) * 1e6);
      ctrl_us.push_back((t1 - t0 + t3 - t2) * 1e6);
      if (auto r = client.remove(keys); !r) return fmt::print(stderr, "commit: remove: {}\n", r.status().to_string()), 1;
    }
    // Everything: reserve, write every run (data made beforehand), commit.
    {
      const auto keys = client.page_keys(tokens_for(o.keys, client.page_tokens(), 101 + 2 * i));
      const double t0 = now_s();
      BENCH_CHECK(commit_prefix(client, keys, &runs));
      full_ms.push_back((now_s() - t0) * 1e3);
      if (auto r = client.remove(keys); !r) return fmt::print(stderr, "commit: remove: {}\n", r.status().to_string()), 1;
    }
  }
  const double full_p50 = percentile(full_ms, 0.5);
  fmt::print("commit of {} pages (layout {}, {:.0f} B of entries per page), {} iterations, Unix socket\n", o.keys,
             client.layout().name(), page_bytes, o.commit_iters);
  fmt::print("  {:<40} {:>10} {:>10}\n", "what", "p50", "p99");
  fmt::print("  {:<40} {:>7.1f} us {:>7.1f} us\n", "reserve round trip", percentile(reserve_us, 0.5), percentile(reserve_us, 0.99));
  fmt::print("  {:<40} {:>7.1f} us {:>7.1f} us\n", "reserve + commit round trips (no data)", percentile(ctrl_us, 0.5),
             percentile(ctrl_us, 0.99));
  fmt::print("  {:<40} {:>7.2f} ms {:>7.2f} ms   ({:.2f} GB/s of entries written)\n", "reserve + write + commit",
             full_p50, percentile(full_ms, 0.99), page_bytes * o.keys / (full_p50 * 1e-3) / 1e9);
  return 0;
}

int run_lookup_load_bench(const ControlBenchOptions& o) {
  const int most = *std::max_element(o.clients.begin(), o.clients.end());
  const std::string cap = std::to_string(most + 16);
  auto daemon = start_daemon(o, {"--max-connections", cap, "--max-pending", cap, "--max-sessions-per-tenant", cap,
                                 "--max-connections-per-address", cap});
  if (!daemon) return fmt::print(stderr, "lookup-load: {}\n", daemon.status().to_string()), 2;
  const std::string ep = daemon->unix_ep.empty() ? daemon->tcp_ep : daemon->unix_ep;
  if (o.daemon_cpu >= 0 && daemon->process) {
    // The daemon on a core of its own, as on a memory node; the clients (this process's threads,
    // all made after this) share the rest, as the decode hosts would.
    cpu_set_t daemon_set, rest;
    CPU_ZERO(&daemon_set);
    CPU_ZERO(&rest);
    CPU_SET(o.daemon_cpu, &daemon_set);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (cpu != o.daemon_cpu) CPU_SET(cpu, &rest);
    if (::sched_setaffinity(daemon->process->pid(), sizeof daemon_set, &daemon_set) != 0 ||
        ::sched_setaffinity(0, sizeof rest, &rest) != 0)
      return fmt::print(stderr, "lookup-load: --daemon-cpu {}: {}\n", o.daemon_cpu, std::strerror(errno)), 2;
  }
  std::vector<PageKey> keys;
  std::vector<std::vector<uint8_t>> runs;  // one page's run per stream, written by every writer
  {
    auto c = connect(ep);
    if (!c) return fmt::print(stderr, "lookup-load: {}\n", c.status().to_string()), 1;
    keys = (*c)->page_keys(tokens_for(o.keys, (*c)->page_tokens(), 1));
    BENCH_CHECK(commit_prefix(**c, keys));
    runs.resize(size_t((*c)->layout().stream_count()));
    for (int s = 0; s < (*c)->layout().stream_count(); ++s)
      testing::fill_run(runs[size_t(s)], PageKey{}, s, 0, (*c)->page_tokens(), (*c)->layout().stream(s).entry_bytes);
  }
  fmt::print("lookup of {} keys under N concurrent clients (each its own session and thread, closed loop: the next "
             "request when the last answered), {} s per level; one in {} operations a reserve + commit + remove of {} "
             "pages; {}; {}\n", o.keys, o.seconds, o.write_every, o.write_pages, ep.substr(0, ep.find(':')),
             o.daemon_cpu >= 0 ? fmt::format("the daemon alone on CPU {}, the clients on the others", o.daemon_cpu)
                               : std::string("daemon and clients share every CPU"));
  fmt::print("  {:>7} {:>12} {:>10} {:>10} {:>10} {:>12}\n", "clients", "lookups/s", "p50 us", "p99 us", "max us",
             "writes/s");
  for (int n : o.clients) {
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < n; ++i) {
      auto c = connect(ep);
      if (!c) return fmt::print(stderr, "lookup-load: client {}: {}\n", i, c.status().to_string()), 1;
      clients.push_back(std::move(*c));
    }
    std::vector<std::vector<double>> us(static_cast<size_t>(n));
    std::vector<uint64_t> writes(static_cast<size_t>(n), 0);
    std::atomic<int> ready{0}, failed{0};
    std::atomic<bool> go{false}, stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        Client& c = *clients[size_t(i)];
        auto fail = [&](const Status& st) {
          if (failed.fetch_add(1) == 0) fmt::print(stderr, "lookup-load: client {}: {}\n", i, st.to_string());
        };
        const auto mine = c.page_keys(tokens_for(o.write_pages, c.page_tokens(), 1000 + i));
        us[size_t(i)].reserve(1 << 16);
        ready.fetch_add(1);
        while (!go.load()) std::this_thread::yield();
        for (uint64_t op = uint64_t(i); !stop.load(std::memory_order_relaxed); ++op) {
          if (o.write_every > 0 && op % uint64_t(o.write_every) == 0) {
            auto lease = c.reserve(PageKey{}, mine);
            Status st = lease.status();
            if (st) st = write_pages(c, *lease, mine, &runs);  // copies of data made beforehand
            if (st) st = c.commit(*lease).status();
            if (st) st = c.remove(mine).status();
            if (!st) return fail(st);
            ++writes[size_t(i)];
            continue;
          }
          const double t0 = now_s();
          auto lease = c.lookup(keys);
          const double t1 = now_s();
          if (!lease) return fail(lease.status());
          if (lease->pages() != keys.size())
            return fail(Status(Code::kNotFound, fmt::format("{} of {} pages found", lease->pages(), keys.size())));
          if (Status st = lease->release(); !st) return fail(st);
          us[size_t(i)].push_back((t1 - t0) * 1e6);
        }
      });
    while (ready.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const double t0 = now_s();
    go.store(true);
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    stop.store(true);
    for (auto& t : threads) t.join();
    const double elapsed = now_s() - t0;
    if (failed.load() > 0) return fmt::print(stderr, "lookup-load: {} clients failed at {} clients\n", failed.load(), n), 1;
    std::vector<double> all;
    uint64_t total_writes = 0;
    for (int i = 0; i < n; ++i) {
      all.insert(all.end(), us[size_t(i)].begin(), us[size_t(i)].end());
      total_writes += writes[size_t(i)];
    }
    fmt::print("  {:>7} {:>12.0f} {:>10.1f} {:>10.1f} {:>10.1f} {:>12.0f}\n", n, double(all.size()) / elapsed,
               percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1.0), double(total_writes) / elapsed);
  }
  fmt::print("  bar: p99 <= 2000 us with 64 clients on 2 cores\n");
  return 0;
}

int run_remove_partition_bench(const ControlBenchOptions& o) {
  auto layout = Layout::parse(o.layout);
  if (!layout) return fmt::print(stderr, "remove-partition: {}\n", layout.status().to_string()), 2;
  const uint64_t bytes = region_bytes_for(*layout, 1, o.remove_pages + 64);
  cxl::RegionSpec b{cxl::Backend::kShm, testing::unique_name("bench-remove-b", true), -1, 0};
  testing::RegionCleanup b_cleanup{b};
  testing::PooldOptions po;
  po.exe = o.poold;
  po.layout = o.layout;
  po.size = std::to_string(bytes + (64ull << 20));  // main: its tenant's prefix and every page of b
  po.tenants = {"a:ta", "b:tb", "ops:to"};
  po.extra = {"--tenant-roles", "ops=admin", "--partition", fmt::format("b=shm:{}:{}", b.path, bytes),
              "--tenant-partition", "b=b", "--max-keys", std::to_string(std::max(o.keys, 1024u))};
  auto daemon = testing::PooldProcess::start(po);
  if (!daemon) return fmt::print(stderr, "remove-partition: {}\n", daemon.status().to_string()), 2;
  auto as = [&](const char* tenant, const char* token) {
    ClientOptions co;
    co.endpoint = (*daemon)->unix_endpoint();
    co.tenant = tenant, co.token = token, co.model = "m";
    return co;
  };
  auto b_client = Client::connect(as("b", "tb"));
  auto a_client = Client::connect(as("a", "ta"));
  auto admin = AdminClient::connect(as("ops", "to"));
  if (!b_client || !a_client || !admin) return fmt::print(stderr, "remove-partition: connecting failed\n"), 1;
  const uint32_t per_prefix = std::min(o.keys, o.remove_pages);
  std::vector<std::vector<PageKey>> prefixes;
  const double w0 = now_s();
  for (uint32_t written = 0; written < o.remove_pages; written += per_prefix) {
    prefixes.push_back((*b_client)->page_keys(tokens_for(per_prefix, (*b_client)->page_tokens(), int32_t(prefixes.size()) + 1)));
    BENCH_CHECK(commit_prefix(**b_client, prefixes.back()));
  }
  const auto a_keys = (*a_client)->page_keys(tokens_for(16, (*a_client)->page_tokens(), 9999));
  BENCH_CHECK(commit_prefix(**a_client, a_keys));
  fmt::print("remove-partition: {} pages of {} ({:.2f} GB) written into partition b in {:.1f} s\n",
             prefixes.size() * per_prefix, layout->name(), double(prefixes.size() * per_prefix) *
             double(layout->page_payload_bytes()) / 1e9, now_s() - w0);

  // Tenant a looks its prefix up in closed loop, before the removal and while it runs.
  std::atomic<int> phase{0};  // 0 before, 1 during, 2 stop
  std::vector<double> before_us, during_us;
  std::thread looker([&] {
    while (phase.load() != 2) {
      const int at = phase.load();
      const double t0 = now_s();
      auto lease = (*a_client)->lookup(a_keys);
      const double t1 = now_s();
      if (!lease || lease->pages() != a_keys.size() || !lease->release().is_ok()) continue;
      (at == 0 ? before_us : during_us).push_back((t1 - t0) * 1e6);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  phase = 1;
  const double r0 = now_s();
  auto removed = (*admin)->remove_partition("b", "main");
  while (removed && !removed->removed) {  // copying: ask again, as cxlkv-admin does
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    removed = (*admin)->remove_partition("b", "main");
  }
  const double call_s = now_s() - r0;
  phase = 2;
  looker.join();
  if (!removed) return fmt::print(stderr, "remove-partition: {}\n", removed.status().to_string()), 1;
  if (!removed->removed) return fmt::print(stderr, "remove-partition: {} write leases open\n", removed->write_leases), 1;
  // Every prefix is in main now: b's client connects again and finds each whole.
  auto again = Client::connect(as("b", "tb"));
  if (!again) return fmt::print(stderr, "remove-partition: {}\n", again.status().to_string()), 1;
  size_t whole = 0;
  for (const auto& keys : prefixes)
    if (auto lease = (*again)->lookup(keys); lease && lease->pages() == keys.size() && lease->release().is_ok()) ++whole;
  fmt::print("  copied {} pages, {:.2f} GB, in {:.3f} s ({:.2f} GB/s, in steps between other requests); the admin asked "
             "until it ended: {:.3f} s; {} sessions "
             "closed\n", removed->pages_copied, double(removed->bytes_copied) / 1e9, removed->copy_seconds,
             double(removed->bytes_copied) / removed->copy_seconds / 1e9, call_s, removed->sessions_closed);
  fmt::print("  tenant a's lookup of 16 pages, p50 / max: before {:.1f} / {:.1f} us ({} lookups), during {:.1f} / {:.1f} us "
             "({} lookups)\n", percentile(before_us, 0.5), percentile(before_us, 1.0), before_us.size(),
             percentile(during_us, 0.5), percentile(during_us, 1.0), during_us.size());
  fmt::print("  prefixes found whole in main after: {} of {}\n", whole, prefixes.size());
  return whole == prefixes.size() ? 0 : 1;
}

}  // namespace cxlkv::bench
