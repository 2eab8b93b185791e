// The side channel of cxlkv-bulkd, version 1: range reads over TCP and the exchange that sets up
// an RDMA RC connection (QP number, PSN, GID, and the region MR's address and rkey). Spoken by
// bulk_server.cc and tcp_reader.cc / rdma_reader.cc. Encoding and checks only; no sockets here.
//
// Every message starts with a 16-byte header, little-endian:
//   request:  [0,4) magic "CKB1"  [4,6) op  [6,8) version (1)  [8,12) count  [12,16) payload bytes
//   response: [0,4) magic "CKR1"  [4,6) code (cxlkv::Code, 0 = ok)  [6,8) version  [8,16) payload bytes
// Ops (request payload -> response payload):
//   kInfo        (empty)                         -> RegionInfo (128 B)
//   kRead        count x ReadRange (16 B each)   -> the ranges' bytes, concatenated in order
//   kRdmaConnect RdmaEndpoint of the client       -> RdmaAccept (the server's endpoint + MR)
// An error response carries its message as payload text; the connection stays usable unless the
// request header itself was bad (then the server closes it).
#pragma once

#include <cstdint>
#include <cstring>

#include "slab_geometry.h"

namespace cxlkv::baseline::wire {

inline constexpr uint32_t kRequestMagic = 0x31424B43;   // "CKB1"
inline constexpr uint32_t kResponseMagic = 0x31524B43;  // "CKR1"
inline constexpr uint16_t kVersion = 1;
inline constexpr uint32_t kMaxRanges = 1u << 20;                  // per request
inline constexpr uint64_t kMaxReadBytes = uint64_t{1} << 30;      // 1 GiB per request
inline constexpr uint32_t kMaxRangeBytes = uint32_t{1} << 30;     // per range

enum Op : uint16_t { kInfo = 1, kRead = 2, kRdmaConnect = 3 };

struct RequestHeader {
  uint32_t magic;
  uint16_t op;
  uint16_t version;
  uint32_t count;
  uint32_t payload_bytes;
};
struct ResponseHeader {
  uint32_t magic;
  uint16_t code;
  uint16_t version;
  uint64_t payload_bytes;
};
static_assert(sizeof(RequestHeader) == 16 && sizeof(ResponseHeader) == 16);

// [0,8) offset from the region base  [8,12) length  [12,16) zero
struct ReadRange {
  uint64_t offset;
  uint32_t length;
  uint32_t reserved;
};
static_assert(sizeof(ReadRange) == 16);

// [0,8) region bytes  [8,24) region uuid  [24,28) flags (bit 0: RDMA served)  [28,32) zero
// [32,128) the allocator's SlabGeometry (96 B, allocator/slab_allocator.h's byte order)
struct RegionInfo {
  uint64_t region_bytes;
  uint8_t uuid[16];
  uint32_t flags;
  uint32_t reserved;
  SlabGeometry geometry;
};
static_assert(sizeof(RegionInfo) == 128);
inline constexpr uint32_t kInfoRdma = 1;

// One side of an RC connection: [0,4) QP number  [4,8) first PSN  [8,10) LID (0 on RoCE)
// [10,11) port  [11,12) GID index  [12,16) path MTU (enum ibv_mtu)  [16,32) GID
struct RdmaEndpoint {
  uint32_t qpn;
  uint32_t psn;
  uint16_t lid;
  uint8_t port;
  uint8_t gid_index;
  uint32_t mtu;
  uint8_t gid[16];
};
static_assert(sizeof(RdmaEndpoint) == 32);

// [0,32) the server's endpoint  [32,40) address of region offset 0 in the MR  [40,44) rkey
// [44,48) zero  [48,56) bytes the MR covers
struct RdmaAccept {
  RdmaEndpoint endpoint;
  uint64_t remote_base;
  uint32_t rkey;
  uint32_t reserved;
  uint64_t mr_bytes;
};
static_assert(sizeof(RdmaAccept) == 56);

inline RequestHeader request(Op op, uint32_t count, uint32_t payload_bytes) {
  return {kRequestMagic, op, kVersion, count, payload_bytes};
}
inline ResponseHeader response(uint16_t code, uint64_t payload_bytes) {
  return {kResponseMagic, code, kVersion, payload_bytes};
}

}  // namespace cxlkv::baseline::wire
