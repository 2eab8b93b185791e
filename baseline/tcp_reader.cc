// TCP range reads against cxlkv-bulkd (see tcp_reader.h).
#include "tcp_reader.h"

#include <unistd.h>

#include <fmt/format.h>

#include "socket_io.h"

namespace cxlkv::baseline {

Result<std::unique_ptr<TcpReader>> TcpReader::connect(const std::string& host_port) {
  auto fd = tcp_connect(host_port);
  if (!fd) return fd.status();
  std::unique_ptr<TcpReader> r(new TcpReader());
  r->fd_ = *fd;
  r->peer_ = host_port;
  if (Status st = r->exchange(wire::kInfo, 0, nullptr, 0, &r->info_, sizeof r->info_); !st) return st;
  return r;
}

TcpReader::~TcpReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status TcpReader::server_error(const wire::ResponseHeader& h) {
  std::string msg(std::min<uint64_t>(h.payload_bytes, 4096), '\0');
  if (Status st = recv_all(fd_, msg.data(), msg.size(), "error message"); !st) return st;
  const Code code = h.code <= uint16_t(Code::kExpired) ? Code(h.code) : Code::kProtocol;
  return Status(code, fmt::format("cxlkv-bulkd {}: {}", peer_, msg));
}

Status TcpReader::exchange(wire::Op op, uint32_t count, const void* payload, uint32_t payload_bytes, void* answer,
                           uint64_t answer_bytes) {
  const wire::RequestHeader req = wire::request(op, count, payload_bytes);
  if (Status st = send_all(fd_, &req, sizeof req, "request header"); !st) return st;
  if (payload_bytes > 0)
    if (Status st = send_all(fd_, payload, payload_bytes, "request payload"); !st) return st;
  wire::ResponseHeader h{};
  if (Status st = recv_all(fd_, &h, sizeof h, "response header"); !st) return st;
  if (h.magic != wire::kResponseMagic || h.version != wire::kVersion)
    return Status(Code::kProtocol, fmt::format("cxlkv-bulkd {}: bad response header (magic {:#x}, version {})", peer_, h.magic, h.version));
  if (h.code != 0) return server_error(h);
  if (h.payload_bytes != answer_bytes)
    return Status(Code::kProtocol, fmt::format("cxlkv-bulkd {}: op {} answered {} B, expected {}", peer_, int(op), h.payload_bytes, answer_bytes));
  return recv_all(fd_, answer, answer_bytes, "response payload");
}

Status TcpReader::read(std::span<const Range> ranges, uint8_t* local_base, const BatchLimits& limits) {
  split_batches(ranges, std::min<size_t>(limits.max_ranges, wire::kMaxRanges),
                std::min<uint64_t>(limits.max_bytes, wire::kMaxReadBytes), batches_);
  for (const Batch& b : batches_) {
    request_.resize(b.count);
    for (size_t i = 0; i < b.count; ++i) request_[i] = {ranges[b.first + i].remote, ranges[b.first + i].length, 0};
    const uint32_t payload = uint32_t(b.count * sizeof(wire::ReadRange));
    const wire::RequestHeader req = wire::request(wire::kRead, uint32_t(b.count), payload);
    if (Status st = send_all(fd_, &req, sizeof req, "read header"); !st) return st;
    if (Status st = send_all(fd_, request_.data(), payload, "read ranges"); !st) return st;
    wire::ResponseHeader h{};
    if (Status st = recv_all(fd_, &h, sizeof h, "read response header"); !st) return st;
    if (h.magic != wire::kResponseMagic) return Status(Code::kProtocol, fmt::format("cxlkv-bulkd {}: bad response magic {:#x}", peer_, h.magic));
    if (h.code != 0) return server_error(h);
    if (h.payload_bytes != b.bytes)
      return Status(Code::kProtocol, fmt::format("cxlkv-bulkd {}: read answered {} B, asked {}", peer_, h.payload_bytes, b.bytes));
    iov_.resize(b.count);
    for (size_t i = 0; i < b.count; ++i) iov_[i] = {local_base + ranges[b.first + i].local, ranges[b.first + i].length};
    if (Status st = recv_iov(fd_, iov_.data(), iov_.size(), "read data"); !st) return st;
    counts_.bytes += b.bytes;
    counts_.messages += b.count;
    counts_.batches += 1;
  }
  return Status::ok();
}

}  // namespace cxlkv::baseline
