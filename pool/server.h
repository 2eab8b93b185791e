// Server: the control-plane listeners (Unix socket, and TCP with or without TLS, Boost.Asio) and
// their connections.
// One I/O thread runs everything, so the dispatcher and PoolService it drives need no locks.
// A connection reads one frame, answers it, then reads the next (no pipelining). A bad header
// closes that connection only; frame sizes, connections and keys are bounded. main.cc owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <utility>  // before Asio: boost 1.74's awaitable.hpp uses std::exchange
#include <set>
#include <unordered_map>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config.h"
#include "dispatch.h"
#include "metrics.h"

namespace cxlkv::pool {

class Server {
 public:
  // The fds of each partition's region, by partition index: `writer` is handed to writer
  // sessions, `read_only` (O_RDONLY) to readers, each only of its own tenant's partition.
  struct PartitionFds {
    int writer = -1;
    int read_only = -1;
  };
  Server(boost::asio::io_context& io, Dispatcher& dispatcher, Metrics& metrics, const PoolConfig& config,
         std::vector<PartitionFds> partition_fds);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the configured listeners and starts accepting. An existing socket file that nobody
  // answers on is replaced; one with a live daemon behind it is an error.
  Status start();
  // Stops accepting, removes the Unix socket file and closes every connection (their handlers
  // then finish with an error; run the io_context once more to let them go).
  void stop();

  // Connection bookkeeping, called by connections: admit() returns an id (0: over the limit),
  // `close` is how stop() ends that connection.
  // A new connection counts as pending until authenticated(); over max_pending, admitting one
  // closes the oldest pending connection.
  // `address`: a TCP peer's (at most max_connections_per_address each), empty on the Unix socket.
  uint64_t admit(const std::string& address, std::function<void()> close);
  // The connection's session is open, served by `partition` (kNoPartition: an admin session).
  static constexpr uint32_t kNoPartition = 0xffffffffu;
  void authenticated(uint64_t id, uint32_t partition);
  void leave(uint64_t id);
  const PoolConfig& config() const { return config_; }
  // The fd a session of `partition` is handed: read-only for readers.
  int region_fd(uint32_t partition, bool reader) const {
    return reader ? partition_fds_[partition].read_only : partition_fds_[partition].writer;
  }
  Dispatcher& dispatcher() { return dispatcher_; }
  // A partition opened online (the dispatcher's index of it is the one returned).
  uint32_t add_partition_fds(PartitionFds fds);
  // Closes every connection whose session `partition` serves (their handlers end them) and drops
  // its fds, before the partition is closed; returns how many.
  uint64_t close_partition_sessions(uint32_t partition);
  Metrics& metrics() { return metrics_; }

 private:
  Status start_unix();
  Status start_tcp();
  Status load_tls();  // config's certificate and key into tls_
  void accept_unix();
  void accept_tcp();

  boost::asio::io_context& io_;
  Dispatcher& dispatcher_;
  Metrics& metrics_;
  const PoolConfig& config_;
  std::vector<PartitionFds> partition_fds_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  // set: the TCP listener speaks TLS
  struct Admitted {
    std::function<void()> close;
    std::string address;
    uint32_t partition = kNoPartition;  // set when its session opens
  };
  std::unordered_map<uint64_t, Admitted> connections_;
  std::unordered_map<std::string, uint32_t> per_address_;
  std::string refusal_;  // why admit() last returned 0
  std::set<uint64_t> pending_;  // ids of connections without a session, oldest first
  uint64_t next_connection_ = 0;
};

}  // namespace cxlkv::pool
