// The hot-buffer resolver (hot_buffer.h): one block of 1024 threads per (request, layer).
//   1. blocked pass over the top-k slots: hits mark their row used this step; misses get a
//      deterministic ordinal from a block scan (top-k order), so the result matches the CPU
//      reference exactly;
//   2. a radix select over the rows' last use finds the threshold below which rows are victims
//      (one pass of 11 bits while the rows' last uses span under 2048 steps) instead of sorting
//      every row; one scan numbers the victims in row order;
//   3. miss j takes victim j (evicting its old token);
//   4. the block copies the misses' entries from the pool into their rows, 4 loads in flight, the
//      misses' rows and tokens read from shared memory.
#include "hot_buffer.h"

#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

namespace cxlkv::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kItems = kHotMaxRows / kThreads;  // 8

// The radix select's digit: 2048 bins, two per thread for the scan over them.
constexpr int kDigitBits = 11;
constexpr uint32_t kBins = 1u << kDigitBits;
constexpr int kBinsPerThread = kBins / kThreads;  // 2

using Scan = cub::BlockScan<uint32_t, kThreads>;
using Reduce = cub::BlockReduce<uint32_t, kThreads>;
using RangeReduce = cub::BlockReduce<uint2, kThreads>;

// The block's shared scratch: the phases take turns with it, a barrier between each use.
union HotStepScratch {
  Scan::TempStorage scan;
  Reduce::TempStorage reduce;
  RangeReduce::TempStorage range;
};

// The misses' victims and tokens, by miss ordinal, in shared memory: the fetch reads them there
// instead of chasing victim -> token_of through global memory before each load from the pool.
struct MissList {
  uint32_t row[kHotMaxRows / 2];
  uint32_t token[kHotMaxRows / 2];
};

// The select's state, shared by the block.
struct SelectState {
  uint32_t histogram[kBins];
  uint32_t lowest;     // the smallest candidate key
  uint32_t span;       // the largest candidate key minus the smallest
  uint32_t prefix;     // the threshold's digits found so far (relative to lowest)
  uint32_t remaining;  // victims still to take among the candidates whose digits match prefix
};

// The smallest and largest key in one reduction.
struct KeyRange {
  __device__ uint2 operator()(const uint2& a, const uint2& b) const {
    return make_uint2(a.x < b.x ? a.x : b.x, a.y > b.y ? a.y : b.y);
  }
};

// Phase 1. Hits and misses over the top-k slots, thread t owning slots [t x kItems, +kItems): a hit
// marks its row used this step; bit j of miss_mask marks slot t x kItems + j a miss. h and shape
// come by value, as the kernel holds them: through references the stores to h.row_of could alias
// h, and the compiler lays out the phase's branches otherwise.
__device__ __forceinline__ void resolve_slots(const HotSegment h, const StreamShape shape, int32_t step,
                                              uint32_t* error_count, uint32_t tid, uint32_t& miss_mask,
                                              uint32_t& my_misses, uint32_t& my_hits) {
  const GatherSegment& g = h.gather;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const uint32_t slot = tid * kItems + j;
    if (slot >= g.k) continue;
    const int32_t idx = g.indices[slot];
    h.row_of[slot] = -1;
    if (idx == -1) continue;
    if (idx < -1 || (uint32_t(idx) >> shape.page_shift) >= g.pages || uint32_t(idx) >= h.tokens) {
      atomicAdd(error_count, 1u);
      continue;
    }
    const int32_t row = h.slot_of[idx];
    if (row >= 0) {
      h.last_used[row] = step;
      h.row_of[slot] = row;
      ++my_hits;
    } else {
      miss_mask |= 1u << j;
      ++my_misses;
    }
  }
}

// Phase 1, after the scan: thread 0 publishes the step's counts and the block's miss total.
__device__ __forceinline__ void publish_counts(HotStepScratch& tmp, const HotSegment& h, uint32_t my_hits,
                                               uint32_t total, uint32_t tid, uint32_t& miss_total) {
  const uint32_t hits = Reduce(tmp.reduce).Sum(my_hits);
  if (tid == 0) {
    miss_total = total;
    *h.hits = hits;
    *h.misses = total;
  }
}

