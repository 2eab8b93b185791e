// cxlkv-bulkd's connection handling (see bulk_server.h).
#include "bulk_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "socket_io.h"

namespace cxlkv::baseline {
namespace {

// Sends an error response whose payload is the message.
bool send_error(int fd, Code code, const std::string& message) {
  const wire::ResponseHeader h = wire::response(uint16_t(code), message.size());
  return send_all(fd, &h, sizeof h, "error header").is_ok() && send_all(fd, message.data(), message.size(), "error").is_ok();
}

// Reads and discards `bytes` of a request payload we refuse.
bool drain(int fd, uint64_t bytes) {
  char buf[4096];
  while (bytes > 0) {
    const size_t n = std::min<uint64_t>(bytes, sizeof buf);
    if (!recv_all(fd, buf, n, "payload").is_ok()) return false;
    bytes -= n;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<BulkServer>> BulkServer::start(const BulkServerOptions& options) {
  std::unique_ptr<BulkServer> s(new BulkServer());
  auto region = RegionReader::open(options.region);
  if (!region) return region.status();
  s->region_ = std::move(*region);
  if (options.rdma) {
    auto svc = RdmaService::open(options.rdma_options, s->region_->base(), s->region_->size());
    if (!svc) return svc.status();
    s->rdma_ = std::move(*svc);
  }
  auto fd = tcp_listen(options.listen, &s->port_);
  if (!fd) return fd.status();
  s->listen_fd_ = *fd;
  return s;
}

BulkServer::~BulkServer() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& w : workers_) w.thread.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void BulkServer::run() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    tune_socket(fd);
    join_finished();
    std::lock_guard<std::mutex> lock(threads_mu_);
    fds_.push_back(fd);
    Worker& w = workers_.emplace_back();
    w.thread = std::thread([this, fd, &w] {
      serve(fd);
      w.done = true;
    });
  }
}

void BulkServer::join_finished() {
  std::list<Worker> finished;
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      auto next = std::next(it);
      if (it->done) finished.splice(finished.end(), workers_, it);
      it = next;
    }
  }
  for (auto& w : finished) w.thread.join();
}

void BulkServer::serve(int fd) {
  std::unique_ptr<RdmaPeer> peer;
  while (!stopping_) {
    wire::RequestHeader h{};
    if (!recv_all(fd, &h, sizeof h, "request header").is_ok()) break;
    if (h.magic != wire::kRequestMagic || h.version != wire::kVersion) {
      send_error(fd, Code::kProtocol, fmt::format("bad request header: magic {:#x}, version {} (expected {:#x}, {})", h.magic,
                                                  h.version, wire::kRequestMagic, wire::kVersion));
      break;
    }
    if (!handle(fd, h, peer)) break;
  }
  peer.reset();
  std::lock_guard<std::mutex> lock(threads_mu_);
  std::erase(fds_, fd);
  ::close(fd);
}

bool BulkServer::handle(int fd, const wire::RequestHeader& h, std::unique_ptr<RdmaPeer>& peer) {
  switch (h.op) {
    case wire::kInfo: {
      if (h.payload_bytes != 0) return drain(fd, h.payload_bytes) && send_error(fd, Code::kProtocol, "info takes no payload");
      wire::RegionInfo info{};
      info.region_bytes = region_->size();
      std::memcpy(info.uuid, region_->header().uuid, sizeof info.uuid);
      info.flags = rdma_ ? wire::kInfoRdma : 0;
      info.geometry = region_->geometry();
      const wire::ResponseHeader r = wire::response(0, sizeof info);
      return send_all(fd, &r, sizeof r, "info").is_ok() && send_all(fd, &info, sizeof info, "info").is_ok();
    }
    case wire::kRead:
      return read_ranges(fd, h);
    case wire::kRdmaConnect: {
      wire::RdmaEndpoint client{};
      if (h.payload_bytes != sizeof client)
        return drain(fd, h.payload_bytes) &&
               send_error(fd, Code::kProtocol, fmt::format("rdma connect: payload {} B, expected {}", h.payload_bytes, sizeof client));
      if (!recv_all(fd, &client, sizeof client, "rdma endpoint").is_ok()) return false;
      if (!rdma_) return send_error(fd, Code::kUnavailable, "rdma connect: this cxlkv-bulkd serves TCP only (start it with --rdma)");
      wire::RdmaAccept accept{};
      auto p = rdma_->accept(client, accept);
      if (!p) return send_error(fd, p.status().code(), "rdma connect: " + p.status().message());
      peer = std::move(*p);
      const wire::ResponseHeader r = wire::response(0, sizeof accept);
      return send_all(fd, &r, sizeof r, "accept").is_ok() && send_all(fd, &accept, sizeof accept, "accept").is_ok();
    }
    default:
      return drain(fd, h.payload_bytes) && send_error(fd, Code::kProtocol, fmt::format("unknown op {}", h.op));
  }
}

bool BulkServer::read_ranges(int fd, const wire::RequestHeader& h) {
  if (h.count == 0 || h.count > wire::kMaxRanges || h.payload_bytes != uint64_t{h.count} * sizeof(wire::ReadRange))
    return drain(fd, h.payload_bytes) &&
           send_error(fd, Code::kProtocol, fmt::format("read: {} ranges in {} B (1..{} ranges of {} B each)", h.count,
                                                       h.payload_bytes, wire::kMaxRanges, sizeof(wire::ReadRange)));
  std::vector<wire::ReadRange> ranges(h.count);
  if (!recv_all(fd, ranges.data(), h.payload_bytes, "read ranges").is_ok()) return false;
  uint64_t total = 0;
  std::vector<iovec> iov(h.count);
  for (uint32_t i = 0; i < h.count; ++i) {
    const wire::ReadRange& r = ranges[i];
    if (r.length == 0 || r.length > wire::kMaxRangeBytes || r.offset > region_->size() || r.length > region_->size() - r.offset)
      return send_error(fd, Code::kInvalidArgument, fmt::format("read: range {} [{}, +{}) is outside the region of {} B", i,
                                                                r.offset, r.length, region_->size()));
    total += r.length;
    iov[i] = {const_cast<uint8_t*>(region_->base() + r.offset), r.length};
  }
  if (total > wire::kMaxReadBytes)
    return send_error(fd, Code::kInvalidArgument, fmt::format("read: {} B in one request, at most {}", total, wire::kMaxReadBytes));
  const wire::ResponseHeader resp = wire::response(0, total);
  return send_all(fd, &resp, sizeof resp, "read header").is_ok() && send_iov(fd, iov.data(), iov.size(), "read data").is_ok();
}

}  // namespace cxlkv::baseline
