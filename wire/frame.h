// Control-plane framing: an 8-byte header before each FlatBuffers message, on Unix and TCP
// sockets alike. Used by the daemon's server (pool/) and the client's connection (client/);
// neither trusts a byte of a frame before check_frame_header() and the FlatBuffers verifier.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv_wire_generated.h"

namespace cxlkv::wire {

inline constexpr uint16_t kFrameMagic = 0x4B43;  // "CK" little-endian
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr uint32_t kFrameHeaderBytes = 8;
// Largest message either side accepts: 16,384 keys of 32 B plus room (~1 MiB).
inline constexpr uint32_t kMaxFrameBytes = 1u << 20;
inline constexpr uint32_t kMaxKeysPerRequest = 16384;

// Frame header, version 1, little-endian:
//   [0,2) magic 0x4B43 ("CK")   [2,4) protocol version (1)   [4,8) message bytes (<= 1 MiB)
struct FrameHeader {
  uint16_t magic;
  uint16_t version;
  uint32_t length;
};
static_assert(sizeof(FrameHeader) == kFrameHeaderBytes);

// Checks magic, version and length; names the bad value.
Result<FrameHeader> check_frame_header(const uint8_t* bytes);
FrameHeader make_frame_header(uint32_t length);

// Verifies a received message; returns it or a kProtocol status. The buffer must outlive it.
Result<const Request*> verify_request(const uint8_t* data, size_t size);
Result<const Response*> verify_response(const uint8_t* data, size_t size);

// Blocking helpers for the client side: write one frame (and an fd, on Unix sockets), read one.
Status write_frame(int sock, const uint8_t* data, uint32_t size, int pass_fd = -1);
// Reads one frame into `out`; if `received_fd` is given, an fd passed with it lands there
// (or -1). A short read, bad header or oversized length is an error.
Status read_frame(int sock, std::vector<uint8_t>& out, int* received_fd = nullptr);

}  // namespace cxlkv::wire