// Phase 2. Victims: the `need` rows not used this step with the smallest (last use, row), numbered
// in row order into misses.row[0, need). A row's key is its last use, order kept as unsigned; a
// radix select finds the threshold key T digit by digit from the top, over the keys' span only
// (a decode's steps differ in their low bits: one pass while they span under 2048 steps). The
// victims are every candidate with key < T and the first `ties` candidates with key == T.
__device__ __forceinline__ void choose_victims(HotStepScratch& tmp, SelectState& sel, MissList& misses, const HotSegment& h,
                                               int32_t step, uint32_t need, uint32_t tid) {
  if (need == 0) return;  // the same for every thread: miss_total is the block's
  uint32_t keys[kItems];
  uint32_t candidates = 0;  // bit j: row tid x kItems + j may be evicted
  uint2 range = make_uint2(0xffffffffu, 0u);
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const uint32_t r = tid * kItems + j;
    const int32_t used = r < h.capacity ? h.last_used[r] : step;
    keys[j] = uint32_t(used) ^ 0x80000000u;  // int32 order as unsigned
    if (used == step) continue;
    candidates |= 1u << j;
    range.x = min(range.x, keys[j]);
    range.y = max(range.y, keys[j]);
  }
  range = RangeReduce(tmp.range).Reduce(range, KeyRange{});
  if (tid == 0) sel.lowest = range.x, sel.span = range.y - range.x, sel.prefix = 0, sel.remaining = need;
  __syncthreads();
  const uint32_t lowest = sel.lowest;
#pragma unroll
  for (int j = 0; j < kItems; ++j) keys[j] -= lowest;
  const int key_bits = 32 - __clz(sel.span | 1u);
  const int passes = (key_bits + kDigitBits - 1) / kDigitBits;
  for (int pass = passes - 1; pass >= 0; --pass) {
    const int shift = pass * kDigitBits;
    const uint32_t found = shift + kDigitBits >= 32 ? 0u : ~0u << (shift + kDigitBits);  // digits of earlier passes
#pragma unroll
    for (int b = 0; b < kBinsPerThread; ++b) sel.histogram[tid * kBinsPerThread + b] = 0;
    __syncthreads();  // also orders the reads of prefix and remaining after the last pass's writes
    const uint32_t prefix = sel.prefix, remaining = sel.remaining;
#pragma unroll
    for (int j = 0; j < kItems; ++j)
      if ((candidates >> j & 1u) && (keys[j] & found) == prefix)
        atomicAdd(&sel.histogram[(keys[j] >> shift) & (kBins - 1)], 1u);
    __syncthreads();
    uint32_t counts[kBinsPerThread], before[kBinsPerThread];
#pragma unroll
    for (int b = 0; b < kBinsPerThread; ++b) counts[b] = sel.histogram[tid * kBinsPerThread + b];
    Scan(tmp.scan).ExclusiveSum(counts, before);
    // Exactly one bin holds the remaining-th smallest key: fewer before it, enough with it.
#pragma unroll
    for (int b = 0; b < kBinsPerThread; ++b)
      if (before[b] < remaining && before[b] + counts[b] >= remaining) {
        sel.prefix = prefix | (uint32_t(tid * kBinsPerThread + b) << shift);
        sel.remaining = remaining - before[b];
      }
    __syncthreads();  // prefix and remaining written, the scan's scratch free again
  }
  const uint32_t threshold = sel.prefix, ties = sel.remaining;
  // One scan numbers both kinds in row order: keys below the threshold in the low half, ties in
  // the high (at most kHotMaxRows of either).
  uint32_t packed = 0;
#pragma unroll
  for (int j = 0; j < kItems; ++j)
    if (candidates >> j & 1u) packed += keys[j] < threshold ? 1u : keys[j] == threshold ? 1u << 16 : 0u;
  uint32_t packed_before = 0;
  Scan(tmp.scan).ExclusiveSum(packed, packed_before);
  uint32_t below = packed_before & 0xffffu, tied = packed_before >> 16;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    if (!(candidates >> j & 1u)) continue;
    const uint32_t r = tid * kItems + j;
    if (keys[j] < threshold) {
      misses.row[below + min(tied, ties)] = r;
      ++below;
    } else if (keys[j] == threshold) {
      if (tied < ties) misses.row[below + tied] = r;
      ++tied;
    }
  }
}

// Phase 3. Miss j takes victim j, miss_base being the block-wide ordinal of this thread's first miss.
__device__ __forceinline__ void assign_victims(const HotSegment& h, MissList& misses, int32_t step, uint32_t tid,
                                               uint32_t miss_mask, uint32_t miss_base) {
  const GatherSegment& g = h.gather;
  uint32_t ordinal = miss_base;
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    if (!(miss_mask & (1u << j))) continue;
    const uint32_t slot = tid * kItems + j;
    const int32_t idx = g.indices[slot];
    misses.token[ordinal] = uint32_t(idx);
    const uint32_t row = misses.row[ordinal++];
    const int32_t old = h.token_of[row];
    if (old >= 0) h.slot_of[old] = -1;
    h.token_of[row] = idx;
    h.slot_of[idx] = int32_t(row);
    h.last_used[row] = step;
    h.row_of[slot] = int32_t(row);
  }
}

