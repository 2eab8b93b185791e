// Control socket (connection.h): endpoint parsing, connect, one framed exchange.
#include "connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <arpa/inet.h>
#include <pthread.h>
#include <csignal>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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
  if (spec.rfind("tcp:", 0) == 0 || spec.rfind("tls:", 0) == 0) {
    ep.is_unix = false;
    ep.tls = spec[1] == 'l';
    const std::string rest = spec.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
      return Status(Code::kInvalidArgument, fmt::format("endpoint '{}': expected {}:host:port", spec, spec.substr(0, 3)));
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
  return Status(Code::kInvalidArgument,
                fmt::format("endpoint '{}': expected unix:/path, tcp:host:port or tls:host:port", spec));
}

struct Connection::Tls {
  struct FreeContext {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  struct FreeSsl {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  std::unique_ptr<SSL_CTX, FreeContext> context;
  std::unique_ptr<SSL, FreeSsl> ssl;
  std::vector<uint8_t> out;  // header and message, sent as one record
};

Connection::Connection() = default;
Connection::~Connection() { close(); }

bool Connection::usable() const {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) == 0) return true;  // nothing to read, no hang-up, no error: idle and open
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return false;
  // Bytes waiting while idle: on TLS 1.3 the daemon's session tickets, which a client reads with
  // its first reply; the peer is there. A read of 0 would be its close.
  char byte;
  return ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void Connection::close() {
  tls_.reset();  // no close_notify: the daemon treats a closed socket as the end either way
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
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

Status Connection::open(const Endpoint& endpoint, int timeout_ms, const std::string& tls_ca_file) {
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
  if (endpoint.tls) {
    name_ = fmt::format("tls:{}:{}", endpoint.host, endpoint.port);
    if (Status st = start_tls(tls_ca_file); !st) {
      close();
      return st;
    }
  }
  return Status::ok();
}

namespace {

// OpenSSL's queued errors as one line (and the queue emptied), or `fallback` when there are none.
std::string openssl_errors(const char* fallback) {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

// OpenSSL writes to the socket with write(2), not send(MSG_NOSIGNAL): a daemon that closed the
// connection would raise SIGPIPE and end the caller's process. While a guard lives, SIGPIPE is
// blocked in this thread, and one raised meanwhile is taken off the thread before it unblocks.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

}  // namespace

Status Connection::start_tls(const std::string& ca_file) {
  ERR_clear_error();
  auto tls = std::make_unique<Tls>();
  tls->context.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls->context) return Status(Code::kIoError, name_ + ": TLS context: " + openssl_errors("out of memory"));
  SSL_CTX* ctx = tls->context.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const bool loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                      : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) == 1;
  if (!loaded)
    return Status(Code::kInvalidArgument,
                  fmt::format("{}: TLS CA file '{}': {}", name_, ca_file.empty() ? "(the system's)" : ca_file,
                              openssl_errors("not loaded")));
  tls->ssl.reset(SSL_new(ctx));
  SSL* ssl = tls->ssl.get();
  if (!ssl || SSL_set_fd(ssl, fd_) != 1) return Status(Code::kIoError, name_ + ": TLS: " + openssl_errors("SSL_new"));
  // The certificate must name what the client dialled: an address literal as an IP SAN, a name as
  // a DNS SAN (also sent as SNI).
  in6_addr probe{};
  const bool literal = ::inet_pton(AF_INET, endpoint_.host.c_str(), &probe) == 1 ||
                       ::inet_pton(AF_INET6, endpoint_.host.c_str(), &probe) == 1;
  const bool named = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), endpoint_.host.c_str()) == 1
                             : SSL_set1_host(ssl, endpoint_.host.c_str()) == 1 &&
                                   SSL_set_tlsext_host_name(ssl, endpoint_.host.c_str()) == 1;
  if (!named) return Status(Code::kInvalidArgument, fmt::format("{}: TLS: host '{}' not usable for verification",
                                                                name_, endpoint_.host));
  const NoSigpipe guard;
  errno = 0;
  if (SSL_connect(ssl) != 1) {
    const long verdict = SSL_get_verify_result(ssl);
    if (verdict != X509_V_OK)
      return Status(Code::kPermissionDenied, fmt::format("{}: TLS: the daemon's certificate is not trusted: {}", name_,
                                                         X509_verify_cert_error_string(verdict)));
    const int err = errno;
    return Status(Code::kUnavailable,
                  fmt::format("{}: TLS handshake failed: {}", name_,
                              openssl_errors(err ? std::strerror(err) : "the daemon closed the connection (is its "
                                                                        "TCP listener TLS?)")));
  }
  ERR_clear_error();  // loading the system's CAs may leave notes behind on success
  tls_ = std::move(tls);
  return Status::ok();
}

