// Copying a partition's committed pages into another partition of the same daemon: what removing
// a partition online does before it closes it (online_partitions.h). Cold: an operator's act, on
// the I/O thread, in bounded steps so that the requests of everyone else are served in between.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cxlkv/status.h"
#include "pool_service.h"

namespace cxlkv::pool {

struct PageCopyReport {
  uint64_t pages_copied = 0;
  uint64_t pages_already_there = 0;  // (namespace, key) committed (or being written) in `to` already
  uint64_t pages_gone = 0;           // no longer committed in `from` when their turn came (evicted)
  uint64_t bytes_copied = 0;
};

// Every page COMMITTED in `from` when the copy starts goes into `to`: same namespace, key, parent
// key, bytes and data checksum, charged to the tenant that wrote it. Prefixes go over as runs of
// pages, each run one reserve and one commit in `to` (so `to` packs them into slabs as their writer
// did), parents committed before their children, every byte made durable before its commit.
// `from` is only read; it must take no new pages meanwhile (its partition drains), and a page it
// lets go of before its turn is skipped (counted as gone). Both must have the same layout and E.
class PageCopy {
 public:
  // kExhausted, before anything is copied, when `to` has fewer free slabs below its high
  // watermark than the runs need (each piece checks again: `to`'s writers go on meanwhile): a
  // copy never evicts `to`'s pages, nor makes its reaper evict. kMismatch for another layout or E.
  static Result<std::unique_ptr<PageCopy>> start(PoolService& from, PoolService& to);
  ~PageCopy();
  PageCopy(const PageCopy&) = delete;
  PageCopy& operator=(const PageCopy&) = delete;

  // Copies pages until about `byte_budget` bytes have gone over (at least a slab's worth of
  // pages), kMaxPagesPerStep pages were looked at, or none is left. An error leaves the pages copied so far committed in `to` and `from`
  // whole.
  Status step(uint64_t byte_budget, Clock::time_point now);
  bool done() const { return next_run_ == runs_.size(); }
  static constexpr uint64_t kMaxPagesPerStep = 4096;
  const PageCopyReport& report() const { return report_; }

 private:
  PageCopy(PoolService& from, PoolService& to) : from_(from), to_(to) {}
  // Free slabs of `to` below its high watermark.
  uint64_t room() const;
  // Pages [first, end) of a run, all still committed as listed, as one reserve and commit.
  Status copy_pages(const std::vector<uint32_t>& run, size_t first, size_t end, Clock::time_point now);

  PoolService& from_;
  PoolService& to_;
  struct Listed {
    uint32_t slot;
    PageKey key;  // as committed when listed: a slot reused since holds another key
  };
  std::vector<std::vector<Listed>> runs_;
  size_t next_run_ = 0, next_page_ = 0;  // where the next step starts
  uint64_t page_bytes_ = 0;              // of every stream and layer of one page
  PageCopyReport report_;
  std::unordered_map<uint32_t, uint64_t> sessions_;  // by writer tenant: a session of `to` charged to it
  std::vector<uint32_t> slots_;  // scratch
  std::vector<PageKey> keys_;
  std::vector<uint64_t> checksums_;
  std::vector<wire::Placement> placed_;
};

// The whole copy at once (tests; the daemon steps it).
Result<PageCopyReport> copy_committed_pages(PoolService& from, PoolService& to, Clock::time_point now);

}  // namespace cxlkv::pool
