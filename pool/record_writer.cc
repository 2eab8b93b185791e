// The persistence order of reserve, commit and free for page records (record_writer.h).
#include "record_writer.h"

#include <atomic>
#include <cstring>

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
