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
  let_reuse_check_launch();
  const uint32_t seg_id = interleave ? blockIdx.x % count : blockIdx.x / blocks_per_segment;
  const uint32_t slice = interleave ? blockIdx.x / count : blockIdx.x - seg_id * blocks_per_segment;
  const GatherSegment seg = segments[seg_id];
  const uint32_t row_bytes = shape.row_bytes();
  const uint32_t pieces_per_entry = shape.entry_bytes / sizeof(Piece);  // pool pieces; side bytes after the loop
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
      const uint32_t at = part * uint32_t(sizeof(Piece));  // in the pool entry
      const uint8_t* src =
          pool + __ldg(seg.page_base + page) + layer_base + uint64_t(uint32_t(idx) & token_mask) * shape.stride + at;
      v[j] = load_piece<Piece>(src);
      const uint32_t row = seg.rows ? __ldg(seg.rows + e) : e;
      dst[j] = seg.out + uint64_t{row} * row_bytes + shape.row_offset(at);
    }
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
      if (dst[j]) *reinterpret_cast<Piece*>(dst[j]) = v[j];
  }
  if (shape.side_bytes == 0 || !seg.side) return;
  // Split rows: the side bytes (GPU memory) of the entries whose first piece is in this slice,
  // kept out of the loop above so that loop issues only the link's loads.
  const uint64_t e_begin = (begin + pieces_per_entry - 1) / pieces_per_entry;
  const uint64_t e_end = (end + pieces_per_entry - 1) / pieces_per_entry;
  const uint32_t side_pieces = shape.side_bytes / sizeof(Piece);
  if (e_end <= e_begin) return;  // an empty slice (past the segment's k)
  for (uint64_t i = threadIdx.x; i < (e_end - e_begin) * side_pieces; i += blockDim.x) {
    const uint32_t e = uint32_t(e_begin + i / side_pieces), q = uint32_t(i % side_pieces);
    const int32_t idx = __ldg(seg.indices + e);
    if (idx < 0 || (uint32_t(idx) >> shape.page_shift) >= seg.pages) continue;  // skipped or counted above
    const uint32_t row = seg.rows ? __ldg(seg.rows + e) : e;
    *reinterpret_cast<Piece*>(seg.out + uint64_t{row} * row_bytes + shape.side_at + q * sizeof(Piece)) =
        load_piece<Piece>(seg.side + uint64_t(uint32_t(idx)) * shape.side_bytes + q * sizeof(Piece));
  }
}

