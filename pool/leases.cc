// LeaseTable bookkeeping (leases.h).
#include "leases.h"

#include <fmt/format.h>

namespace cxlkv::pool {

Result<Lease*> LeaseTable::create(uint64_t session, LeaseKind kind, Clock::time_point expires) {
  if (full()) return Status(Code::kExhausted, fmt::format("lease table full: {} leases live", live_));
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(leases_.size());
    leases_.emplace_back();
  }
  Lease& l = leases_[index];
  l.id = ++serial_ << kIndexBits | index;
  l.session = session;
  l.kind = kind;
  l.expires = expires;
  l.slots.clear();
  ++live_;
  ++(kind == LeaseKind::kRead ? reads_ : writes_);
  return &l;
}

void LeaseTable::destroy(Lease* lease) {
  --(lease->kind == LeaseKind::kRead ? reads_ : writes_);
  --live_;
  free_.push_back(static_cast<uint32_t>(lease->id & kMaxCapacity));
  lease->id = 0;
  lease->slots.clear();
}

void LeaseTable::expired(Clock::time_point now, std::vector<uint64_t>& out) const {
  out.clear();
  for (const Lease& l : leases_)
    if (l.id != 0 && l.expires <= now) out.push_back(l.id);
}

Lease* LeaseTable::find_any(uint64_t id) {
  const uint64_t index = id & kMaxCapacity;
  if (id == 0 || index >= leases_.size() || leases_[index].id != id) return nullptr;
  return &leases_[index];
}

}  // namespace cxlkv::pool
