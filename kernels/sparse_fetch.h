// The two small kernels of the sparse-decode fetch (client/gpu_sparse_fetch.cc): a decode step's
// top-k positions of a request run over its cached prefix (in the pool) and then its tail (tokens
// decoded since, in the caller's HBM). split_prefix keeps the prefix positions for the pool's
// gather or hot buffer; assemble_rows then writes every tail row, and with a hot buffer every
// prefix row, into the packed output that FlashMLA's sparse decode reads. CPU references:
// reference_split_prefix and reference_assemble_rows (reference.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gather_types.h"  // SparseFetchSegment

namespace cxlkv::kernels {

// prefix_topk [count][max_k]: segment s's slot i is its position p if p lies in the prefix, else
// -1. Counts positions outside prefix + tail (and below -1) in error_count.
cudaError_t launch_split_prefix(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k,
                                int32_t* prefix_topk, uint32_t* error_count, cudaStream_t stream);

// Tail rows (and hot-buffer rows where row_of is set) into out. row_bytes a multiple of 16.
cudaError_t launch_assemble_rows(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k,
                                 uint32_t row_bytes, cudaStream_t stream);

}  // namespace cxlkv::kernels
