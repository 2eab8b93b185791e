// PageCopy (page_copy.h).
#include "page_copy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "cacheline.h"
#include "eviction.h"
#include "page_record.h"

namespace cxlkv::pool {

namespace {

// The committed pages of `index` as runs of a parent and its child, at most `max_run` long, in an
// order where every page's parent lies in an earlier run or earlier in its own.
std::vector<std::vector<uint32_t>> runs_of(const PrefixIndex& index, uint32_t max_run) {
  const auto slots = static_cast<uint32_t>(index.slot_count());
  auto committed = [&](uint32_t s) { return s != kNoSlot && index.page(s).state == PageState::kCommitted; };
  std::vector<uint32_t> first_child(slots, kNoSlot), next_sibling(slots, kNoSlot), starts;
  for (uint32_t s = slots; s-- > 0;) {
    if (!committed(s)) continue;
    const uint32_t parent = index.page(s).parent_slot;
    if (committed(parent)) {
      next_sibling[s] = first_child[parent];
      first_child[parent] = s;
    } else {
      starts.push_back(s);  // a root here: its parent is not committed in this partition
    }
  }
  auto push_children = [&](uint32_t from_child) {
    for (uint32_t c = from_child; c != kNoSlot; c = next_sibling[c]) starts.push_back(c);
  };
  std::vector<std::vector<uint32_t>> runs;
  while (!starts.empty()) {
    std::vector<uint32_t> run{starts.back()};
    starts.pop_back();
    // Down the first child while the run has room; the other children start runs of their own.
    while (first_child[run.back()] != kNoSlot && run.size() < max_run) {
      const uint32_t child = first_child[run.back()];
      push_children(next_sibling[child]);
      run.push_back(child);
    }
    push_children(first_child[run.back()]);  // a run cut at max_run goes on in runs of its own
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace

Result<std::unique_ptr<PageCopy>> PageCopy::start(PoolService& from, PoolService& to) {
  const SlabGeometry& g = from.geometry();
  if (to.geometry().slab_pages != g.slab_pages || !(to.region().layout() == from.region().layout()))
    return Status(Code::kMismatch, fmt::format("copy: partitions of E = {} and {}, or of other layouts", g.slab_pages,
                                               to.geometry().slab_pages));
  std::unique_ptr<PageCopy> c(new PageCopy(from, to));
  const Layout layout = from.region().layout();
  for (int st = 0; st < layout.stream_count(); ++st) c->page_bytes_ += uint64_t{g.page_tokens} * g.stride[st] * g.layers;
  uint64_t slabs_needed = 0;
  for (const std::vector<uint32_t>& run : runs_of(from.index(), to.options().max_keys)) {
    std::vector<Listed> listed;
    for (uint32_t slot : run) listed.push_back({slot, from.index().page(slot).key});
    slabs_needed += (run.size() + g.slab_pages - 1) / g.slab_pages;
    c->runs_.push_back(std::move(listed));
  }
  if (const uint64_t room = c->room(); room < slabs_needed)
    return Status(Code::kExhausted, fmt::format("copy: {} runs of pages need up to {} slabs, there are {} free below "
                                                "its high watermark ({}); nothing was copied (a copy evicts nothing)",
                                                c->runs_.size(), slabs_needed, room, to.options().watermarks.high));
  return c;
}

PageCopy::~PageCopy() {
  for (const auto& [tenant, session] : sessions_) to_.end_session(session);
}

uint64_t PageCopy::room() const {
  // Slabs above the high watermark are the reaper's to free by eviction: never fill them.
  const PoolStats s = to_.stats();
  return slabs_below_high_watermark(s.slabs_total, s.slabs_free, to_.options().watermarks);
}

Status PageCopy::step(uint64_t byte_budget, Clock::time_point now) {
  const uint64_t stop_at = report_.bytes_copied + std::min(byte_budget, ~uint64_t{0} - report_.bytes_copied);
  // Pages looked at per step, copied or not (pages already there or gone copy no bytes).
  uint64_t looked_at = 0;
  // A piece: the pages the budget holds, at least a slab's (so `to` packs its slabs as the
  // writer did), in multiples of E.
  const uint32_t E = from_.geometry().slab_pages;
  const uint64_t fit = std::max<uint64_t>(byte_budget / page_bytes_, 1);
  const uint64_t piece = std::min<uint64_t>((fit + E - 1) / E * E, to_.options().max_keys);
  while (!done() && report_.bytes_copied < stop_at && looked_at < kMaxPagesPerStep) {
    const std::vector<Listed>& run = runs_[next_run_];
    const size_t end = std::min<size_t>(run.size(), next_page_ + piece);
    // The pages still committed as listed, in stretches: a page let go of since (evicted, or
    // removed) ends a stretch, and the next starts from its own parent key.
    slots_.clear();
    for (size_t i = next_page_; i < end; ++i) {
      const PageMeta& m = from_.index().page(run[i].slot);
      slots_.push_back(m.state == PageState::kCommitted && m.key == run[i].key ? run[i].slot : kNoSlot);
    }
    for (size_t i = 0; i < slots_.size();) {
      if (slots_[i] == kNoSlot) {
        ++report_.pages_gone, ++i;
        continue;
      }
      size_t stretch_end = i;
      while (stretch_end < slots_.size() && slots_[stretch_end] != kNoSlot) ++stretch_end;
      if (Status st = copy_pages(slots_, i, stretch_end, now); !st) return st;
      i = stretch_end;
    }
    looked_at += end - next_page_;
    next_page_ = end;
    if (next_page_ == run.size()) ++next_run_, next_page_ = 0;
  }
  return Status::ok();
}

Status PageCopy::copy_pages(const std::vector<uint32_t>& run, size_t first, size_t end, Clock::time_point now) {
  const SlabGeometry& g = from_.geometry();
  const SlabGeometry& tg = to_.geometry();
  const uint32_t E = g.slab_pages;
  const PageMeta& head = from_.index().page(run[first]);
  keys_.clear();
  checksums_.clear();
  for (size_t i = first; i < end; ++i) {
    keys_.push_back(from_.index().page(run[i]).key);
    const auto* record = reinterpret_cast<const PageRecord*>(from_.metadata().base() + g.record_offset(run[i]));
    checksums_.push_back(record->data_checksum);
  }
  // The target's own writers may have taken slabs since the start: a piece that would need more
  // than it has below its high watermark stops the copy rather than evict anything there.
  if (const uint64_t needed = (keys_.size() + E - 1) / E, left = room(); left < needed)
    return Status(Code::kExhausted, fmt::format("copy: {} slabs needed for the next {} pages, {} free there below its "
                                                "high watermark; the copy stops rather than evict", needed,
                                                keys_.size(), left));
  placed_.assign(keys_.size(), wire::Placement{});
  const uint32_t tenant = from_.slab_tenant(run[first] / E);
  auto [it, fresh] = sessions_.try_emplace(tenant, 0);
  if (fresh) it->second = to_.new_session(tenant);
  const uint64_t session = it->second;
  auto lease = to_.reserve(session, head.ns, head.parent_key, keys_.data(), uint32_t(keys_.size()), placed_.data(), now);
  if (!lease)
    return Status(lease.status().code(), fmt::format("copy: reserving a run of {} pages: {}", keys_.size(),
                                                     lease.status().message()));
  const int streams = from_.region().layout().stream_count();
  for (size_t i = 0; i < keys_.size(); ++i) {
    const wire::Placement& p = placed_[i];
    if (p.flags() & (uint16_t(wire::PlacementFlags::Cached) | uint16_t(wire::PlacementFlags::InFlight))) {
      ++report_.pages_already_there;
      continue;
    }
    const uint32_t slab = run[first + i] / E, position = run[first + i] % E;
    for (int s = 0; s < streams; ++s) {
      const uint64_t bytes = uint64_t{g.page_tokens} * g.stride[s];
      for (uint32_t l = 0; l < g.layers; ++l) {
        uint8_t* dst = to_.region().base() + p.slab_offset() + tg.page_run_offset(s, l, p.position());
        std::memcpy(dst, from_.region().base() + g.slab_offset(slab) + g.page_run_offset(s, l, position), bytes);
        cxl::persist(dst, bytes);  // durable and visible to other hosts before the commit names it
        report_.bytes_copied += bytes;
      }
    }
    ++report_.pages_copied;
  }
  if (auto committed = to_.commit(session, *lease, checksums_.data(), uint32_t(checksums_.size()), now); !committed)
    return Status(committed.status().code(), "copy: committing a run: " + committed.status().message());
  return Status::ok();
}

Result<PageCopyReport> copy_committed_pages(PoolService& from, PoolService& to, Clock::time_point now) {
  auto copy = PageCopy::start(from, to);
  if (!copy) return copy.status();
  while (!(*copy)->done())
    if (Status st = (*copy)->step(~uint64_t{0}, now); !st) return st;
  return (*copy)->report();
}

}  // namespace cxlkv::pool
