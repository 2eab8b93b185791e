// Control socket (connection.h): endpoint parsing, connect, one framed exchange.
#include "connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>

#include "frame.h"

namespace cxlkv::detail {

Result<Endpoint> parse_endpoint(const std::string& spec) {
  Endpoint ep;
  if (spec.rfind("unix:", 0) == 0) {
    ep.is_unix = true;
    ep.path = spec.substr(5);
    if (ep.path.empty()) return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': empty socket path", spec));
    if (ep.path.size() >= sizeof(sockaddr_un::sun_path))
      return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': socket path of {} bytes, at most {}", spec,
                                                        ep.path.size(), sizeof(sockaddr_un::sun_path) - 1));
    return ep;
  }
  if (spec.rfind("tcp:", 0) == 0) {
    ep.is_unix = false;
    const std::string rest = spec.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
      return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': expected tcp:host:port", spec));
    ep.host = rest.substr(0, colon);
    if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') ep.host = ep.host.substr(1, ep.host.size() - 2);
    unsigned port = 0;
    const char* first = rest.data() + colon + 1;
    const char* last = rest.data() + rest.size();
    auto [ptr, ec] = std::from_chars(first, last, port);
    if (ec != std::errc() || ptr != last || port == 0 || port > 65535)
      return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': port '{}' is not in 1..65535", spec, rest.substr(colon + 1)));
    ep.port = uint16_t(port);
    return ep;
  }
  return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': expected unix:/path or tcp:host:port", spec));
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// Set before connect: on Linux SO_SNDTIMEO also bounds a blocking connect (a host that drops
// the SYNs, a daemon whose accept queue is full), which then fails with EINPROGRESS.
void set_timeouts(int fd, int timeout_ms) {
  if (timeout_ms <= 0) return;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string connect_failure(const std::string& name, int err, int timeout_ms) {
  if (err == EINPROGRESS || err == EAGAIN || err == ETIMEDOUT)
    return fmt::format("{}: connect timed out after {} ms", name, timeout_ms);
  return fmt::format("{}: connect: {}", name, std::strerror(err));
}

}  // namespace

Status Connection::open(const Endpoint& endpoint, int timeout_ms) {
  endpoint_ = endpoint;
  if (endpoint.is_unix) {
    name_ = "unix:" + endpoint.path;
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return io_error(name_ + ": socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, endpoint.path.data(), endpoint.path.size());
    set_timeouts(fd_, timeout_ms);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      const int err = errno;
      ::close(fd_);
      fd_ = -1;
      const bool unavailable = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINPROGRESS;
      return Status(unavailable ? Code::kUnavailable : Code::kIoError, connect_failure(name_, err, timeout_ms));
    }
    return Status::ok();
  }
  name_ = fmt::format("tcp:{}:{}", endpoint.host, endpoint.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (int rc = ::getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return Status(Code::kUnavailable, fmt::format("{}: resolve host '{}': {}", name_, endpoint.host, gai_strerror(rc)));
  Status last(Code::kUnavailable, name_ + ": no address to connect to");
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    set_timeouts(fd, timeout_ms);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      break;
    }
    last = Status(Code::kUnavailable, connect_failure(name_, errno, timeout_ms));
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (fd_ < 0) return last;
  return Status::ok();
}

Status Connection::exchange(const uint8_t* message, uint32_t size, std::vector<uint8_t>& reply, int* received_fd) {
  if (received_fd) *received_fd = -1;
  if (Status st = send(message, size); !st) return st;
  return receive(reply, received_fd);
}

Status Connection::send(const uint8_t* message, uint32_t size) {
  if (fd_ < 0) return Status(Code::kUnavailable, name_ + ": connection closed after an earlier failure");
  if (Status st = wire::write_frame(fd_, message, size); !st) {
    ::close(fd_);
    fd_ = -1;
    return Status(st.code(), fmt::format("{}: {}", name_, st.message()));
  }
  return Status::ok();
}

Status Connection::receive(std::vector<uint8_t>& reply, int* received_fd) {
  if (received_fd) *received_fd = -1;
  if (fd_ < 0) return Status(Code::kUnavailable, name_ + ": connection closed after an earlier failure");
  if (Status st = wire::read_frame(fd_, reply, endpoint_.is_unix ? received_fd : nullptr); !st) {
    ::close(fd_);
    fd_ = -1;
    return Status(st.code(), fmt::format("{}: {}", name_, st.message()));
  }
  return Status::ok();
}

}  // namespace cxlkv::detail
