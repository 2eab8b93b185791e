// MetricsServer: the Prometheus endpoint, GET /metrics over HTTP/1.1 (Boost.Beast), on the
// daemon's I/O thread, with the probes of an orchestrator beside it: GET /healthz (200 while the
// daemon answers) and GET /readyz (200 once the region is open, recovered and the control plane
// listens; 503 before and while stopping). Renders Metrics and PoolService's counters at each
// scrape; any other target is 404. One request per connection. main.cc owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include <string>
#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange

#include <boost/asio.hpp>

#include "metrics.h"
#include "pool_service.h"

namespace cxlkv::pool {

class MetricsServer {
 public:
  // `partitions` is called at each scrape, on the I/O thread, for every partition's counters.
  using PartitionsFn = std::function<std::vector<PartitionStats>()>;
  MetricsServer(boost::asio::io_context& io, Metrics& metrics, PartitionsFn partitions);
  // Listens on bind:port; returns the port bound (port 0 picks one).
  Result<uint16_t> start(const std::string& bind, uint16_t port);
  void stop();
  // Readiness as /readyz reports it, and why not when not: main.cc sets it once the control plane
  // listens (and, in a cluster, while the node is registered), clears it when shutdown begins.
  void set_ready(bool ready, std::string why_not = "the control plane is not listening") {
    ready_->ready = ready;
    ready_->why_not = std::move(why_not);
  }
  struct Readiness {
    bool ready = false;
    std::string why_not = "the control plane is not listening";
  };

 private:
  void accept();

  boost::asio::io_context& io_;
  Metrics& metrics_;
  PartitionsFn partitions_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::shared_ptr<Readiness> ready_ = std::make_shared<Readiness>();  // read by each request, one thread
};

}  // namespace cxlkv::pool
