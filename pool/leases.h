// LeaseTable: the daemon's read and write leases, their owners and deadlines. Owned by
// PoolService; it only books leases (what they hold, until when). Pinning pages and freeing the
// slots of a dead write lease is PoolService's job, driven by expired() from its reaper.
// Lease ids: serial << 20 | index, so find() is an array index plus a compare, and a stale or
// made-up id is simply not found. Released leases keep their slot vector's capacity, so taking a
// lease on the lookup path does not allocate once the table is warm.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::pool {

using Clock = std::chrono::steady_clock;

enum class LeaseKind : uint8_t { kRead, kWrite };

struct Lease {
  uint64_t id = 0;  // 0: this entry is unused
  uint64_t session = 0;
  LeaseKind kind = LeaseKind::kRead;
  Clock::time_point expires{};
  // Read: the pinned page slots, in prefix order. Write: one per reserved key, kNoSlot for keys
  // flagged Cached or InFlight.
  std::vector<uint32_t> slots;
};

class LeaseTable {
 public:
  static constexpr int kIndexBits = 20;
  static constexpr uint32_t kMaxCapacity = (1u << kIndexBits) - 1;  // 1,048,575 leases

  explicit LeaseTable(uint32_t capacity) : capacity_(capacity < kMaxCapacity ? capacity : kMaxCapacity) {}

  bool full() const { return live_ == capacity_; }
  // A new lease with an empty slot list; kExhausted when `capacity` leases are live.
  Result<Lease*> create(uint64_t session, LeaseKind kind, Clock::time_point expires);
  // The live lease `id` of `session`, or nullptr (unknown, ended, or another session's).
  Lease* find(uint64_t id, uint64_t session) {
    const uint64_t index = id & kMaxCapacity;
    if (id == 0 || index >= leases_.size()) return nullptr;
    Lease& l = leases_[index];
    return l.id == id && l.session == session ? &l : nullptr;
  }
  // Ends a lease; its entry (and slot vector capacity) is kept for the next create().
  void destroy(Lease* lease);
  // Ids of the leases whose deadline is <= now, into `out` (cleared first).
  void expired(Clock::time_point now, std::vector<uint64_t>& out) const;
  // The live lease `id` whoever owns it (the reaper's view), or nullptr.
  Lease* find_any(uint64_t id);

  uint64_t count(LeaseKind kind) const { return kind == LeaseKind::kRead ? reads_ : writes_; }
  // Whether `session` owns a live lease; scans the table.
  bool holds_any(uint64_t session) const {
    for (const Lease& l : leases_)
      if (l.id != 0 && l.session == session) return true;
    return false;
  }

 private:
  uint32_t capacity_;
  std::vector<Lease> leases_;
  std::vector<uint32_t> free_;  // unused indexes of leases_
  uint64_t serial_ = 0;
  // Invariant: live_ == reads_ + writes_ == entries of leases_ with id != 0.
  uint32_t live_ = 0;
  uint64_t reads_ = 0, writes_ = 0;
};

}  // namespace cxlkv::pool
