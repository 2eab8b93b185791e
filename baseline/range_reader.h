// RangeReader: the interface both baseline transports implement (TCP range reads, RDMA READs):
// move a list of ranges of the remote region into a local buffer, and count what moved. Called
// by prefix_fetch.cc and cxlkv-bench; implemented by tcp_reader.cc and rdma_reader.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "cxlkv/status.h"
#include "range_plan.h"
#include "bulk_wire.h"

namespace cxlkv::baseline {

// What a transport moved, counted as it moved it.
struct TransferCounts {
  uint64_t bytes = 0;     // payload bytes that arrived
  uint64_t messages = 0;  // ranges sent (TCP) / READ work requests posted (RDMA), after coalescing
  uint64_t batches = 0;   // requests (TCP) / post_send chains waited on (RDMA)
  TransferCounts& operator+=(const TransferCounts& o) {
    bytes += o.bytes;
    messages += o.messages;
    batches += o.batches;
    return *this;
  }
};

// Batching limits: a batch is one request (TCP) or one chain of work requests (RDMA).
struct BatchLimits {
  size_t max_ranges = 4096;
  uint64_t max_bytes = uint64_t{64} << 20;  // 64 MiB
};

class RangeReader {
 public:
  virtual ~RangeReader() = default;
  // "tcp" or "rdma".
  virtual const char* name() const = 0;
  // The served region (from the server's Info answer).
  virtual const wire::RegionInfo& info() const = 0;
  // Reads every range into local_base + range.local. The ranges must be coalesced already; the
  // reader cuts them into batches by `limits`. Blocks until all bytes are in place.
  virtual Status read(std::span<const Range> ranges, uint8_t* local_base, const BatchLimits& limits) = 0;
  // Counts since construction (or the last reset).
  const TransferCounts& counts() const { return counts_; }
  void reset_counts() { counts_ = {}; }

 protected:
  TransferCounts counts_;
};

}  // namespace cxlkv::baseline
