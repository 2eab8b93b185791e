// BulkServer: the serving side of the RDMA bulk-fetch baseline (cxlkv-bulkd). Maps a region
// read-only (region_reader.h) and answers the bulk wire (bulk_wire.h) on TCP: region info, range
// reads sent straight from the mapping, and RDMA connection setup when a device was opened.
// One thread per connection; the pool daemon stays out of the data path, as in an RDMA pool.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cxlkv/status.h"
#include "rdma_transport.h"
#include "region_reader.h"

namespace cxlkv::baseline {

struct BulkServerOptions {
  cxl::RegionSpec region;
  std::string listen = "127.0.0.1:0";
  bool rdma = false;  // open an RDMA device and serve READs
  RdmaOptions rdma_options;
};

class BulkServer {
 public:
  // Maps the region, opens the device (if asked), and listens.
  static Result<std::unique_ptr<BulkServer>> start(const BulkServerOptions& options);
  ~BulkServer();  // stops and joins
  BulkServer(const BulkServer&) = delete;
  BulkServer& operator=(const BulkServer&) = delete;

  uint16_t port() const { return port_; }
  const RegionReader& region() const { return *region_; }
  std::string rdma_description() const { return rdma_ ? rdma_->describe() : "off"; }
  // Accepts and serves until stop() (from another thread or a signal handler's flag).
  void run();
  void stop() { stopping_ = true; }

 private:
  BulkServer() = default;
  void serve(int fd);
  // Answers one request; returns false when the connection must close.
  bool handle(int fd, const wire::RequestHeader& h, std::unique_ptr<RdmaPeer>& peer);
  bool read_ranges(int fd, const wire::RequestHeader& h);

  std::unique_ptr<RegionReader> region_;
  std::unique_ptr<RdmaService> rdma_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  // One thread per connection; run() joins those that have finished, so a long-lived server does
  // not keep a thread's resources per connection it ever served.
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void join_finished();
  std::mutex threads_mu_;
  std::list<Worker> workers_;
  std::vector<int> fds_;
};

}  // namespace cxlkv::baseline
