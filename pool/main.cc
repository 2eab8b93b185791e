// cxlkv-poold: the pool daemon of one memory node. Reads its configuration, creates or opens
// (and recovers) each partition's region (partition.h), then serves the control plane and the
// metrics endpoint on one I/O thread until SIGTERM or SIGINT. SIGHUP reads the configuration
// again (as cxlkv-admin reload): partitions and tenants new in it are served from then on
// (online_partitions.h). Exit codes: 0 after a signal, 2 for a configuration or region error (a
// layout mismatch, a damaged header), 1 for a failure while serving.
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "cluster_registration.h"
#include "config.h"
#include "dispatch.h"
#include "metrics_server.h"
#include "online_partitions.h"
#include "partition.h"
#include "server.h"

namespace asio = boost::asio;
using namespace cxlkv;
using namespace cxlkv::pool;

namespace {

// SIGTERM, SIGINT and SIGHUP, read from a signalfd by the I/O loop. They are blocked in every thread from
// the start, so one that arrives before the loop runs waits in the kernel until it is read; no
// handler runs asynchronously (under ThreadSanitizer a handler's deferred delivery lost a SIGTERM
// that landed between listen and the loop, about one start in five).
class StopSignals {
 public:
  // Blocks the signals in the calling thread (threads started later inherit it) and opens the fd.
  static Result<std::unique_ptr<StopSignals>> open(asio::io_context& io) {
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, SIGINT);
    ::sigaddset(&set, SIGTERM);
    ::sigaddset(&set, SIGHUP);
    if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0)
      return Status(Code::kIoError, fmt::format("blocking SIGTERM, SIGINT and SIGHUP: {}", std::strerror(rc)));
    const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return io_error("signalfd for SIGTERM, SIGINT and SIGHUP");
    return std::unique_ptr<StopSignals>(new StopSignals(io, fd));
  }
  // Calls `on_signal(signo)` once for the next signal read; a cancel calls it with 0.
  template <typename Handler>
  void async_wait(Handler on_signal) {
    fd_.async_read_some(asio::buffer(&info_, sizeof info_),
                        [this, on_signal](boost::system::error_code ec, size_t n) {
                          on_signal(!ec && n == sizeof info_ ? static_cast<int>(info_.ssi_signo) : 0);
                        });
  }
  void cancel() {
    boost::system::error_code ec;
    fd_.cancel(ec);
  }

 private:
  StopSignals(asio::io_context& io, int fd) : fd_(io, fd) {}
  asio::posix::stream_descriptor fd_;
  signalfd_siginfo info_{};
};

// Different at every start: clients and the cluster tell this run of the daemon from the last.
uint64_t new_epoch() {
  std::random_device random;
  const uint64_t r = (uint64_t{random()} << 32) ^ random();
  return r ^ uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
}

