// Record writers: how the daemon stores page records (format: allocator/page_record.h) and in
// which order they become durable on reserve, commit and free. Only PoolService and recovery call
// them. Nothing here allocates or takes a lock; every store that must be durable goes through
// cxl::persist, and the state word is always the last thing persisted.
#pragma once

#include <cstdint>

#include "page_record.h"

namespace cxlkv::pool {

// Writes a RESERVED record (body, then state word) and persists it.
void write_reserved(uint8_t* slot_bytes, const PageRecord& body);
// Commit, in this order: store the data checksum and commit sequence, compute the record checksum,
// persist bytes [8,128); then store the state word COMMITTED and persist it. A kill before the
// second persist leaves a RESERVED record (reclaimed by recovery); after it, a whole COMMITTED one.
void write_committed(uint8_t* slot_bytes, uint64_t data_checksum, uint64_t commit_seq);
// Frees a slot: the state word goes FREE (persisted) first; the body is left as it was.
void write_free(uint8_t* slot_bytes);

}  // namespace cxlkv::pool
