// Page records: the slab table, the durable truth of which pages the pool holds (DESIGN.md,
// "Index"). One 128-byte record per page slot, in the region at allocator/slab_geometry.h's
// records_offset. Only the daemon's PoolService writes records (through write_reserved,
// write_committed, write_free); recovery and tests read them with decode_record.
// Nothing here allocates or takes a lock; every store that must be durable goes through cxl::persist.
#pragma once

#include <cstdint>
#include <cstring>

#include "cxlkv/status.h"

namespace cxlkv::pool {

inline constexpr uint16_t kPageRecordVersion = 1;

// A page key: the opaque 32-byte digest of wire's Key.
struct PageKey {
  uint8_t b[32] = {};
  bool operator==(const PageKey& o) const { return std::memcmp(b, o.b, sizeof b) == 0; }
  bool is_zero() const { return *this == PageKey{}; }
};

// States of a slot: FREE -> RESERVED (write lease) -> COMMITTED -> FREE.
// FREE is 0 so a freshly formatted (zeroed) slab table is all FREE.
enum class PageState : uint8_t { kFree = 0, kReserved = 1, kCommitted = 2 };

// Page record, version 1, little-endian, 128 B (two cache lines) per slot = slab x E + position:
//   [0,8)     state word: state (PageState) in bits 0..7, record version in bits 32..47, rest 0.
//             An aligned 8-byte store: the commit point, written (and persisted) after the rest.
//   [8,16)    generation: the slab's allocator generation when the page was reserved
//   [16,24)   namespace: XXH64(tenant + "\0" + model, seed 0)
//   [24,56)   key
//   [56,88)   parent key (all zero at the root of a prefix)
//   [88,96)   data checksum: allocator/page_checksum.h over the page's entries, stored at commit
//   [96,104)  commit sequence: a per-region counter, higher = committed later (LRU after recovery)
//   [104,108) slab       [108,110) position in the slab     [110,112) reserved, zero
//   [112,120) reserved, zero
//   [120,128) record checksum: XXH64 (seed kPageRecordVersion) of bytes [8,120)
// Invariant: a COMMITTED record has a record checksum that holds, slab/position equal to its slot,
// and the generation its slab has in the allocator's state word.
struct PageRecord {
  uint64_t state_word;
  uint64_t generation;
  uint64_t ns;
  PageKey key;
  PageKey parent;
  uint64_t data_checksum;
  uint64_t commit_seq;
  uint32_t slab;
  uint16_t position;
  uint16_t reserved0;
  uint64_t reserved1;
  uint64_t record_checksum;
};
static_assert(sizeof(PageRecord) == 128, "PageRecord is an on-media format");
static_assert(offsetof(PageRecord, key) == 24 && offsetof(PageRecord, parent) == 56);
static_assert(offsetof(PageRecord, slab) == 104 && offsetof(PageRecord, record_checksum) == 120);

inline uint64_t make_state_word(PageState state) { return uint64_t{kPageRecordVersion} << 32 | uint8_t(state); }
inline PageState state_of(uint64_t word) { return PageState(word & 0xff); }

// XXH64 over bytes [8,120) of the record.
uint64_t record_checksum(const PageRecord& record);

// What a record says, read and checked (the decoding of the bytes above).
struct DecodedRecord {
  PageState state = PageState::kFree;
  PageRecord fields{};
};
// Reads a record from its slot bytes; kCorrupt names what fails (unknown state or version, a
// COMMITTED record whose checksum does not hold, slab/position that are not this slot's).
Result<DecodedRecord> decode_record(const uint8_t* slot_bytes, uint32_t slab, uint32_t position);

// Writes a RESERVED record (body, then state word) and persists it.
void write_reserved(uint8_t* slot_bytes, const PageRecord& body);
// Commit, in this order: store the data checksum and commit sequence, compute the record checksum,
// persist bytes [8,128); then store the state word COMMITTED and persist it. A kill before the
// second persist leaves a RESERVED record (reclaimed by recovery); after it, a whole COMMITTED one.
void write_committed(uint8_t* slot_bytes, uint64_t data_checksum, uint64_t commit_seq);
// Frees a slot: the state word goes FREE (persisted) first; the body is left as it was.
void write_free(uint8_t* slot_bytes);

}  // namespace cxlkv::pool
