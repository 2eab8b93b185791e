// Page record checksum and decoding (page_record.h).
#include "page_record.h"

#include <xxhash.h>

#include <cstring>
#include <fmt/format.h>

namespace cxlkv {

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

}  // namespace cxlkv
