// Frame header checks, message verification and blocking frame I/O (frame.h).
#include "frame.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>

namespace cxlkv::wire {

Result<FrameHeader> check_frame_header(const uint8_t* bytes) {
  FrameHeader h;
  std::memcpy(&h, bytes, sizeof h);
  if (h.magic != kFrameMagic)
    return Status(Code::kProtocol, fmt::format("frame magic {:#06x}, expected {:#06x}", h.magic, kFrameMagic));
  if (h.version != kProtocolVersion)
    return Status(Code::kProtocol, fmt::format("frame protocol version {}, this side speaks {}", h.version, kProtocolVersion));
  if (h.length == 0 || h.length > kMaxFrameBytes)
    return Status(Code::kProtocol, fmt::format("frame length {} outside 1..{}", h.length, kMaxFrameBytes));
  return h;
}

FrameHeader make_frame_header(uint32_t length) { return FrameHeader{kFrameMagic, kProtocolVersion, length}; }

Result<const Request*> verify_request(const uint8_t* data, size_t size) {
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 16;
  opts.max_tables = 64;
  flatbuffers::Verifier v(data, size, opts);
  if (!VerifyRequestBuffer(v)) return Status(Code::kProtocol, fmt::format("request of {} bytes fails verification", size));
  return GetRequest(data);
}

Result<const Response*> verify_response(const uint8_t* data, size_t size) {
  flatbuffers::Verifier v(data, size);
  if (!v.VerifyBuffer<Response>(nullptr)) return Status(Code::kProtocol, fmt::format("response of {} bytes fails verification", size));
  return flatbuffers::GetRoot<Response>(data);
}

namespace {

Status write_all(int sock, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(sock, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("send frame");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

// Reads exactly n bytes; the first recvmsg may carry an fd.
Status read_all(int sock, uint8_t* p, size_t n, int* received_fd) {
  while (n > 0) {
    iovec iov{p, n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (received_fd) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
    }
    ssize_t r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      return io_error("receive frame");
    }
    if (r == 0) return Status(Code::kUnavailable, "connection closed by the peer");
    if (received_fd) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(received_fd, CMSG_DATA(c), sizeof(int));
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::ok();
}

}  // namespace

Status write_frame(int sock, const uint8_t* data, uint32_t size, int pass_fd) {
  if (size > kMaxFrameBytes) return Status(Code::kInvalidArgument, fmt::format("message of {} bytes over the {} limit", size, kMaxFrameBytes));
  const FrameHeader h = make_frame_header(size);
  if (pass_fd >= 0) {
    // The fd rides on the header bytes.
    iovec iov{const_cast<FrameHeader*>(&h), sizeof h};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof h)) return io_error("send frame with fd");
  } else if (Status st = write_all(sock, reinterpret_cast<const uint8_t*>(&h), sizeof h); !st) {
    return st;
  }
  return write_all(sock, data, size);
}

Status read_frame(int sock, std::vector<uint8_t>& out, int* received_fd) {
  if (received_fd) *received_fd = -1;
  uint8_t header[kFrameHeaderBytes];
  if (Status st = read_all(sock, header, sizeof header, received_fd); !st) return st;
  auto h = check_frame_header(header);
  if (!h) return h.status();
  out.resize(h->length);
  return read_all(sock, out.data(), out.size(), nullptr);
}

}  // namespace cxlkv::wire
