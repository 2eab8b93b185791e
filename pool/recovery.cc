// Recovery: rebuild the index from the slab table after a start or a crash (pool_service.h).
// Every record is read once: a COMMITTED record whose checksum, slot and slab generation hold
// (and, with verify_data, whose page data checksum holds) goes back into the index; every other
// non-FREE record goes FREE; an in-use slab left without a live page returns to the allocator.
// pool_service.cc explains why that is all a kill -9 can leave behind.
#include <algorithm>
#include <spdlog/spdlog.h>

#include "page_checksum.h"
#include "pool_service.h"
#include "record_writer.h"

namespace cxlkv::pool {

Status PoolService::recover(RecoveryReport& report) {
  report = RecoveryReport{};
  const uint32_t E = geometry_.slab_pages;
  std::vector<std::pair<uint64_t, uint32_t>> committed;  // (commit_seq, slot)
  for (uint32_t slab = 0; slab < geometry_.slab_count; ++slab) {
    const bool in_use = allocator_.in_use(slab);
    const uint64_t generation = allocator_.generation(slab);
    for (uint32_t pos = 0; pos < E; ++pos) {
      const auto slot = static_cast<uint32_t>(geometry_.page_slot(slab, pos));
      uint8_t* bytes = record_bytes(slot);
      auto rec = decode_record(bytes, slab, pos);
      if (rec && rec->state == PageState::kFree) continue;
      if (rec && rec->state == PageState::kReserved) {
        write_free(bytes);
        ++report.reserved_freed;
        continue;
      }
      const char* why = nullptr;
      if (!rec) why = "damaged record";
      else if (!in_use || rec->fields.generation != generation) why = "stale slab generation";
      else if (index_.find(rec->fields.ns, rec->fields.key) != kNoSlot) why = "duplicate key";
      else if (options_.verify_data &&
               page_checksum(geometry_, layout_, allocator_.slab_address(slab), pos) != rec->fields.data_checksum)
        why = "page data checksum mismatch";
      if (why) {
        spdlog::warn("recovery: slab {} position {}: {}{}; page dropped", slab, pos, why,
                     rec ? std::string() : " (" + rec.status().message() + ")");
        write_free(bytes);
        ++report.invalid_freed;
        continue;
      }
      index_.add_reserved(slot, rec->fields.ns, rec->fields.key, rec->fields.parent, 0);
      ++slab_pages_live_[slab];
      committed.emplace_back(rec->fields.commit_seq, slot);
      commit_seq_ = std::max(commit_seq_, rec->fields.commit_seq + 1);
    }
    if (in_use && slab_pages_live_[slab] == 0) {
      if (Status st = allocator_.free(slab); !st) return st;
      ++report.slabs_freed;
    }
  }
  // Oldest commit first: parents are linked before their children, the newest page ends at the
  // LRU head.
  std::sort(committed.begin(), committed.end());
  for (const auto& [seq, slot] : committed) index_.set_committed(slot);
  report.committed = committed.size();
  return Status::ok();
}

}  // namespace cxlkv::pool
