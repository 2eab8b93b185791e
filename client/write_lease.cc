// WriteLease (write_lease.h): writing a page's runs into its slab and their checksums.
#include "cxlkv/write_lease.h"

#include <fmt/format.h>

#include "cacheline.h"
#include "page_checksum.h"
#include "session.h"

namespace cxlkv {

namespace {

// Aborts every reserve of an open lease (errors ignored: a dead node's reserve goes with its TTL).
void abort_open(bool closed, uint64_t id, const std::shared_ptr<detail::Session>& session,
                const std::vector<detail::WritePart>& parts) {
  if (closed) return;
  if (id != 0 && session) (void)session->abort(id);
  for (const detail::WritePart& part : parts)
    if (part.id != 0 && part.session) (void)part.session->abort(part.id);
}

}  // namespace

WriteLease& WriteLease::operator=(WriteLease&& other) noexcept {
  if (this == &other) return *this;
  abort_open(closed_, id_, session_, parts_);
  view_ = other.view_;
  placements_ = std::move(other.placements_);
  checksums_ = std::move(other.checksums_);
  written_ = std::move(other.written_);
  words_per_page_ = other.words_per_page_;
  id_ = std::exchange(other.id_, 0);
  epoch_ = other.epoch_;
  closed_ = std::exchange(other.closed_, true);
  session_ = std::move(other.session_);
  parts_ = std::move(other.parts_);
  other.placements_.clear();
  other.parts_.clear();
  return *this;
}

WriteLease::~WriteLease() { abort_open(closed_, id_, session_, parts_); }

uint32_t WriteLease::writable_pages() const {
  uint32_t n = 0;
  for (uint32_t p = 0; p < pages(); ++p) n += writable(p);
  return n;
}

uint32_t WriteLease::runs_written(uint32_t page) const {
  uint32_t n = 0;
  for (uint32_t w = 0; w < words_per_page_; ++w)
    n += uint32_t(__builtin_popcountll(written_[size_t{page} * words_per_page_ + w].load(std::memory_order_relaxed)));
  return n;
}

Status WriteLease::check_epochs(const char* what) const {
  auto expired = [&](uint64_t then, uint64_t now) {
    return Status(Code::kExpired, fmt::format("{}: lease {}: the daemon restarted since the reserve (epoch {:016x} then, "
                                              "{:016x} now; its reserved pages were freed at recovery); reserve again",
                                              what, id_, then, now));
  };
  if (parts_.empty()) {
    if (view_.serving_epoch == nullptr) return Status::ok();
    const uint64_t now = view_.serving_epoch->load(std::memory_order_acquire);
    return now == epoch_ ? Status::ok() : expired(epoch_, now);
  }
  for (const detail::WritePart& part : parts_) {
    if (part.serving_epoch == nullptr) continue;
    const uint64_t now = part.serving_epoch->load(std::memory_order_acquire);
    if (now != part.epoch) return expired(part.epoch, now);
  }
  return Status::ok();
}

Status WriteLease::write_entries(uint32_t page, int stream, uint32_t layer, const void* packed, uint32_t entries) {
  if (closed_) return Status(Code::kInvalidArgument, fmt::format("write_entries: lease {} is committed or aborted", id_));
  if (Status st = check_epochs("write_entries"); !st) return st;
  if (page >= pages())
    return Status(Code::kInvalidArgument, fmt::format("write_entries: page {} outside the lease's {} pages", page, pages()));
  if (!writable(page)) return Status::ok();  // Cached or InFlight: someone else's bytes; a no-op by contract
  if (uint32_t(stream) >= view_.stream_count)
    return Status(Code::kInvalidArgument, fmt::format("write_entries: stream {} outside 0..{}", stream, int(view_.stream_count) - 1));
  if (layer >= view_.layers)
    return Status(Code::kInvalidArgument, fmt::format("write_entries: layer {} outside 0..{}", layer, int(view_.layers) - 1));
  if (entries != view_.page_tokens)
    return Status(Code::kInvalidArgument, fmt::format("write_entries: {} entries; a run is one page of {} tokens", entries, view_.page_tokens));
  if (packed == nullptr) return Status(Code::kInvalidArgument, "write_entries: packed is null");

  const uint32_t run = uint32_t(stream) * view_.layers + layer;
  const uint64_t bit = uint64_t{1} << (run % 64);
  const uint64_t before = written_[size_t{page} * words_per_page_ + run / 64].fetch_or(bit, std::memory_order_relaxed);
  if (before & bit)
    return Status(Code::kAlreadyExists, fmt::format("write_entries: page {} stream {} layer {} written twice", page, stream, layer));

  const PoolView::Stream& s = view_.streams[stream];
  const Placement& p = placements_[page];
  // Unsigned arithmetic: in a lease over several nodes the offset may wrap (placement()).
  auto* dst = reinterpret_cast<uint8_t*>(reinterpret_cast<uintptr_t>(view_.base) + p.slab_offset + s.offset +
                                         uint64_t(layer) * s.layer_step + uint64_t{p.position} * view_.page_tokens * s.stride);
  const auto* src = static_cast<const uint8_t*>(packed);
  const size_t bytes = size_t{entries} * s.entry_bytes;
  if (s.stride == s.entry_bytes) {
    cxl::nt_copy(dst, src, bytes);
  } else {
    for (uint32_t t = 0; t < entries; ++t) cxl::nt_copy(dst + size_t{t} * s.stride, src + size_t{t} * s.entry_bytes, s.entry_bytes);
  }
  checksums_[page].fetch_xor(run_checksum(stream, layer, src, bytes), std::memory_order_relaxed);
  return Status::ok();
}

}  // namespace cxlkv