// The node's region records, one per partition served, as the cluster record lists them: set on
// the I/O thread (each reaper tick, each partition added or removed), read by the registration's.
class RegionRecords {
 public:
  void refresh(const std::string& layout, const std::vector<Partition*>& live) {
    std::vector<cluster::RegionRecord> now;
    for (const Partition* p : live) {
      const SlabGeometry& g = p->allocator().geometry();
      now.push_back({p->describe(), layout, p->region().slab_pages(), g.slab_bytes, g.slab_count,
                     p->service().stats().slabs_free});
    }
    std::lock_guard lock(mu_);
    records_ = std::move(now);
  }
  std::vector<cluster::RegionRecord> get() const {
    std::lock_guard lock(mu_);
    return records_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<cluster::RegionRecord> records_;
};

// The cluster membership of this node, or nullptr for a lone node, with `regions` as its records.
std::unique_ptr<ClusterRegistration> make_registration(const PoolConfig& c, uint64_t epoch, const RegionRecords& regions) {
  if (c.cluster_url.empty()) return nullptr;
  ClusterOptions o;
  o.url = *cluster::parse_cluster_url(c.cluster_url);  // validate_config checked it
  o.node_id = c.node_id;
  if (o.node_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.node_id = std::string(host) + "-" + c.region.path;
    for (char& ch : o.node_id)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-')) ch = '-';
  }
  o.endpoints = c.advertise;
  if (o.endpoints.empty()) {
    if (!c.unix_socket.empty()) o.endpoints.push_back("unix:" + c.unix_socket);
    if (!c.tcp.empty()) o.endpoints.push_back((c.tls_certificate.empty() ? "tcp:" : "tls:") + c.tcp);
  }
  o.lease_ttl_s = c.cluster_lease_ttl_s;
  o.settings.chunk_pages = c.chunk_pages;
  return std::make_unique<ClusterRegistration>(std::move(o), epoch, [&regions] { return regions.get(); });
}

int serve(const PoolConfig& config, const OnlinePartitions::ConfigLoader& loader) {
  asio::io_context io(1);  // first: outlives everything that posts work to it
  // Signals before anything listens: a SIGTERM once the socket answers is always a clean stop.
  auto signals = StopSignals::open(io);
  if (!signals) {
    spdlog::error("{}", signals.status().to_string());
    return 1;
  }

  auto layout = Layout::parse(config.layout);
  PoolOptions pool_options = config.pool;
  if (!config.cluster_url.empty()) pool_options.directory_chunk_pages = config.chunk_pages;  // the prefix directory
  const uint64_t epoch = new_epoch();
  auto online = OnlinePartitions::open(config, *layout, pool_options, epoch, loader);
  if (!online) {
    spdlog::error("{}", online.status().to_string());
    return 2;
  }
  OnlinePartitions& partitions = **online;
  RegionRecords region_records;
  auto refresh_regions = [&] { region_records.refresh(config.layout, partitions.live()); };
  refresh_regions();
  auto registration = make_registration(config, epoch, region_records);
  if (registration) {
    // A chunk size other than the cluster's is a configuration error; an etcd that does not answer
    // is not: the node serves and registers once etcd answers.
    if (Status st = registration->join_settings(); !st && st.code() == Code::kMismatch) {
      spdlog::error("{}", st.message());
      return 2;
    }
  }
  if (config.tenants.empty())
    spdlog::warn("auth is open: no tenants configured, every tenant and token is accepted (add [[tenant]] entries)");

  Metrics metrics;
  const Partition& first = *partitions.live().front();  // the node's labels (its [region], from the start)
  metrics.set_node_state({first.describe(), (*layout).name(), first.region().size(), epoch, config.cluster_url,
                          registration ? registration->node_id() : std::string(), false, 0});
  Dispatcher dispatcher(partitions.dispatch_entries(), config.tenants, tenant_partitions(config), metrics,
                        config.max_sessions_per_tenant);
  dispatcher.set_drain_listener([&](bool draining) {
    metrics.set_draining(draining);
    if (registration) registration->set_draining(draining);
  });
  MetricsServer metrics_server(io, metrics, [&dispatcher] {
    std::vector<PartitionStats> all;
    for (const DispatchPartition& p : dispatcher.served())
      if (p.service) all.push_back({p.name, p.service->region().describe(), p.service->stats(), p.draining});
    return all;
  });
  if (config.metrics_port != 0) {
    auto port = metrics_server.start(config.metrics_bind, config.metrics_port);
    if (!port) {
      spdlog::error("{}", port.status().to_string());
      return 2;
    }
    spdlog::info("metrics on http://{}:{}/metrics", config.metrics_bind, *port);
  }

  Server server(io, dispatcher, metrics, config, partitions.fds());
  if (Status st = server.start(); !st) {
    spdlog::error("{}", st.to_string());
    return 2;
  }
  partitions.attach(
      dispatcher, server,
      [&] {
        refresh_regions();
        if (registration) registration->republish();
      },
      [&io](std::function<void()> work) { asio::post(io, std::move(work)); });
  // SIGTERM or SIGINT: stop. SIGHUP: the configuration read again, what is new in it served.
  std::function<void(int)> on_signal = [&](int sig) {
    if (sig == SIGHUP) {
      spdlog::info("signal {}: reading the configuration again", sig);
      if (auto r = partitions.reload(); !r) spdlog::error("{}", r.status().to_string());
      return (*signals)->async_wait(on_signal);
    }
    if (sig != 0) spdlog::info("signal {}: shutting down", sig);
    io.stop();
  };
  (*signals)->async_wait(on_signal);
  // Registered only once listening: a client that reads the record can connect at once.
  if (registration) registration->start();
  // Ready: listening, recovered, and registered where a cluster is configured (the reaper's tick
  // keeps this current as etcd comes and goes).
  auto refresh_ready = [&] {
    if (!registration || registration->registered()) metrics_server.set_ready(true);
    else metrics_server.set_ready(false, "serving, but not registered in cluster " + config.cluster_url);
  };
  refresh_ready();

  // The prefix directory: a snapshot of the committed chunk keys of every partition (their
  // namespaces are their tenants', so they do not overlap) for the registration thread, once per
  // directory interval at most and only when the committed set moved.
  uint64_t directory_changes = ~uint64_t{0};
  Clock::time_point next_directory{};
  auto publish_directory = [&] {
    if (!registration) return;
    const Clock::time_point now = Clock::now();
    uint64_t changes = 0;
    for (const Partition* p : partitions.live()) changes += p->service().index().committed_changes();
    if (now < next_directory || changes == directory_changes) return;
    std::map<uint64_t, std::vector<PageKey>> keys;
    for (const Partition* p : partitions.live())
      for (auto& [ns, starts] : directory_snapshot(p->service().index())) {
        std::vector<PageKey>& all = keys[ns];
        all.insert(all.end(), starts.begin(), starts.end());
      }
    registration->publish_directory(std::move(keys));
    directory_changes = changes;
    next_directory = now + registration->directory_interval();
  };

  // The reaper: expired leases, then the watermarks.
  const uint32_t shortest = std::min(config.pool.read_lease_ttl_ms, config.pool.write_lease_ttl_ms);
  const auto period = std::chrono::milliseconds(
      config.reaper_interval_ms ? config.reaper_interval_ms : std::clamp(shortest / 4, 10u, 1000u));
  asio::steady_timer reaper(io);
  std::function<void()> tick = [&] {
    reaper.expires_after(period);
    reaper.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      for (Partition* p : partitions.live()) {
        if (uint32_t n = p->service().reap(Clock::now())) spdlog::debug("reaper: {} leases expired in '{}'", n, p->name());
        if (uint32_t n = p->service().maintain_watermarks())
          spdlog::info("eviction: {} pages over the high watermark in '{}'", n, p->name());
      }
      refresh_regions();
      publish_directory();
      if (registration) metrics.set_cluster_state(registration->registered(), registration->directory_puts());
      refresh_ready();
      tick();
    });
  };
  tick();

  uint64_t slabs_total = 0;
  for (const Partition* p : partitions.live()) slabs_total += p->service().stats().slabs_total;
  const size_t count = partitions.live().size();
  spdlog::info("cxlkv-poold ready: {} ({} slabs in {} partition{}, E = {}), epoch {:016x}", (*layout).describe(),
               slabs_total, count, count == 1 ? "" : "s", config.slab_pages, epoch);
  try {
    io.run();
  } catch (const std::exception& e) {
    spdlog::error("serving: {}", e.what());
    return 1;
  }
  // Teardown: close listeners and connections, then let their handlers finish (a bounded drain),
  // so no connection outlives the server it reports to.
  metrics_server.set_ready(false);
  partitions.stop();  // a removal under way copies no more
  if (registration) registration->stop();  // leave the cluster first: clients stop routing here
  server.stop();
  metrics_server.stop();
  reaper.cancel();
  (*signals)->cancel();
  io.restart();
  io.run_for(std::chrono::seconds(1));
  spdlog::info("cxlkv-poold stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ConfigOutcome outcome = load_config(argc, argv);
  if (outcome.exit_now) {
    std::fputs(outcome.message.c_str(), outcome.exit_code == 0 ? stdout : stderr);
    if (!outcome.message.empty() && outcome.message.back() != '\n') std::fputc('\n', stderr);
    return outcome.exit_code;
  }
  auto logger = spdlog::stderr_color_mt("cxlkv-poold");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%P] %v");
  const auto level = spdlog::level::from_str(outcome.config.log_level);
  if (level == spdlog::level::off && outcome.config.log_level != "off") {
    std::fprintf(stderr, "invalid argument: log level '%s' is not trace, debug, info, warn, error or off\n",
                 outcome.config.log_level.c_str());
    return 2;
  }
  spdlog::set_level(level);
  // Reload (cxlkv-admin reload, SIGHUP) parses the same command line again: the file as it is now.
  const OnlinePartitions::ConfigLoader loader = [argc, argv]() -> Result<PoolConfig> {
    ConfigOutcome again = load_config(argc, argv);
    if (again.exit_now) return Status(Code::kInvalidArgument, again.message);
    return std::move(again.config);
  };
  return serve(outcome.config, loader);
}