namespace {

// What a failed SSL_read or SSL_write means, as a Status: a timeout (SO_RCVTIMEO / SO_SNDTIMEO
// surface as WANT_READ / WANT_WRITE), the peer gone (as plain TCP says it), or OpenSSL's reasons.
Status tls_failure(SSL* ssl, int rc, const char* what) {
  const int code = SSL_get_error(ssl, rc);
  const int err = errno;
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
    return Status(Code::kIoError, fmt::format("TLS {}: timed out", what));
  const unsigned long first = ERR_peek_error();
  if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && first == 0 && err == 0) ||
      (code == SSL_ERROR_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    return Status(Code::kUnavailable, "connection closed by the peer");
  }
  return Status(Code::kIoError, fmt::format("TLS {}: {}", what, openssl_errors(err ? std::strerror(err) : "failed")));
}

}  // namespace

Status Connection::write_bytes(const uint8_t* data, size_t size) {
  const NoSigpipe guard;
  while (size > 0) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_write(tls_->ssl.get(), data, static_cast<int>(std::min<size_t>(size, 1 << 30)));
    if (n <= 0) return tls_failure(tls_->ssl.get(), n, "send");
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status Connection::read_bytes(uint8_t* data, size_t size) {
  const NoSigpipe guard;  // a TLS 1.3 read may write (a key update's answer)
  while (size > 0) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_read(tls_->ssl.get(), data, static_cast<int>(std::min<size_t>(size, 1 << 30)));
    if (n <= 0) return tls_failure(tls_->ssl.get(), n, "receive");
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status Connection::exchange(const uint8_t* message, uint32_t size, std::vector<uint8_t>& reply, int* received_fd) {
  if (received_fd) *received_fd = -1;
  if (Status st = send(message, size); !st) return st;
  return receive(reply, received_fd);
}

Status Connection::send(const uint8_t* message, uint32_t size) {
  if (fd_ < 0) return Status(Code::kUnavailable, name_ + ": connection closed after an earlier failure");
  Status st;
  if (!tls_) {
    st = wire::write_frame(fd_, message, size);
  } else if (size > wire::kMaxFrameBytes) {
    st = Status(Code::kInvalidArgument, fmt::format("message of {} bytes over the {} limit", size, wire::kMaxFrameBytes));
  } else {
    const wire::FrameHeader h = wire::make_frame_header(size);
    tls_->out.resize(sizeof h + size);
    std::memcpy(tls_->out.data(), &h, sizeof h);
    std::memcpy(tls_->out.data() + sizeof h, message, size);
    st = write_bytes(tls_->out.data(), tls_->out.size());
  }
  if (!st) {
    close();
    return Status(st.code(), fmt::format("{}: {}", name_, st.message()));
  }
  return Status::ok();
}

Status Connection::receive(std::vector<uint8_t>& reply, int* received_fd) {
  if (received_fd) *received_fd = -1;
  if (fd_ < 0) return Status(Code::kUnavailable, name_ + ": connection closed after an earlier failure");
  Status st;
  if (!tls_) {
    st = wire::read_frame(fd_, reply, endpoint_.is_unix ? received_fd : nullptr);
  } else {
    uint8_t header[wire::kFrameHeaderBytes];
    st = read_bytes(header, sizeof header);
    if (st) {
      auto h = wire::check_frame_header(header);
      if (!h) {
        st = h.status();
      } else {
        reply.resize(h->length);
        st = read_bytes(reply.data(), reply.size());
      }
    }
  }
  if (!st) {
    close();
    return Status(st.code(), fmt::format("{}: {}", name_, st.message()));
  }
  return Status::ok();
}

}  // namespace cxlkv::detail
