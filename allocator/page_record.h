// Page records: the byte format of the slab table, the durable truth of which pages the pool
// holds (DESIGN.md, "Index"). One 128-byte record per page slot, in the region at
// slab_geometry.h's records_offset. Defines the record, its version and its decoding; the daemon's
// writers (pool/record_writer.h) are the only code that stores one. Recovery, the baseline and the
// testbed's inspector read records with decode_record. Nothing here writes, allocates or locks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cxlkv/page_key.h"
#include "cxlkv/status.h"

namespace cxlkv {

inline constexpr uint16_t kPageRecordVersion = 1;
// Bytes of one page record (slab table entry) per page slot: two cache lines.
inline constexpr uint32_t kPageRecordBytes = 128;

// States of a slot: FREE -> RESERVED (write lease) -> COMMITTED -> FREE.
// FREE is 0 so a freshly formatted (zeroed) slab table is all FREE.
enum class PageState : uint8_t { kFree = 0, kReserved = 1, kCommitted = 2 };

// Page record, version 1, little-endian, 128 B (two cache lines) per slot = slab x E + position:
//   [0,8)     state word: state (PageState) in bits 0..7, record version in bits 32..47, rest 0.
//             An aligned 8-byte store: the commit point, written (and persisted) after the rest.
//   [8,16)    generation: the slab's allocator generation when the page was reserved
//   [16,24)   namespace: XXH64(tenant + "\0" + model, seed 0)
//   [24,56)   key (cxlkv::PageKey, the wire's Key)
//   [56,88)   parent key (all zero at the root of a prefix)
//   [88,96)   data checksum: page_checksum.h over the page's entries, stored at commit
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
static_assert(sizeof(PageRecord) == kPageRecordBytes, "PageRecord is an on-media format");
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

}  // namespace cxlkv