// The yardstick: one warp per entry, 16 B per lane, no loads in flight beyond one per lane.
__global__ void gather_warp_per_entry_kernel(const uint8_t* __restrict__ pool, StreamShape shape,
                                             const GatherSegment* __restrict__ segments, uint32_t count,
                                             uint32_t max_k, uint32_t* __restrict__ error_count) {
  let_reuse_check_launch();
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

// The bulk-copy gather: each thread is a copier that keeps kStages entries in flight through the
// SM's bulk copy unit: pool -> its own shared-memory slot (completing on its own mbarrier), then
// slot -> output row. Copier c takes items c, c + C, c + 2C, ... (C copiers in the grid), so the
// items in flight at once are consecutive; with interleave, item f is entry f / count of segment
// f % count, the same position of every (ordered) segment.
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void bulk_load(uint32_t slot, const uint8_t* src, uint32_t bytes, uint32_t bar) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(slot),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

__device__ __forceinline__ void wait_parity(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// Stores a slot to its output row and waits until the slot has been read (free for the next load).
__device__ __forceinline__ void bulk_store_and_release(uint8_t* dst, uint32_t slot, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst), "r"(slot), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
  asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
}

// Resolves item f to its source and output row; nullptr when the item is skipped (-1, past k)
// or out of range (counted).
__device__ __forceinline__ uint8_t* resolve_item(const uint8_t* pool, const StreamShape& shape,
                                                 const GatherSegment* segments, uint32_t count, uint32_t max_k,
                                                 bool interleave, uint64_t f, const uint8_t** src,
                                                 uint32_t* error_count) {
  const uint32_t seg_id = uint32_t(interleave ? f % count : f / max_k);
  const uint32_t e = uint32_t(interleave ? f / count : f % max_k);
  const GatherSegment& seg = segments[seg_id];
  if (e >= seg.k) return nullptr;
  const int32_t idx = __ldg(seg.indices + e);
  if (idx == -1) return nullptr;
  const uint32_t page = uint32_t(idx) >> shape.page_shift;
  if (page >= seg.pages) {
    atomicAdd(error_count, 1u);
    return nullptr;
  }
  *src = pool + __ldg(seg.page_base + page) + uint64_t{seg.layer} * shape.layer_step +
         uint64_t(uint32_t(idx) & (shape.page_tokens - 1)) * shape.stride;
  const uint32_t row = seg.rows ? __ldg(seg.rows + e) : e;
  return seg.out + uint64_t{row} * shape.entry_bytes;
}

// HOT: shared memory = blockDim.x x kStages slots of entry_bytes, then as many 8 B mbarriers.
template <int kStages>
__global__ void gather_bulk_kernel(const uint8_t* __restrict__ pool, StreamShape shape,
                                   const GatherSegment* __restrict__ segments, uint32_t count, uint32_t max_k,
                                   bool interleave, uint32_t* __restrict__ error_count) {
  let_reuse_check_launch();
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t bytes = shape.entry_bytes;
  const uint32_t slots = blockDim.x * kStages;
  uint32_t slot[kStages], bar[kStages];
#pragma unroll
  for (int s = 0; s < kStages; ++s) {
    const uint32_t i = threadIdx.x * kStages + s;
    slot[s] = shared_address(smem + uint64_t{i} * bytes);
    bar[s] = shared_address(smem + uint64_t{slots} * bytes + uint64_t{i} * 8);
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar[s]) : "memory");
  }
  // The barriers are this thread's own; the fence makes their initial state visible to the
  // bulk copy unit before the first copy completes on them.
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  const uint64_t total = uint64_t{count} * max_k;
  const uint64_t copiers = uint64_t{gridDim.x} * blockDim.x;
  const uint64_t first = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  uint8_t* out[kStages];
  uint32_t parity = 0;  // bit s: the phase stage s waits for next
  auto issue = [&](uint64_t f, int s) -> uint8_t* {
    if (f >= total) return nullptr;
    const uint8_t* src = nullptr;
    uint8_t* dst = resolve_item(pool, shape, segments, count, max_k, interleave, f, &src, error_count);
    if (dst) bulk_load(slot[s], src, bytes, bar[s]);
    return dst;
  };
#pragma unroll
  for (int s = 0; s < kStages; ++s) out[s] = issue(first + s * copiers, s);
  for (uint64_t f = first; f < total; f += kStages * copiers) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      if (out[s]) {
        wait_parity(bar[s], (parity >> s) & 1u);
        parity ^= 1u << s;
        bulk_store_and_release(out[s], slot[s], bytes);
      }
      out[s] = issue(f + (kStages + s) * copiers, s);
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
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
  let_reuse_check_launch();
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
  if (!shape.aligned_to(4) || tuning.threads == 0 || tuning.threads > 1024) return cudaErrorInvalidValue;
  const bool wide = shape.aligned_to(16);
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

cudaError_t launch_gather_topk_bulk(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments,
                                    uint32_t count, uint32_t max_k, uint32_t* error_count,
                                    const BulkGatherTuning& tuning, cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  if (!shape.aligned_to(16) || shape.entry_bytes == 0 || shape.side_bytes || tuning.threads == 0 ||
      tuning.threads > 1024 || tuning.blocks_per_sm == 0)
    return cudaErrorInvalidValue;
  const uint64_t smem = uint64_t{tuning.threads} * tuning.stages * (shape.entry_bytes + 8);
  const uint64_t total = uint64_t{count} * max_k;
  const uint64_t wanted = uint64_t{device_sm_count()} * tuning.blocks_per_sm;
  const uint64_t needed = (total + uint64_t{tuning.threads} * tuning.stages - 1) / (uint64_t{tuning.threads} * tuning.stages);
  const uint32_t blocks = uint32_t(std::max<uint64_t>(1, std::min(wanted, needed)));
  auto launch = [&](auto kernel) {
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)); e != cudaSuccess)
      return e;
    kernel<<<dim3(blocks), dim3(tuning.threads), smem, stream>>>(pool, shape, segments, count, max_k,
                                                                  tuning.interleave_segments, error_count);
    return cudaGetLastError();
  };
  switch (tuning.stages) {
    case 1: return launch(gather_bulk_kernel<1>);
    case 2: return launch(gather_bulk_kernel<2>);
    case 4: return launch(gather_bulk_kernel<4>);
    default: return cudaErrorInvalidValue;
  }
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
  if (!shape.aligned_to(16) || shape.side_bytes) return cudaErrorInvalidValue;
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
