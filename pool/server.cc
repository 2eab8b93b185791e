// Listeners and connections of the control plane (server.h).
#include "server.h"

#include <grp.h>
#include <chrono>
#include <cstring>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ssl.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include "frame.h"

namespace cxlkv::pool {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;

// One client connection: (on a TLS listener, the handshake first) header, body, dispatch, reply;
// then the next frame.
template <typename Socket>
class Connection : public std::enable_shared_from_this<Connection<Socket>> {
  static constexpr bool kTls = std::is_same_v<Socket, TlsStream>;

 public:
  Connection(Server& server, Socket socket, bool unix_socket, std::string address)
      : server_(server), socket_(std::move(socket)), address_(std::move(address)), deadline_(socket_.get_executor()) {
    session_.unix_socket = unix_socket;
  }
  ~Connection() {
    if (session_.id != 0) server_.dispatcher().end_session(session_);
    if (id_ != 0) server_.leave(id_);
  }

  // Registers with the server (false: over the connection limit) and reads the first frame.
  bool start() {
    id_ = server_.admit(address_, [this] { close(); });
    if (id_ == 0) return false;
    // No Hello in time: closed, so a stalled peer holds a pending place for a bounded time only.
    // The deadline runs from the connection's start and covers the TLS handshake and first frames.
    arm(Wait::kHello, server_.config().hello_timeout_ms);
    if constexpr (kTls) {
      socket_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
        if (ec) {
          // A plain-TCP client on the TLS port, or a certificate it refused: logged, not served.
          self->server_.metrics().count_protocol_error();
          spdlog::info("connection {} from {}: TLS handshake failed: {}; closing it", self->id_, self->address_,
                       ec.message());
          return;
        }
        self->read_header();
      });
    } else {
      read_header();
    }
    return true;
  }

  // Over a connection limit: an `exhausted` reply, then the socket closes (the peer may not read it).
  // On TLS the socket just closes: a reply would need the handshake the limit is there to spare.
  void refuse([[maybe_unused]] const std::string& why) {
    if constexpr (!kTls) {
      Dispatcher::error_response(fbb_, 0, Status(Code::kExhausted, "connection refused: " + why));
      const wire::FrameHeader h = wire::make_frame_header(static_cast<uint32_t>(fbb_.GetSize()));
      std::array<asio::const_buffer, 2> bufs = {asio::buffer(&h, sizeof h),
                                                asio::buffer(fbb_.GetBufferPointer(), fbb_.GetSize())};
      error_code ec;
      asio::write(socket_, bufs, ec);
    }
    close();
  }

 private:
  void close() {
    error_code ignored;
    socket_.lowest_layer().close(ignored);
  }

  // What the deadline timer guards: Hello (from the start), a frame under way, or an idle session.
  enum class Wait { kNone, kHello, kFrame, kIdle };

  void arm(Wait what, uint32_t ms) {
    waiting_ = what;
    const uint64_t generation = ++deadline_generation_;
    if (what == Wait::kNone || ms == 0) {
      deadline_.cancel();
      return;
    }
    deadline_.expires_after(std::chrono::milliseconds(ms));
    deadline_.async_wait([weak = this->weak_from_this(), generation](error_code ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->deadline_generation_) return;  // re-armed or cancelled since
      self->on_deadline();
    });
  }

  void on_deadline() {
    const PoolConfig& c = server_.config();
    switch (waiting_) {
      case Wait::kHello:
        if (session_.id != 0) return;
        spdlog::info("connection {}: no hello within {} ms; closing it", id_, c.hello_timeout_ms);
        break;
      case Wait::kFrame:
        spdlog::info("session {} (connection {}): a frame begun was not whole within {} ms; closing it", session_.id,
                     id_, c.frame_timeout_ms);
        break;
      case Wait::kIdle:
        if (server_.dispatcher().holds_leases(session_)) return arm(Wait::kIdle, c.idle_timeout_ms);
        spdlog::info("session {}: idle for {} ms with no lease; closing it", session_.id, c.idle_timeout_ms);
        break;
      case Wait::kNone:
        return;
    }
    close();
  }

  // Between frames: an authenticated session may idle (up to idle_timeout_ms without leases); the
  // first byte of a frame starts its deadline.
  void read_header() {
    if (session_.id != 0) arm(Wait::kIdle, server_.config().idle_timeout_ms);
    asio::async_read(socket_, asio::buffer(header_, 1), [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return;  // the peer closed or the server stopped: the connection ends
      if (self->session_.id != 0) self->arm(Wait::kFrame, self->server_.config().frame_timeout_ms);
      asio::async_read(self->socket_, asio::buffer(self->header_ + 1, sizeof self->header_ - 1),
                       [self](error_code ec2, size_t) {
                         if (ec2) return;
                         self->on_header();
                       });
    });
  }

  void on_header() {
    auto h = wire::check_frame_header(header_);
    if (!h) {
      // The stream cannot be resynchronised: close (docs/protocol.md, "Frames").
      server_.metrics().count_protocol_error();
      spdlog::warn("session {}: {}; closing the connection", session_.id, h.status().message());
      return;
    }
    // The buffer only grows (to the largest frame seen, <= 1 MiB): no zero-fill per frame.
    body_size_ = h->length;
    if (body_.size() < body_size_) body_.resize(body_size_);
    asio::async_read(socket_, asio::buffer(body_.data(), body_size_), [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return;
      self->on_body();
    });
  }

  void on_body() {
    if (waiting_ == Wait::kFrame) arm(Wait::kNone, 0);
    const DispatchOutcome out = server_.dispatcher().handle(session_, body_.data(), body_size_, fbb_);
    close_after_ = out.close;
    if (session_.id != 0 && !authenticated_) {
      authenticated_ = true;
      arm(Wait::kNone, 0);
      server_.authenticated(id_, session_.admin ? Server::kNoPartition : session_.partition);
    }
    const auto size = static_cast<uint32_t>(fbb_.GetSize());
    if (out.pass_fd) {
      // Hello with the region fd (SCM_RIGHTS on the header): a small reply on an idle connection,
      // so the socket buffer takes it at once and the blocking helper does not block.
      const int fd = server_.region_fd(session_.partition, session_.reader);
      if (Status st = wire::write_frame(socket_.lowest_layer().native_handle(), fbb_.GetBufferPointer(), size, fd); !st) {
        spdlog::warn("session {}: reply with the region fd: {}", session_.id, st.message());
        return;
      }
      return read_header();
    }
    reply_header_ = wire::make_frame_header(size);
    auto next = [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec || self->close_after_) return;
      self->read_header();
    };
    if constexpr (kTls) {
      // One buffer: Asio's TLS stream seals each buffer of a sequence as records of its own, and a
      // record for the 8-byte header alone costs a seal, a MAC and a read at the client.
      reply_.resize(sizeof reply_header_ + size);
      std::memcpy(reply_.data(), &reply_header_, sizeof reply_header_);
      std::memcpy(reply_.data() + sizeof reply_header_, fbb_.GetBufferPointer(), size);
      asio::async_write(socket_, asio::buffer(reply_), std::move(next));
    } else {
      std::array<asio::const_buffer, 2> bufs = {asio::buffer(&reply_header_, sizeof reply_header_),
                                                asio::buffer(fbb_.GetBufferPointer(), size)};
      asio::async_write(socket_, bufs, std::move(next));
    }
  }

  Server& server_;
  Socket socket_;
  uint64_t id_ = 0;
  Session session_;
  uint8_t header_[wire::kFrameHeaderBytes] = {};
  std::vector<uint8_t> body_;
  size_t body_size_ = 0;
  flatbuffers::FlatBufferBuilder fbb_{64 << 10};
  wire::FrameHeader reply_header_{};
  std::vector<uint8_t> reply_;  // TLS: header and body as one buffer (grows to the largest reply)
  bool close_after_ = false;
  std::string address_;  // the TCP peer's address; empty on the Unix socket
  boost::asio::steady_timer deadline_;
  Wait waiting_ = Wait::kNone;
  uint64_t deadline_generation_ = 0;
  bool authenticated_ = false;
};

}  // namespace

