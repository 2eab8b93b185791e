// RawClient: a raw control-plane client for tests that talk to the real daemon (tests/pool and
// its lookup benchmark). It builds requests with FlatBuffers and frames them with wire/'s framing,
// and it can also send any bytes at all (bad magic, truncated frames, garbage) to check how the
// daemon takes them. Never uses libcxlkv: the daemon is tested against the protocol document.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <xxhash.h>

#include "frame.h"
#include "poold_process.h"

namespace cxlkv::testing {

// A deterministic 32-byte page key for page `i` of chain `chain`.
inline wire::Key test_key(uint64_t chain, uint64_t i) {
  uint8_t b[32];
  for (int w = 0; w < 4; ++w) {
    const uint64_t x = XXH64(&i, sizeof i, chain * 4 + w);
    std::memcpy(b + 8 * w, &x, 8);
  }
  wire::Key k;
  std::memcpy(&k, b, sizeof b);
  return k;
}

inline std::vector<wire::Key> test_keys(uint64_t chain, uint64_t n, uint64_t first = 0) {
  std::vector<wire::Key> keys;
  for (uint64_t i = first; i < first + n; ++i) keys.push_back(test_key(chain, i));
  return keys;
}

class RawClient {
 public:
  explicit RawClient(const std::string& socket_path) : fd_(connect_unix(socket_path)) {}
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    if (received_fd_ >= 0) ::close(received_fd_);
    fd_ = received_fd_ = -1;
  }

  // Any bytes, as they are.
  bool send_raw(const void* data, size_t n) {
    return fd_ >= 0 && ::send(fd_, data, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
  }
  // One frame around a finished FlatBuffer.
  bool send(const flatbuffers::FlatBufferBuilder& fbb) {
    return fd_ >= 0 && wire::write_frame(fd_, fbb.GetBufferPointer(), static_cast<uint32_t>(fbb.GetSize())).is_ok();
  }
  // The next response, or nullptr on timeout, a closed connection or a reply that fails checks.
  // Valid until the next receive. A region fd passed with it lands in received_fd().
  const wire::Response* receive(int timeout_ms = 5000) {
    pollfd p{fd_, POLLIN, 0};
    if (fd_ < 0 || ::poll(&p, 1, timeout_ms) != 1) return nullptr;
    if (received_fd_ >= 0) ::close(received_fd_);
    if (!wire::read_frame(fd_, buf_, &received_fd_).is_ok()) return nullptr;
    auto r = wire::verify_response(buf_.data(), buf_.size());
    return r ? *r : nullptr;
  }
  // True when the daemon closes the connection within the timeout (EOF or reset).
  bool closed_by_peer(int timeout_ms = 5000) {
    pollfd p{fd_, POLLIN, 0};
    if (fd_ < 0 || ::poll(&p, 1, timeout_ms) != 1) return false;
    uint8_t byte;
    for (;;) {
      const ssize_t r = ::recv(fd_, &byte, 1, 0);
      if (r <= 0) return true;
      if (::poll(&p, 1, timeout_ms) != 1) return false;  // drain a reply sent before the close
    }
  }
  int received_fd() const { return received_fd_; }
  int fd() const { return fd_; }

  // Request builders: send and wait for the answer.
  const wire::Response* call(flatbuffers::FlatBufferBuilder& fbb) { return send(fbb) ? receive() : nullptr; }

  const wire::Response* hello(const std::string& tenant, const std::string& token, const std::string& model,
                              bool want_fd = false, wire::Role role = wire::Role::Writer) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateHelloRequestDirect(fbb, wire::kProtocolVersion, tenant.c_str(), token.c_str(),
                                               model.c_str(), want_fd, role);
    return finish(fbb, wire::RequestBody::HelloRequest, body.Union());
  }
  const wire::Response* reserve(const wire::Key& parent, const std::vector<wire::Key>& keys) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateReserveRequestDirect(fbb, &parent, &keys);
    return finish(fbb, wire::RequestBody::ReserveRequest, body.Union());
  }
  const wire::Response* commit(uint64_t lease, const std::vector<uint64_t>& checksums) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateCommitRequestDirect(fbb, lease, &checksums);
    return finish(fbb, wire::RequestBody::CommitRequest, body.Union());
  }
  const wire::Response* lookup(const std::vector<wire::Key>& keys) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateLookupRequestDirect(fbb, &keys);
    return finish(fbb, wire::RequestBody::LookupRequest, body.Union());
  }
  const wire::Response* remove(const std::vector<wire::Key>& keys) {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateRemoveRequestDirect(fbb, &keys);
    return finish(fbb, wire::RequestBody::RemoveRequest, body.Union());
  }
  const wire::Response* abort(uint64_t lease) {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::AbortRequest, wire::CreateAbortRequest(fbb, lease).Union());
  }
  const wire::Response* renew(uint64_t lease) {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::RenewRequest, wire::CreateRenewRequest(fbb, lease).Union());
  }
  const wire::Response* release(uint64_t lease) {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::ReleaseRequest, wire::CreateReleaseRequest(fbb, lease).Union());
  }
  const wire::Response* stats() {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::StatsRequest, wire::CreateStatsRequest(fbb).Union());
  }
  const wire::Response* list_pages(uint64_t from_slot, uint32_t max) {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::ListPagesRequest, wire::CreateListPagesRequest(fbb, from_slot, max).Union());
  }
  const wire::Response* drain(bool draining, bool ask = false) {
    flatbuffers::FlatBufferBuilder fbb;
    return finish(fbb, wire::RequestBody::DrainRequest, wire::CreateDrainRequest(fbb, draining, ask).Union());
  }

 private:
  const wire::Response* finish(flatbuffers::FlatBufferBuilder& fbb, wire::RequestBody type,
                               flatbuffers::Offset<void> body) {
    fbb.Finish(wire::CreateRequest(fbb, ++next_id_, type, body));
    return call(fbb);
  }

  int fd_ = -1;
  int received_fd_ = -1;
  uint64_t next_id_ = 0;
  std::vector<uint8_t> buf_;
};

// The Code of a response (kUnavailable when there is none).
inline Code code_of(const wire::Response* r) { return r ? static_cast<Code>(r->code()) : Code::kUnavailable; }

}  // namespace cxlkv::testing
