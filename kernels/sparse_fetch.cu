// The sparse-decode fetch's kernels (sparse_fetch.h): elementwise over (segment, slot), the row
// copies one warp per row in 16 B pieces, so a warp moves whole 128 B lines of HBM.
#include "sparse_fetch.h"

#include <cuda_runtime.h>

namespace cxlkv::kernels {
namespace {

constexpr uint32_t kThreads = 256;

__global__ void split_prefix_kernel(const SparseFetchSegment* __restrict__ segments, uint32_t max_k,
                                    int32_t* __restrict__ prefix_topk, uint32_t* __restrict__ error_count) {
  const SparseFetchSegment& s = segments[blockIdx.y];
  int32_t* mine = prefix_topk + uint64_t{blockIdx.y} * max_k;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < s.k; i += gridDim.x * blockDim.x) {
    const int32_t p = s.topk[i];
    const bool in_prefix = p >= 0 && uint32_t(p) < s.prefix_tokens;
    const bool in_tail = p >= 0 && !in_prefix && uint32_t(p) - s.prefix_tokens < s.tail_tokens;
    mine[i] = in_prefix ? p : -1;
    if (p < -1 || (p >= 0 && !in_prefix && !in_tail)) atomicAdd(error_count, 1u);
  }
}

__global__ void assemble_rows_kernel(const SparseFetchSegment* __restrict__ segments, uint32_t row_bytes) {
  const SparseFetchSegment& s = segments[blockIdx.y];
  const uint32_t warps = blockDim.x / 32, lane = threadIdx.x % 32;
  const uint32_t pieces = row_bytes / 16;
  for (uint32_t i = blockIdx.x * warps + threadIdx.x / 32; i < s.k; i += gridDim.x * warps) {
    const int32_t p = s.topk[i];
    const uint8_t* src = nullptr;
    if (p >= 0 && uint32_t(p) < s.prefix_tokens) {
      const int32_t row = s.row_of ? s.row_of[i] : -1;  // no hot buffer: the gather wrote the row
      if (row >= 0) src = s.hot_rows + uint64_t(row) * row_bytes;
    } else if (p >= 0 && uint32_t(p) - s.prefix_tokens < s.tail_tokens) {
      src = s.tail + uint64_t(uint32_t(p) - s.prefix_tokens) * row_bytes;
    }
    if (!src) continue;
    int4* dst = reinterpret_cast<int4*>(s.out + uint64_t(i) * row_bytes);
    for (uint32_t q = lane; q < pieces; q += 32) dst[q] = reinterpret_cast<const int4*>(src)[q];
  }
}

}  // namespace

cudaError_t launch_split_prefix(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k,
                                int32_t* prefix_topk, uint32_t* error_count, cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  const dim3 grid((max_k + kThreads - 1) / kThreads, count);
  split_prefix_kernel<<<grid, kThreads, 0, stream>>>(segments, max_k, prefix_topk, error_count);
  return cudaGetLastError();
}

cudaError_t launch_assemble_rows(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k,
                                 uint32_t row_bytes, cudaStream_t stream) {
  if (count == 0 || max_k == 0) return cudaSuccess;
  if (row_bytes % 16) return cudaErrorInvalidValue;
  constexpr uint32_t kRowsPerBlock = kThreads / 32;
  const dim3 grid((max_k + kRowsPerBlock - 1) / kRowsPerBlock, count);
  assemble_rows_kernel<<<grid, kThreads, 0, stream>>>(segments, row_bytes);
  return cudaGetLastError();
}

}  // namespace cxlkv::kernels