Server::Server(asio::io_context& io, Dispatcher& dispatcher, Metrics& metrics, const PoolConfig& config,
               std::vector<PartitionFds> partition_fds)
    : io_(io), dispatcher_(dispatcher), metrics_(metrics), config_(config), partition_fds_(std::move(partition_fds)) {}

Server::~Server() { stop(); }

uint64_t Server::admit(const std::string& address, std::function<void()> close) {
  if (!address.empty() && per_address_[address] >= config_.max_connections_per_address) {
    refusal_ = fmt::format("at most {} connections from one address ({})", config_.max_connections_per_address, address);
    spdlog::warn("tcp connection refused: {}", refusal_);
    metrics_.count_rejected_connection();
    return 0;
  }
  if (pending_.size() >= config_.max_pending) {
    // The oldest connection still without a session makes room: it is the likeliest to be stalled.
    const uint64_t oldest = *pending_.begin();
    pending_.erase(pending_.begin());
    if (auto it = connections_.find(oldest); it != connections_.end()) it->second.close();
    metrics_.count_rejected_connection();
  }
  if (connections_.size() >= config_.max_connections) {
    refusal_ = fmt::format("at most {} connections", config_.max_connections);
    metrics_.count_rejected_connection();
    return 0;
  }
  connections_.emplace(++next_connection_, Admitted{std::move(close), address});
  if (!address.empty()) ++per_address_[address];
  pending_.insert(next_connection_);
  metrics_.set_connections(connections_.size());
  return next_connection_;
}

