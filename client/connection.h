// Connection: the client's control socket to the daemon (Unix or TCP) and one blocking
// request/response exchange over it (wire/ framing). Used only by detail::Session, which
// serializes callers; a Connection itself is not thread-safe. Knows nothing of the ops.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::detail {

// A parsed endpoint: "unix:/path" or "tcp:host:port".
struct Endpoint {
  bool is_unix = true;
  std::string path;  // unix
  std::string host;  // tcp
  uint16_t port = 0;
};
Result<Endpoint> parse_endpoint(const std::string& spec);

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (TCP_NODELAY on TCP) and sets send/receive timeouts of timeout_ms.
  Status open(const Endpoint& endpoint, int timeout_ms);
  bool is_unix() const { return endpoint_.is_unix; }
  const std::string& name() const { return name_; }

  // Sends one message and reads one reply into `reply`; a passed fd lands in *received_fd
  // (or -1). After an I/O or framing failure the connection is closed for good.
  Status exchange(const uint8_t* message, uint32_t size, std::vector<uint8_t>& reply, int* received_fd = nullptr);
  // The two halves of exchange, for a request whose reply is read later (a lookup sent to several
  // nodes before any reply is read). Same failure rule.
  Status send(const uint8_t* message, uint32_t size);
  Status receive(std::vector<uint8_t>& reply, int* received_fd = nullptr);

 private:
  Endpoint endpoint_;
  std::string name_;
  int fd_ = -1;
};

}  // namespace cxlkv::detail
