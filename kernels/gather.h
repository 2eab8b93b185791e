// Launchers of the pool-to-GPU gather kernels (gather.cu): top-k entries of many (request,
// layer) segments into packed GPU buffers in one launch, and bulk copies of whole runs (the
// indexer keys of a page range). Called by the client's GPU path and the GPU benchmark; the
// pool pointer is the device view of a registered region (gpu_region.h). Never synchronizes:
// every launcher is asynchronous on the caller's stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gather_types.h"

namespace cxlkv::kernels {

// How the top-k gather kernel spreads work. Defaults are the measured best on an H100
// (docs/performance.md); the benchmark sweeps them.
struct GatherTuning {
  uint32_t threads = 512;          // per block
  uint32_t loads_in_flight = 4;    // independent 16 B loads per thread before the stores: 1, 2, 4, 8
  uint32_t blocks_per_sm = 8;      // target grid = SMs x this, split evenly over the segments
  uint32_t entries_per_block = 0;  // if set, at most this many entries per block (more blocks)
  // Block b serves slice b / count of segment b % count, so the blocks in flight take the same
  // slice of every segment; with ordered segments (launch_order_segments) that is the same page
  // range of every layer, a narrow window of the pool instead of one layer's whole span.
  bool interleave_segments = false;
};

// The measured best tuning for ordered segments on an H100 (docs/performance.md).
inline constexpr GatherTuning kOrderedGatherTuning{256, 8, 8, 16, true};

// Largest k that launch_order_segments sorts (one block per segment, in shared memory).
inline constexpr uint32_t kMaxOrderedK = 2048;

// Device scratch of an ordered gather, each array sized for `count` segments of max_k entries.
struct GatherOrderScratch {
  int32_t* indices = nullptr;       // [count x max_k]
  uint32_t* rows = nullptr;         // [count x max_k]
  GatherSegment* segments = nullptr;  // [count]
};

// Writes to scratch.segments a copy of each segment whose indices are in ascending order (so in
// page order) and whose rows say where each entry came from; gathering those copies fills the
// same output as the originals. max_k <= kMaxOrderedK. Asynchronous on `stream`.
cudaError_t launch_order_segments(const GatherSegment* segments, uint32_t count, uint32_t max_k,
                                  const GatherOrderScratch& scratch, cudaStream_t stream);

// Device-resident inputs of a gather launch: `segments` points to `count` GatherSegment in GPU
// memory whose page_base / indices / out are GPU pointers (page_base/indices may also be
// host-mapped). `error_count` (GPU memory) is incremented once per out-of-range index.
// entry_bytes and stride must be multiples of 4; multiples of 16 take the 16-byte load path.
// Split rows (shape.side_bytes, gather_types.h) are built here only: the other launchers refuse
// them with cudaErrorInvalidValue.
cudaError_t launch_gather_topk(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments,
                               uint32_t count, uint32_t max_k, uint32_t* error_count, const GatherTuning& tuning,
                               cudaStream_t stream);

// How the bulk-copy gather (launch_gather_topk_bulk) spreads work: every thread is a copier
// with `stages` entries in flight, each moved pool -> shared memory -> output by the SM's bulk
// copy unit (cp.async.bulk) instead of by the threads' own loads.
struct BulkGatherTuning {
  uint32_t threads = 64;       // copiers per block
  uint32_t stages = 2;         // entries in flight per copier: 1, 2 or 4
  uint32_t blocks_per_sm = 2;  // shared memory per block: threads x stages x entry_bytes
  bool interleave_segments = true;  // item f is entry f / count of segment f % count
};

// Same contract as launch_gather_topk (rows, -1, out-of-range counting); entry_bytes and stride
// must be multiples of 16 (the bulk copy unit's granule), else cudaErrorInvalidValue.
cudaError_t launch_gather_topk_bulk(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments,
                                    uint32_t count, uint32_t max_k, uint32_t* error_count,
                                    const BulkGatherTuning& tuning, cudaStream_t stream);

// The simple kernel the notes measured (one warp per entry), kept as the benchmark's yardstick.
cudaError_t launch_gather_topk_warp_per_entry(const uint8_t* pool, const StreamShape& shape,
                                              const GatherSegment* segments, uint32_t count, uint32_t max_k,
                                              uint32_t* error_count, cudaStream_t stream);

// out = runs [src_offset[i], +bytes[i]) of the pool packed back to back, dst_offset[i] being the
// exclusive prefix sum of bytes (GPU arrays of `count`). Offsets and sizes multiples of 16.
cudaError_t launch_copy_runs(const uint8_t* pool, const uint64_t* src_offset, const uint32_t* bytes,
                             const uint64_t* dst_offset, uint32_t count, uint8_t* out, cudaStream_t stream);

// Number of multiprocessors of the current device (cached).
uint32_t device_sm_count();

}  // namespace cxlkv::kernels