void Server::authenticated(uint64_t id, uint32_t partition) {
  pending_.erase(id);
  if (auto it = connections_.find(id); it != connections_.end()) it->second.partition = partition;
}

uint32_t Server::add_partition_fds(PartitionFds fds) {
  partition_fds_.push_back(fds);
  return uint32_t(partition_fds_.size() - 1);
}

uint64_t Server::close_partition_sessions(uint32_t partition) {
  uint64_t closed = 0;
  for (auto& [id, c] : connections_)
    if (c.partition == partition) c.close(), ++closed;
  partition_fds_[partition] = {};  // its fds are the partition's to close
  return closed;
}

void Server::leave(uint64_t id) {
  pending_.erase(id);
  if (auto it = connections_.find(id); it != connections_.end()) {
    if (const std::string& a = it->second.address; !a.empty() && --per_address_[a] == 0) per_address_.erase(a);
    connections_.erase(it);
  }
  metrics_.set_connections(connections_.size());
}

Status Server::start() {
  // TCP first: once the Unix socket answers, every listener is up (tests wait on the socket).
  if (!config_.tcp.empty())
    if (Status st = start_tcp(); !st) return st;
  if (!config_.unix_socket.empty())
    if (Status st = start_unix(); !st) return st;
  return Status::ok();
}

Status Server::start_unix() {
  const std::string& path = config_.unix_socket;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return Status(Code::kInvalidArgument, fmt::format("unix socket path '{}' is longer than {} bytes", path,
                                                      sizeof(sockaddr_un::sun_path) - 1));
  using local = asio::local::stream_protocol;
  error_code ec;
  if (::access(path.c_str(), F_OK) == 0) {
    local::socket probe(io_);
    probe.connect(local::endpoint(path), ec);
    if (!ec) return Status(Code::kBusy, fmt::format("unix socket {}: another daemon answers there", path));
    ::unlink(path.c_str());
  }
  gid_t socket_gid = gid_t(-1);
  if (!config_.unix_socket_group.empty()) {
    const struct group* g = ::getgrnam(config_.unix_socket_group.c_str());  // start-up, one thread
    if (!g) return Status(Code::kInvalidArgument, fmt::format("unix socket {}: no group '{}'", path,
                                                              config_.unix_socket_group));
    socket_gid = g->gr_gid;
  }
  unix_acceptor_ = std::make_unique<local::acceptor>(io_);
  unix_acceptor_->open(local(), ec);
  // The file is born owner-only whatever the umask, then given its mode and group: there is no
  // moment at which anyone else may connect.
  const mode_t old_umask = ::umask(0177);
  if (!ec) unix_acceptor_->bind(local::endpoint(path), ec);
  ::umask(old_umask);
  if (ec) return Status(Code::kIoError, fmt::format("unix socket {}: {}", path, ec.message()));
  if (socket_gid != gid_t(-1) && ::chown(path.c_str(), uid_t(-1), socket_gid) != 0)
    return io_error(fmt::format("unix socket {}: chown to group '{}'", path, config_.unix_socket_group));
  if (::chmod(path.c_str(), mode_t(config_.unix_socket_mode)) != 0)
    return io_error(fmt::format("unix socket {}: chmod {:04o}", path, config_.unix_socket_mode));
  unix_acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIoError, fmt::format("unix socket {}: {}", path, ec.message()));
  spdlog::info("listening on unix socket {} (mode {:04o}{}{})", path, config_.unix_socket_mode,
               socket_gid != gid_t(-1) ? ", group " : "", config_.unix_socket_group);
  accept_unix();
  return Status::ok();
}