// Phase 4. Fetch the misses, 16 B pieces, 4 loads in flight per thread; a split row's side bytes
// (GPU memory) after them. miss_total is the shared word itself, re-read where the kernel read it.
__device__ __forceinline__ void fetch_misses(const uint8_t* pool, const StreamShape& shape, const HotSegment& h,
                                             const MissList& misses, const uint32_t& miss_total, uint32_t tid) {
  const GatherSegment& g = h.gather;
  constexpr int kLoads = 4;
  const uint32_t row_bytes = shape.row_bytes();
  const uint32_t pieces_per_entry = shape.entry_bytes / 16;
  const uint32_t pieces = miss_total * pieces_per_entry;
  const uint64_t layer_base = uint64_t{g.layer} * shape.layer_step;
  for (uint32_t base = tid; base < pieces; base += kThreads * kLoads) {
    int4 v[kLoads];
    int4* dst[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      dst[j] = nullptr;
      const uint32_t piece = base + j * kThreads;
      if (piece >= pieces) continue;
      const uint32_t m = piece / pieces_per_entry, part = piece - m * pieces_per_entry;
      const uint32_t row = misses.row[m], idx = misses.token[m];
      const uint8_t* src = pool + g.page_base[idx >> shape.page_shift] + layer_base +
                           uint64_t(idx & (shape.page_tokens - 1)) * shape.stride + part * 16u;
      v[j] = __ldg(reinterpret_cast<const int4*>(src));
      dst[j] = reinterpret_cast<int4*>(h.rows + uint64_t{row} * row_bytes + shape.row_offset(part * 16u));
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (dst[j]) *dst[j] = v[j];
  }
  const uint32_t side_pieces = shape.side_bytes / 16;
  for (uint32_t i = tid; i < miss_total * side_pieces; i += kThreads) {
    const uint32_t m = i / side_pieces, q = i - m * side_pieces;
    const uint32_t row = misses.row[m], idx = misses.token[m];
    *reinterpret_cast<int4*>(h.rows + uint64_t{row} * row_bytes + shape.side_at + q * 16u) =
        __ldg(reinterpret_cast<const int4*>(g.side + uint64_t{idx} * shape.side_bytes + q * 16u));
  }
}

__global__ void __launch_bounds__(kThreads) hot_step_kernel(const uint8_t* __restrict__ pool, StreamShape shape,
                                                            const HotSegment* __restrict__ segments, int32_t step,
                                                            uint32_t* __restrict__ error_count) {
  __shared__ HotStepScratch tmp;
  __shared__ SelectState select;
  __shared__ MissList misses;
  __shared__ uint32_t miss_total;

  let_reuse_check_launch();
  const HotSegment h = segments[blockIdx.x];
  const uint32_t tid = threadIdx.x;

  uint32_t my_misses = 0, my_hits = 0;
  uint32_t miss_mask = 0;
  resolve_slots(h, shape, step, error_count, tid, miss_mask, my_misses, my_hits);
  // Misses get a deterministic ordinal (top-k order), so the victims match the CPU reference.
  uint32_t miss_base = 0, total = 0;
  Scan(tmp.scan).ExclusiveSum(my_misses, miss_base, total);
  __syncthreads();
  publish_counts(tmp, h, my_hits, total, tid, miss_total);
  __syncthreads();  // last_used of the hits is visible to the select below
  if (miss_total > kHotMaxRows / 2) {  // k past the limit (the library refuses it): misses stay row -1
    if (tid == 0) atomicAdd(error_count, 1u);
    return;
  }

  choose_victims(tmp, select, misses, h, step, miss_total, tid);
  __syncthreads();

  assign_victims(h, misses, step, tid, miss_mask, miss_base);
  __syncthreads();

  fetch_misses(pool, shape, h, misses, miss_total, tid);
}

}  // namespace

cudaError_t launch_hot_step(const uint8_t* pool, const StreamShape& shape, const HotSegment* segments,
                            uint32_t count, int32_t step, uint32_t* error_count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (!shape.aligned_to(16)) return cudaErrorInvalidValue;
  hot_step_kernel<<<dim3(count), dim3(kThreads), 0, stream>>>(pool, shape, segments, step, error_count);
  return cudaGetLastError();
}

}  // namespace cxlkv::kernels
