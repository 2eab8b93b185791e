// The GPU hot buffer: per (request, layer), `capacity` rows of latent entries in HBM that stay
// from one decode step to the next. Each step, one launch resolves every top-k index to a row
// (hit) or takes the least recently used row not needed this step (miss), fetches only the
// misses from the pool, and writes row_of[k]: the attention kernel then reads rows
// (FlashMLA's sparse decode over [capacity][656] with these indices). CPU reference:
// reference_hot_step (reference.h), which defines the exact result.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gather_types.h"

namespace cxlkv::kernels {

// The largest capacity (rows) one resolver block handles: 1024 threads x 8 items; k is at most
// half of it (capacity >= 2k).
inline constexpr uint32_t kHotMaxRows = 8192;

// One (request, layer)'s hot buffer in GPU memory. Invariant (as in HotBufferState):
// slot_of[token_of[r]] == r for resident rows; capacity >= 2 x k.
struct HotSegment {
  GatherSegment gather;          // page_base, indices, pages, layer, k; gather.out unused
  int32_t* slot_of = nullptr;    // [tokens], -1 = not resident; start all -1
  int32_t* token_of = nullptr;   // [capacity], start all -1
  int32_t* last_used = nullptr;  // [capacity], start all -1
  uint8_t* rows = nullptr;       // [capacity][row_bytes]; split rows take gather.side's bytes
  int32_t* row_of = nullptr;     // [k] out: row of each top-k slot, -1 for -1 slots
  uint32_t* hits = nullptr;      // out, this step
  uint32_t* misses = nullptr;    // out, this step: entries fetched from the pool
  uint32_t capacity = 0;
  uint32_t tokens = 0;
};

// One decode step for `count` segments (GPU array), one block each. entry_bytes and stride (and
// a split row's side_bytes and side_at) must be multiples of 16. `error_count` counts out-of-range
// indices (left unresolved, row -1) and segments with more than kHotMaxRows / 2 misses (their
// misses left unresolved).
cudaError_t launch_hot_step(const uint8_t* pool, const StreamShape& shape, const HotSegment* segments,
                            uint32_t count, int32_t step, uint32_t* error_count, cudaStream_t stream);

}  // namespace cxlkv::kernels
