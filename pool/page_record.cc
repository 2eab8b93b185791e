// Page record encode, decode and the persistence order of reserve, commit and free (page_record.h).
#include "page_record.h"

#include <xxhash.h>

#include <atomic>
#include <fmt/format.h>

#include "cacheline.h"

namespace cxlkv::pool {
namespace {

std::atomic<uint64_t>& state_word_at(uint8_t* slot_bytes) {
  static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free);
  return *reinterpret_cast<std::atomic<uint64_t>*>(slot_bytes);
}

// One aligned 8-byte store, persisted: a kill leaves the old word or the new one, never a mix.
void store_state(uint8_t* slot_bytes, PageState state) {
  state_word_at(slot_bytes).store(make_state_word(state), std::memory_order_release);
  cxl::persist(slot_bytes, sizeof(uint64_t));
}

}  // namespace

uint64_t record_checksum(const PageRecord& record) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&record);
  return XXH64(bytes + 8, offsetof(PageRecord, record_checksum) - 8, kPageRecordVersion);
}

Result<DecodedRecord> decode_record(const uint8_t* slot_bytes, uint32_t slab, uint32_t position) {
  DecodedRecord d;
  std::memcpy(&d.fields, slot_bytes, sizeof d.fields);
  const uint64_t word = d.fields.state_word;
  if (word == 0) return d;  // FREE, never used since format
  const auto version = static_cast<uint16_t>(word >> 32);
  const uint8_t state = word & 0xff;
  if (version != kPageRecordVersion || (word & 0xffff0000'ffffff00ull) != 0 || state > uint8_t(PageState::kCommitted))
    return Status(Code::kCorrupt, fmt::format("page record slab {} position {}: state word {:#x} (version {}, state {})",
                                              slab, position, word, version, state));
  d.state = PageState(state);
  if (d.state != PageState::kCommitted) return d;
  const uint64_t sum = record_checksum(d.fields);
  if (sum != d.fields.record_checksum)
    return Status(Code::kCorrupt, fmt::format("page record slab {} position {}: record checksum {:#x}, computed {:#x}",
                                              slab, position, d.fields.record_checksum, sum));
  if (d.fields.slab != slab || d.fields.position != position)
    return Status(Code::kCorrupt, fmt::format("page record slab {} position {}: says slab {} position {}", slab,
                                              position, d.fields.slab, d.fields.position));
  return d;
}

void write_reserved(uint8_t* slot_bytes, const PageRecord& body) {
  // The state word goes RESERVED first so a kill in the middle never leaves an old COMMITTED word
  // over a new body; then the body, persisted as a whole.
  store_state(slot_bytes, PageState::kReserved);
  std::memcpy(slot_bytes + 8, reinterpret_cast<const uint8_t*>(&body) + 8, sizeof body - 8);
  cxl::persist(slot_bytes, sizeof body);
}

void write_committed(uint8_t* slot_bytes, uint64_t data_checksum, uint64_t commit_seq) {
  auto* rec = reinterpret_cast<PageRecord*>(slot_bytes);
  rec->data_checksum = data_checksum;
  rec->commit_seq = commit_seq;
  rec->record_checksum = record_checksum(*rec);
  cxl::persist(slot_bytes + 8, sizeof(PageRecord) - 8);  // body first (persist fences)...
  store_state(slot_bytes, PageState::kCommitted);         // ...then the commit point
}

void write_free(uint8_t* slot_bytes) { store_state(slot_bytes, PageState::kFree); }

}  // namespace cxlkv::pool
