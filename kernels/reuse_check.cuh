// Device side of the reuse check (reuse_check.h), shared by the check kernel and the tail of the
// top-k gather kernel (gather.cu), which checks its own slice of a segment so a decode step's
// gather adds no launch. Block-wide helpers: every thread of the block calls them.
#pragma once

#include "gather_types.h"

namespace cxlkv::kernels {

// A word of the pool as it is in memory now, not from any cache of the GPU.
__device__ __forceinline__ uint64_t load_now(const uint8_t* pool, uint64_t offset) {
  return __ldcv(reinterpret_cast<const unsigned long long*>(pool + offset));
}

// Whether any part's slab-free count moved since the guard's pages were last found good. Call
// after the block's reads of the pool have completed (their values used); counts (shared,
// kMaxGuardParts) receives the counts read.
__device__ __forceinline__ bool guard_counts_moved(const uint8_t* pool, const LeaseGuard& g, uint64_t* counts) {
  int moved = 0;
  __threadfence();  // the block's loads of the pool before the counts'
  for (uint32_t p = threadIdx.x; p < g.parts; p += blockDim.x) {
    counts[p] = load_now(pool, g.frees_offset[p]);
    moved |= counts[p] != __ldcg(reinterpret_cast<const unsigned long long*>(g.frees_seen + p));
  }
  return __syncthreads_or(moved);
}

// The slow path, after guard_counts_moved: whether a part's daemon restarted (epoch) or a slab
// word of pages page_of(0..n) (a page past g.pages: none) is not as leased.
template <typename PageOf>
__device__ __forceinline__ bool guard_pages_changed(const uint8_t* pool, const LeaseGuard& g, uint32_t n, PageOf page_of) {
  int changed = 0;
  __threadfence();  // the counts before the words: a count raised below is one the words held at
  for (uint32_t p = threadIdx.x; p < g.parts; p += blockDim.x)
    changed |= g.epoch_offset[p] != kNoEpoch && load_now(pool, g.epoch_offset[p]) != g.epoch[p];
  for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
    const uint32_t page = page_of(i);
    if (page < g.pages) changed |= load_now(pool, g.word_offset[page]) != g.word_expected[page];
  }
  return __syncthreads_or(changed);
}

// The pages were found good at `counts`: later checks start from there.
__device__ __forceinline__ void guard_raise_counts(const LeaseGuard& g, const uint64_t* counts) {
  if (!g.keeps_counts) return;
  for (uint32_t p = threadIdx.x; p < g.parts; p += blockDim.x)
    atomicMax(reinterpret_cast<unsigned long long*>(g.frees_seen + p), static_cast<unsigned long long>(counts[p]));
}

// Fills [out, out + bytes) with kPoisonByte, 16 B at a time where it can.
__device__ __forceinline__ void poison_bytes(uint8_t* out, uint64_t bytes) {
  const uint64_t head = min(bytes, uint64_t((16 - (reinterpret_cast<uintptr_t>(out) & 15)) & 15));
  for (uint64_t b = threadIdx.x; b < head; b += blockDim.x) out[b] = kPoisonByte;
  const uint64_t wide = (bytes - head) / 16;
  const int4 all = make_int4(-1, -1, -1, -1);
  static_assert(kPoisonByte == 0xFF, "the wide stores write all-ones");
  for (uint64_t i = threadIdx.x; i < wide; i += blockDim.x) reinterpret_cast<int4*>(out + head)[i] = all;
  for (uint64_t b = head + wide * 16 + threadIdx.x; b < bytes; b += blockDim.x) out[b] = kPoisonByte;
}

}  // namespace cxlkv::kernels
