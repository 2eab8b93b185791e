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

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config.h"
#include "dispatch.h"
#include "metrics.h"

namespace cxlkv::pool {

class Server {
 public:
  // region_fd is handed to writer sessions, region_read_only_fd (O_RDONLY) to readers.
  Server(boost::asio::io_context& io, Dispatcher& dispatcher, Metrics& metrics, const PoolConfig& config,
         int region_fd, int region_read_only_fd);
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
  void authenticated(uint64_t id);
  void leave(uint64_t id);
  const PoolConfig& config() const { return config_; }
  int region_fd() const { return region_fd_; }
  int region_read_only_fd() const { return region_read_only_fd_; }
  Dispatcher& dispatcher() { return dispatcher_; }
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
  int region_fd_;
  int region_read_only_fd_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  // set: the TCP listener speaks TLS
  struct Admitted {
    std::function<void()> close;
    std::string address;
  };
  std::unordered_map<uint64_t, Admitted> connections_;
  std::unordered_map<std::string, uint32_t> per_address_;
  std::string refusal_;  // why admit() last returned 0
  std::set<uint64_t> pending_;  // ids of connections without a session, oldest first
  uint64_t next_connection_ = 0;
};

}  // namespace cxlkv::pool
