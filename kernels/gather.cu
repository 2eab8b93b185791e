// Gather kernels: pool (host-mapped CXL region) -> packed GPU buffers (gather.h).
//
// Why this shape: a decode step reads k entries of 656 B scattered over the pool, across PCIe
// (or CXL). The link is filled only with many independent reads in flight, so the kernel treats
// the whole launch as a flat array of 16-byte pieces (41 per 656 B entry), gives each thread
// `kLoads` independent loads before any store, and lets consecutive threads take consecutive
// pieces of one entry so each warp's loads form whole 512 B runs. Out-of-range indices are
// counted, never dereferenced.
#include "gather.h"

#include <cuda_runtime.h>

#include <cub/block/block_radix_sort.cuh>
#include <climits>

namespace cxlkv::kernels {
namespace {

template <typename Piece>
__device__ __forceinline__ Piece load_piece(const uint8_t* p) {
  return __ldg(reinterpret_cast<const Piece*>(p));
}

// HOT: one launch gathers every segment. Block b serves segment b / blocks_per_segment and the
// (b % blocks_per_segment)-th slice of its pieces.
template <typename Piece, int kLoads>
__global__ void __launch_bounds__(1024) gather_topk_kernel(const uint8_t* __restrict__ pool, StreamShape shape,
                                                           const GatherSegment* __restrict__ segments,
                                                           uint32_t blocks_per_segment, uint32_t count,
                                                           bool interleave, uint32_t* __restrict__ error_count) {
  const uint32_t seg_id = interleave ? blockIdx.x % count : blockIdx.x / blocks_per_segment;
  const uint32_t slice = interleave ? blockIdx.x / count : blockIdx.x - seg_id * blocks_per_segment;
  const GatherSegment seg = segments[seg_id];
  const uint32_t pieces_per_entry = shape.entry_bytes / sizeof(Piece);
  const uint64_t total = uint64_t{seg.k} * pieces_per_entry;
  const uint64_t per_slice = (total + blocks_per_segment - 1) / blocks_per_segment;
  const uint64_t begin = per_slice * slice;
  const uint64_t end = min(total, begin + per_slice);
  const uint64_t layer_base = uint64_t{seg.layer} * shape.layer_step;
  const uint32_t token_mask = shape.page_tokens - 1;

  for (uint64_t base = begin + threadIdx.x; base < end; base += uint64_t{blockDim.x} * kLoads) {
    Piece v[kLoads];
    uint8_t* dst[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      dst[j] = nullptr;
      const uint64_t piece = base + uint64_t(j) * blockDim.x;
      if (piece >= end) continue;
      const uint32_t e = uint32_t(piece / pieces_per_entry);
      const uint32_t part = uint32_t(piece - uint64_t{e} * pieces_per_entry);
      const int32_t idx = __ldg(seg.indices + e);
      if (idx == -1) continue;  // skipped by convention; other negatives fail the page check
      const uint32_t page = uint32_t(idx) >> shape.page_shift;
      if (page >= seg.pages) {
        if (part == 0) atomicAdd(error_count, 1u);
        continue;
      }
      const uint8_t* src = pool + __ldg(seg.page_base + page) + layer_base +
                           uint64_t(uint32_t(idx) & token_mask) * shape.stride + uint64_t{part} * sizeof(Piece);
      v[j] = load_piece<Piece>(src);
      const uint32_t row = seg.rows ? __ldg(seg.rows + e) : e;
      dst[j] = seg.out + uint64_t{row} * shape.entry_bytes + uint64_t{part} * sizeof(Piece);
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (dst[j]) *reinterpret_cast<Piece*>(dst[j]) = v[j];
  }
}

// The yardstick: one warp per entry, 16 B per lane, no loads in flight beyond one per lane.
__global__ void gather_warp_per_entry_kernel(const uint8_t* __restrict__ pool, StreamShape shape,
                                             const GatherSegment* __restrict__ segments, uint32_t count,
                                             uint32_t max_k, uint32_t* __restrict__ error_count) {
  const uint32_t warps_per_block = blockDim.x / 32;
  const uint64_t warp = uint64_t{blockIdx.x} * warps_per_block + threadIdx.x / 32;
  const uint32_t seg_id = uint32_t(warp / max_k), e = uint32_t(warp % max_k);
  if (seg_id >= count) return;  // the last block's spare warps
  const GatherSegment seg = segments[seg_id];
  if (e >= seg.k) return;
  const int32_t idx = seg.indices[e];
  if (idx == -1) return;
  const uint32_t page = uint32_t(idx) >> shape.page_shift;
  if (page >= seg.pages) {
    if (threadIdx.x % 32 == 0) atomicAdd(error_count, 1u);
    return;
  }
  const uint8_t* src = pool + seg.page_base[page] + uint64_t{seg.layer} * shape.layer_step +
                       uint64_t(uint32_t(idx) & (shape.page_tokens - 1)) * shape.stride;
  uint8_t* dst = seg.out + uint64_t{e} * shape.entry_bytes;
  for (uint32_t off = (threadIdx.x % 32) * 16; off < shape.entry_bytes; off += 32 * 16)
    *reinterpret_cast<int4*>(dst + off) = __ldg(reinterpret_cast<const int4*>(src + off));
}

// One block per segment sorts (index, row) pairs in shared memory. Padding sorts last and is
// never read (the copy keeps k); -1 sorts first and stays skipped.
constexpr int kOrderThreads = 256, kOrderItems = kMaxOrderedK / kOrderThreads;

__global__ void __launch_bounds__(kOrderThreads) order_segments_kernel(const GatherSegment* __restrict__ segments,
                                                                       uint32_t max_k, GatherOrderScratch scratch) {
  using Sort = cub::BlockRadixSort<int32_t, kOrderThreads, kOrderItems, uint32_t>;
  __shared__ typename Sort::TempStorage temp;
  const GatherSegment seg = segments[blockIdx.x];
  int32_t key[kOrderItems];
  uint32_t row[kOrderItems];
#pragma unroll
  for (int j = 0; j < kOrderItems; ++j) {  // blocked arrangement: thread t holds items t*kItems+j
    const uint32_t i = threadIdx.x * kOrderItems + j;
    const bool real = i < seg.k && i < max_k;
    key[j] = real ? seg.indices[i] : INT_MAX;
    row[j] = real && seg.rows ? seg.rows[i] : i;
  }
  Sort(temp).Sort(key, row);
  int32_t* out_idx = scratch.indices + uint64_t{blockIdx.x} * max_k;
  uint32_t* out_row = scratch.rows + uint64_t{blockIdx.x} * max_k;
#pragma unroll
  for (int j = 0; j < kOrderItems; ++j) {
    const uint32_t i = threadIdx.x * kOrderItems + j;
    if (i < seg.k && i < max_k) out_idx[i] = key[j], out_row[i] = row[j];
  }
  if (threadIdx.x == 0) {
    GatherSegment copy = seg;
    copy.indices = out_idx;
    copy.rows = out_row;
    copy.k = min(seg.k, max_k);
    scratch.segments[blockIdx.x] = copy;
  }
}

// Bulk runs: block per run, 16 B pieces, 4 in flight per thread.
__global__ void copy_runs_kernel(const uint8_t* __restrict__ pool, const uint64_t* __restrict__ src_offset,
                                 const uint32_t* __restrict__ bytes, const uint64_t* __restrict__ dst_offset,
                                 uint8_t* __restrict__ out) {
  const uint32_t run = blockIdx.x;
  const int4* src = reinterpret_cast<const int4*>(pool + src_offset[run]);
  int4* dst = reinterpret_cast<int4*>(out + dst_offset[run]);
  const uint32_t n = bytes[run] / 16;
  constexpr int kLoads = 4;
  for (uint32_t base = threadIdx.x; base < n; base += blockDim.x * kLoads) {
    int4 v[kLoads];
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (base + j * blockDim.x < n) v[j] = __ldg(src + base + j * blockDim.x);
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (base + j * blockDim.x < n) dst[base + j * blockDim.x] = v[j];
  }
}

template <typename Piece>
cudaError_t launch_with_loads(uint32_t loads, dim3 grid, dim3 block, cudaStream_t stream, const uint8_t* pool,
                              const StreamShape& shape, const GatherSegment* segments, uint32_t bps, uint32_t count,
                              bool il, uint32_t* err) {
  switch (loads) {
    case 1: gather_topk_kernel<Piece, 1><<<grid, block, 0, stream>>>(pool, shape, segments, bps, count, il, err); break;
    case 2: gather_topk_kernel<Piece, 2><<<grid, block, 0, stream>>>(pool, shape, segments, bps, count, il, err); break;
    case 4: gather_topk_kernel<Piece, 4><<<grid, block, 0, stream>>>(pool, shape, segments, bps, count, il, err); break;
    case 8: gather_topk_kernel<Piece, 8><<<grid, block, 0, stream>>>(pool, shape, segments, bps, count, il, err); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

uint32_t device_sm_count() {
  static uint32_t sms = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return uint32_t(n > 0 ? n : 1);
  }();
  return sms;
}

cudaError_t launch_gather_topk(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments,
                               uint32_t count, uint32_t max_k, uint32_t* error_count, const GatherTuning& tuning,
                               cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  if (shape.entry_bytes % 4 || shape.stride % 4 || tuning.threads == 0 || tuning.threads > 1024)
    return cudaErrorInvalidValue;
  const bool wide = shape.entry_bytes % 16 == 0 && shape.stride % 16 == 0;
  const uint64_t pieces = uint64_t{max_k} * (shape.entry_bytes / (wide ? 16 : 4));
  // Enough blocks to fill the GPU, but no block with less than one round of loads.
  const uint64_t target = uint64_t{device_sm_count()} * tuning.blocks_per_sm;
  uint64_t bps = (target + count - 1) / count;
  const uint64_t min_pieces = uint64_t{tuning.threads} * tuning.loads_in_flight;
  bps = std::max<uint64_t>(1, std::min<uint64_t>(bps, (pieces + min_pieces - 1) / min_pieces));
  // Small slices keep the blocks in flight on a narrow window of the segments (blocks start in
  // index order), so the pool pages being translated at once stay few.
  if (tuning.entries_per_block) bps = std::max<uint64_t>(bps, (max_k + tuning.entries_per_block - 1) / tuning.entries_per_block);
  const uint64_t blocks = bps * count;
  if (blocks > 0x7fffffffull) return cudaErrorInvalidValue;
  const dim3 grid{uint32_t(blocks)}, block{tuning.threads};
  const bool il = tuning.interleave_segments;
  return wide ? launch_with_loads<int4>(tuning.loads_in_flight, grid, block, stream, pool, shape, segments, uint32_t(bps), count, il, error_count)
              : launch_with_loads<uint32_t>(tuning.loads_in_flight, grid, block, stream, pool, shape, segments, uint32_t(bps), count, il, error_count);
}

cudaError_t launch_order_segments(const GatherSegment* segments, uint32_t count, uint32_t max_k,
                                  const GatherOrderScratch& scratch, cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  if (max_k > kMaxOrderedK || !scratch.indices || !scratch.rows || !scratch.segments) return cudaErrorInvalidValue;
  order_segments_kernel<<<dim3(count), dim3(kOrderThreads), 0, stream>>>(segments, max_k, scratch);
  return cudaGetLastError();
}

cudaError_t launch_gather_topk_warp_per_entry(const uint8_t* pool, const StreamShape& shape,
                                              const GatherSegment* segments, uint32_t count, uint32_t max_k,
                                              uint32_t* error_count, cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  if (shape.entry_bytes % 16 || shape.stride % 16) return cudaErrorInvalidValue;
  const uint64_t warps = uint64_t{count} * max_k;
  const uint32_t threads = 256;
  const uint64_t blocks = (warps * 32 + threads - 1) / threads;
  gather_warp_per_entry_kernel<<<dim3(uint32_t(blocks)), dim3(threads), 0, stream>>>(pool, shape, segments, count, max_k, error_count);
  return cudaGetLastError();
}

cudaError_t launch_copy_runs(const uint8_t* pool, const uint64_t* src_offset, const uint32_t* bytes,
                             const uint64_t* dst_offset, uint32_t count, uint8_t* out, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  copy_runs_kernel<<<dim3(count), dim3(256), 0, stream>>>(pool, src_offset, bytes, dst_offset, out);
  return cudaGetLastError();
}

}  // namespace cxlkv::kernels
