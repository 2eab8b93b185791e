// ReadLease slow paths (read_lease.h): lifetime, bulk fetch, renew/release, error messages.
#include "cxlkv/read_lease.h"

#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "session.h"
#include "slab_allocator.h"  // allocator/: the slab state word

namespace cxlkv {

namespace {

// Page `index` of lease `id` still holds its slab in the region of `view`, else kExpired naming it.
// The daemon serving `view`'s region is still the one that granted the lease (epoch), else kExpired.
Status check_epoch(const PoolView& view, uint64_t id, uint64_t epoch) {
  if (view.serving_epoch == nullptr) return Status::ok();
  const uint64_t now = view.serving_epoch->load(std::memory_order_acquire);
  if (now == epoch) return Status::ok();
  return Status(Code::kExpired, fmt::format("read lease {}: the daemon serving its region restarted (epoch {:016x} when "
                                            "leased, now {:016x}); look the prefix up again", id, epoch, now));
}

Status check_page(const PoolView& view, uint64_t id, uint32_t index, const Placement& p) {
  const uint64_t word = view.slab_words[p.slab].load(std::memory_order_acquire);
  if (word == slab_word(p.generation, SlabState::kInUse)) return Status::ok();
  return Status(Code::kExpired,
                fmt::format("read lease {}: page {}'s slab {} was freed or reused while this lease read it (generation "
                            "{} when leased; the slab is now {} at generation {}); the bytes read are not the page's",
                            id, index, p.slab, p.generation, word_state(word) == SlabState::kInUse ? "in use" : "free",
                            word_generation(word)));
}

}  // namespace

ReadLease& ReadLease::operator=(ReadLease&& other) noexcept {
  if (this == &other) return *this;
  (void)release();
  view_ = other.view_;
  refs_ = std::move(other.refs_);
  placements_ = std::move(other.placements_);
  id_ = std::exchange(other.id_, 0);
  session_ = std::move(other.session_);
  frees_seen_.store(other.frees_seen_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  epoch_ = other.epoch_;
  parts_ = std::move(other.parts_);
  other.parts_.clear();
  other.refs_.clear();
  other.placements_.clear();
  return *this;
}

ReadLease::~ReadLease() { (void)release(); }

Status ReadLease::release() {
  const uint64_t id = std::exchange(id_, 0);
  std::shared_ptr<detail::Session> session = std::move(session_);
  std::vector<detail::LeasePart> parts = std::move(parts_);
  parts_.clear();
  refs_.clear();
  placements_.clear();
  if (!parts.empty()) {
    // Every node's lease ends; the first error is reported (a dead node's pins go with its TTL).
    Status first;
    for (detail::LeasePart& part : parts)
      if (part.id != 0 && part.session)
        if (Status st = part.session->release(part.id); !st && first.is_ok()) first = st;
    return first;
  }
  if (id == 0 || !session) return Status::ok();
  return session->release(id);
}

Result<uint32_t> ReadLease::renew() {
  if (id_ == 0 && parts_.empty()) return Status(Code::kNotFound, "renew: the lease is empty (released, or lookup found nothing)");
  if (!parts_.empty()) {
    // Every node's part is renewed even when one fails (the others' pages stay pinned for the
    // reads the caller may still make on them); the first failure is returned.
    uint32_t ttl = UINT32_MAX;  // the shortest of the nodes'
    Status first;
    for (detail::LeasePart& part : parts_) {
      if (part.id == 0 || !part.session) continue;
      Status st = check_epoch(part.view, part.id, part.epoch);
      if (st) {
        auto t = part.session->renew(part.id);
        if (t) ttl = std::min(ttl, *t);
        else st = Status(t.status().code(), fmt::format("renew: the lease's part on {}: {}", part.session->info().region,
                                                        t.status().message()));
      }
      if (!st && first.is_ok()) first = st;
    }
    if (!first.is_ok()) return first;
    return ttl;
  }
  if (!session_) return Status(Code::kUnavailable, fmt::format("renew: lease {} has no session", id_));
  if (Status st = check_epoch(view_, id_, epoch_); !st) return st;  // a restarted daemon has no such lease
  return session_->renew(id_);
}

Status ReadLease::gather_arg_error(int stream, uint32_t layer, int k, const int32_t* indices, const void* dst) const {
  if (uint32_t(stream) >= view_.stream_count)
    return Status(Code::kInvalidArgument, fmt::format("gather_topk: stream {} outside 0..{}", stream, int(view_.stream_count) - 1));
  if (layer >= view_.layers)
    return Status(Code::kInvalidArgument, fmt::format("gather_topk: layer {} outside 0..{}", layer, int(view_.layers) - 1));
  if (k < 0) return Status(Code::kInvalidArgument, fmt::format("gather_topk: k = {} is negative", k));
  return Status(Code::kInvalidArgument, fmt::format("gather_topk: k = {} with indices {} and dst {}", k,
                                                    static_cast<const void*>(indices), dst));
}

Status ReadLease::index_error(const int32_t* indices, int k) const {
  for (int i = 0; i < k; ++i) {
    if (indices[i] < -1 || int64_t(indices[i]) >= prefix_tokens())
      return Status(Code::kInvalidArgument, fmt::format("gather_topk: indices[{}] = {} outside [-1, {}) (the leased prefix of {} pages)",
                                                        i, indices[i], prefix_tokens(), pages()));
  }
  return Status(Code::kInvalidArgument, "gather_topk: an index is outside the leased prefix");
}

Status ReadLease::fetch_pages(int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst) const {
  if (uint32_t(stream) >= view_.stream_count)
    return Status(Code::kInvalidArgument, fmt::format("fetch_pages: stream {} outside 0..{}", stream, int(view_.stream_count) - 1));
  if (layer >= view_.layers)
    return Status(Code::kInvalidArgument, fmt::format("fetch_pages: layer {} outside 0..{}", layer, int(view_.layers) - 1));
  if (p0 > p1 || p1 > pages())
    return Status(Code::kInvalidArgument, fmt::format("fetch_pages: pages [{}, {}) outside the leased [0, {})", p0, p1, pages()));
  if (p0 < p1 && dst == nullptr) return Status(Code::kInvalidArgument, "fetch_pages: dst is null");
  const PoolView::Stream& s = view_.streams[stream];
  const uint8_t* layer_base = view_.base + s.offset + uint64_t(layer) * s.layer_step;
  const size_t run_bytes = size_t{view_.page_tokens} * s.entry_bytes;
  auto* out = static_cast<uint8_t*>(dst);
  for (uint32_t p = p0; p < p1;) {
    const PageRef& first = refs_[p];
    const uint8_t* src = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(layer_base) + first.slab_offset +
                                                        first.first_token * s.stride);  // may wrap: ReadLease::placement
    if (s.stride == s.entry_bytes) {
      // Pages at consecutive positions of one slab are one contiguous run of this layer.
      uint32_t q = p + 1;
      while (q < p1 && refs_[q].slab_offset == first.slab_offset &&
             refs_[q].first_token == first.first_token + uint64_t{q - p} * view_.page_tokens)
        ++q;
      std::memcpy(out, src, run_bytes * (q - p));
      out += run_bytes * (q - p);
      p = q;
    } else {
      for (uint32_t t = 0; t < view_.page_tokens; ++t) std::memcpy(out + size_t{t} * s.entry_bytes, src + size_t{t} * s.stride, s.entry_bytes);
      out += run_bytes;
      ++p;
    }
  }
  return check_reuse();
}


Status ReadLease::verify_pages() const {
  const uint64_t frees = view_.slab_frees->load(std::memory_order_acquire);
  if (Status st = check_epoch(view_, id_, epoch_); !st) return st;
  for (uint32_t i = 0; i < placements_.size(); ++i)
    if (Status st = check_page(view_, id_, i, placements_[i]); !st) return st;
  frees_seen_.store(frees, std::memory_order_relaxed);
  return Status::ok();
}

Status ReadLease::check_parts() const {
  std::atomic_thread_fence(std::memory_order_acquire);  // the copy's loads before the counts'
  for (const detail::LeasePart& part : parts_) {
    if (part.view.slab_frees == nullptr) continue;
    const uint64_t frees = part.view.slab_frees->load(std::memory_order_acquire);
    if (frees == part.frees_seen->load(std::memory_order_relaxed)) continue;
    if (Status st = check_epoch(part.view, part.id, part.epoch); !st) return st;
    for (uint32_t i : part.pages)
      if (Status st = check_page(part.view, part.id, i, placements_[i]); !st) return st;
    part.frees_seen->store(frees, std::memory_order_relaxed);
  }
  return Status::ok();
}

std::vector<ReadLease::Mapping> ReadLease::mappings() const {
  std::vector<Mapping> out;
  if (parts_.empty()) {
    if (session_) out.push_back({&view_, session_, epoch_, frees_seen_.load(std::memory_order_relaxed)});
    return out;
  }
  for (const detail::LeasePart& p : parts_)
    out.push_back({&p.view, p.session, p.epoch, p.frees_seen->load(std::memory_order_relaxed)});
  return out;
}

}  // namespace cxlkv
