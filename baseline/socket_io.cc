// Blocking socket helpers (see socket_io.h).
#include "socket_io.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include <fmt/format.h>

namespace cxlkv::baseline {

Status parse_host_port(const std::string& text, std::string& host, uint16_t& port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Status(Code::kInvalidArgument, fmt::format("'{}': expected host:port", text));
  host = text.substr(0, colon);
  const std::string p = text.substr(colon + 1);
  char* end = nullptr;
  const unsigned long v = std::strtoul(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v > 65535) return Status(Code::kInvalidArgument, fmt::format("'{}': bad port '{}'", text, p));
  port = uint16_t(v);
  return Status::ok();
}

void tune_socket(int fd) {
  int one = 1, buf = 4 << 20;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

namespace {
Result<addrinfo*> resolve(const std::string& host, uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) return Status(Code::kInvalidArgument, fmt::format("resolve '{}:{}': {}", host, port, gai_strerror(rc)));
  return res;
}
}  // namespace

Result<int> tcp_connect(const std::string& host_port) {
  std::string host;
  uint16_t port = 0;
  if (Status st = parse_host_port(host_port, host, port); !st) return st;
  auto res = resolve(host, port, false);
  if (!res) return res.status();
  int fd = -1;
  for (addrinfo* a = *res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    tune_socket(fd);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(*res);
  if (fd < 0) return io_error("connect to " + host_port);
  return fd;
}

Result<int> tcp_listen(const std::string& host_port, uint16_t* bound_port) {
  std::string host;
  uint16_t port = 0;
  if (Status st = parse_host_port(host_port, host, port); !st) return st;
  auto res = resolve(host, port, true);
  if (!res) return res.status();
  int fd = -1;
  for (addrinfo* a = *res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) break;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(*res);
  if (fd < 0) return io_error("listen on " + host_port);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (bound_port != nullptr)
    *bound_port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                             : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return fd;
}

Status send_all(int fd, const void* data, size_t bytes, const char* what) {
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::send(fd, p + done, bytes - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error(fmt::format("send {} ({} of {} B sent)", what, done, bytes));
    done += size_t(n);
  }
  return Status::ok();
}

Status recv_all(int fd, void* data, size_t bytes, const char* what) {
  auto* p = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::recv(fd, p + done, bytes - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Status(Code::kUnavailable, fmt::format("receive {}: peer closed after {} of {} B", what, done, bytes));
    if (n < 0) return io_error(fmt::format("receive {} ({} of {} B received)", what, done, bytes));
    done += size_t(n);
  }
  return Status::ok();
}

namespace {
// Moves all of iov[0..n) through sendmsg or recvmsg, IOV_MAX entries at a time.
Status move_iov(int fd, struct iovec* iov, size_t n, bool sending, const char* what) {
  size_t i = 0;
  while (i < n && iov[i].iov_len == 0) ++i;
  while (i < n) {
    msghdr msg{};
    msg.msg_iov = iov + i;
    msg.msg_iovlen = std::min<size_t>(n - i, IOV_MAX);
    const ssize_t moved = sending ? ::sendmsg(fd, &msg, MSG_NOSIGNAL) : ::recvmsg(fd, &msg, MSG_WAITALL);
    if (moved < 0 && errno == EINTR) continue;
    if (moved == 0 && !sending) return Status(Code::kUnavailable, fmt::format("receive {}: peer closed", what));
    if (moved <= 0) return io_error(fmt::format("{} {}", sending ? "send" : "receive", what));
    size_t left = size_t(moved);
    while (i < n && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (i < n && left > 0) {
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
    while (i < n && iov[i].iov_len == 0) ++i;
  }
  return Status::ok();
}
}  // namespace

Status send_iov(int fd, struct iovec* iov, size_t n, const char* what) { return move_iov(fd, iov, n, true, what); }
Status recv_iov(int fd, struct iovec* iov, size_t n, const char* what) { return move_iov(fd, iov, n, false, what); }

}  // namespace cxlkv::baseline
