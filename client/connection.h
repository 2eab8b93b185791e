// Connection: the client's control socket to the daemon (Unix, TCP, or TCP with TLS through
// OpenSSL) and one blocking request/response exchange over it (wire/ framing). Used only by
// detail::Session, which serializes callers; a Connection itself is not thread-safe. Knows
// nothing of the ops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::detail {

// A parsed endpoint: "unix:/path", "tcp:host:port" or "tls:host:port" (TCP with TLS).
struct Endpoint {
  bool is_unix = true;
  bool tls = false;
  std::string path;  // unix
  std::string host;  // tcp
  uint16_t port = 0;
};
Result<Endpoint> parse_endpoint(const std::string& spec);

class Connection {
 public:
  Connection();
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (TCP_NODELAY on TCP) and sets send/receive timeouts of timeout_ms. On tls: the
  // handshake follows, TLS 1.2 or later, the daemon's certificate checked against tls_ca_file
  // (PEM; empty: the system's trusted CAs) and the endpoint's host name or address.
  Status open(const Endpoint& endpoint, int timeout_ms, const std::string& tls_ca_file = {});
  bool is_unix() const { return endpoint_.is_unix; }
  // Whether a request could be sent now: open, and the daemon has not closed its end (no
  // hang-up, nothing read as its close). Cold: a poll and a peek, without waiting.
  bool usable() const;
  const std::string& name() const { return name_; }

  // Sends one message and reads one reply into `reply`; a passed fd lands in *received_fd
  // (or -1). After an I/O or framing failure the connection is closed for good.
  Status exchange(const uint8_t* message, uint32_t size, std::vector<uint8_t>& reply, int* received_fd = nullptr);
  // The two halves of exchange, for a request whose reply is read later (a lookup sent to several
  // nodes before any reply is read). Same failure rule.
  Status send(const uint8_t* message, uint32_t size);
  Status receive(std::vector<uint8_t>& reply, int* received_fd = nullptr);

 private:
  Status start_tls(const std::string& ca_file);
  Status write_bytes(const uint8_t* data, size_t size);
  Status read_bytes(uint8_t* data, size_t size);
  void close();

  struct Tls;  // OpenSSL's context and connection, kept out of this header
  Endpoint endpoint_;
  std::string name_;
  int fd_ = -1;
  std::unique_ptr<Tls> tls_;
};

}  // namespace cxlkv::detail