Status Server::start_tcp() {
  const std::string& addr = config_.tcp;
  const size_t colon = addr.rfind(':');
  error_code ec;
  asio::ip::address ip;
  unsigned long port = 0;
  if (colon != std::string::npos) {
    ip = asio::ip::make_address(addr.substr(0, colon), ec);
    try {
      port = std::stoul(addr.substr(colon + 1));
    } catch (const std::exception&) {
      port = 1ul << 16;
    }
  }
  if (colon == std::string::npos || ec || port > 65535)
    return Status(Code::kInvalidArgument, fmt::format("tcp address '{}' is not host:port", addr));
  if (config_.tenants.empty() && !ip.is_loopback())
    return Status(Code::kPermissionDenied,
                  fmt::format("tcp {}: refusing a non-loopback listener with no tenants configured (open auth would "
                              "hand the region to anyone who reaches it); add [[tenant]] entries or bind 127.0.0.1",
                              addr));
  const bool tls = !config_.tls_certificate.empty();
  if (!tls && !ip.is_loopback()) {
    if (!config_.insecure_tcp)
      return Status(Code::kPermissionDenied,
                    fmt::format("tcp {}: refusing a non-loopback listener without TLS (tenant tokens would cross the "
                                "network in clear); give --tls-certificate and --tls-private-key, or --insecure-tcp "
                                "on a network you trust",
                                addr));
    spdlog::warn("tcp {}: no TLS (--insecure-tcp): tenant tokens cross the network in clear", addr);
  }
  if (tls)
    if (Status st = load_tls(); !st) return st;
  using tcp = asio::ip::tcp;
  const tcp::endpoint ep(ip, static_cast<uint16_t>(port));
  tcp_acceptor_ = std::make_unique<tcp::acceptor>(io_);
  tcp_acceptor_->open(ep.protocol(), ec);
  if (!ec) tcp_acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) tcp_acceptor_->bind(ep, ec);
  if (!ec) tcp_acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIoError, fmt::format("tcp {}: {}", addr, ec.message()));
  spdlog::info("listening on tcp {}:{}{}", ip.to_string(), tcp_acceptor_->local_endpoint().port(),
               tls ? " (TLS 1.2 or later: clients use tls:HOST:PORT)" : "");
  accept_tcp();
  return Status::ok();
}

Status Server::load_tls() {
  // TLS 1.2 at least; OpenSSL's default cipher list (Debian's policy) otherwise.
  tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  error_code ec;
  tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                        asio::ssl::context::single_dh_use,
                    ec);
  if (!ec) tls_->use_certificate_chain_file(config_.tls_certificate, ec);
  if (ec)
    return Status(Code::kInvalidArgument,
                  fmt::format("TLS certificate {}: {}", config_.tls_certificate, ec.message()));
  tls_->use_private_key_file(config_.tls_private_key, asio::ssl::context::pem, ec);
  if (ec)
    return Status(Code::kInvalidArgument, fmt::format("TLS private key {}: {}", config_.tls_private_key, ec.message()));
  if (SSL_CTX_check_private_key(tls_->native_handle()) != 1)
    return Status(Code::kInvalidArgument, fmt::format("TLS private key {} does not match the certificate {}",
                                                      config_.tls_private_key, config_.tls_certificate));
  return Status::ok();
}

void Server::accept_unix() {
  unix_acceptor_->async_accept([this](error_code ec, asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted || !unix_acceptor_ || !unix_acceptor_->is_open()) return;
    if (!ec) {
      auto c = std::make_shared<Connection<asio::local::stream_protocol::socket>>(*this, std::move(socket), true, "");
      if (!c->start()) c->refuse(refusal_);
    }
    accept_unix();
  });
}

void Server::accept_tcp() {
  tcp_acceptor_->async_accept([this](error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !tcp_acceptor_ || !tcp_acceptor_->is_open()) return;
    if (!ec) {
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
      const auto peer = socket.remote_endpoint(ec);
      std::string address = ec ? std::string("?") : peer.address().to_string();
      if (tls_) {
        auto c = std::make_shared<Connection<TlsStream>>(*this, TlsStream(std::move(socket), *tls_), false,
                                                         std::move(address));
        if (!c->start()) c->refuse(refusal_);
      } else {
        auto c = std::make_shared<Connection<asio::ip::tcp::socket>>(*this, std::move(socket), false, std::move(address));
        if (!c->start()) c->refuse(refusal_);
      }
    }
    accept_tcp();
  });
}

void Server::stop() {
  error_code ec;
  if (unix_acceptor_) {
    unix_acceptor_->close(ec);
    ::unlink(config_.unix_socket.c_str());
    unix_acceptor_.reset();
  }
  if (tcp_acceptor_) {
    tcp_acceptor_->close(ec);
    tcp_acceptor_.reset();
  }
  for (auto& [id, c] : connections_) c.close();
}

}  // namespace cxlkv::pool
