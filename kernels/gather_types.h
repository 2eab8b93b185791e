// Plain descriptions of a top-k gather, shared by the CUDA kernels (gather.cu, hot_buffer.cu),
// their CPU references (reference.cc) and the callers that build them from a lease's block
// table. No CUDA types here, so CPU-only builds and tests use the same structs.
#pragma once

#include <cstdint>

#include "sizes.h"  // cxl/: constants only

namespace cxlkv::kernels {

// The shape of one stream in the pool (from SlabGeometry and the layout).
//   entry (page p, layer l, token t) at  pool + page_base[p] + l x layer_step + t x stride
// where page_base[p] = slab_offset(p) + stream_offset + position(p) x page_tokens x stride.
struct StreamShape {
  uint32_t entry_bytes = 0;   // copied per entry (656 for the DeepSeek-V3.2 latent)
  uint32_t stride = 0;        // distance between entries in the pool (>= entry_bytes)
  uint64_t layer_step = 0;    // E x page_tokens x stride
  uint32_t page_tokens = cxl::kPageTokens;     // 64
  uint32_t page_shift = cxl::kPageTokensShift;  // log2(page_tokens); page_tokens must be a power of two
  // A split entry: each output row is entry_bytes + side_bytes long, side_bytes taken from the
  // segment's `side` array (already in GPU memory) inserted at byte side_at of the pool entry.
  // DeepSeek-V3.2 split: the pool holds 640 B (512 B NoPE + 128 B RoPE, five whole 128 B lines)
  // and the 16 B of scales go in at 512, giving FlashMLA's 656 B row. 0 = rows are pool entries.
  uint32_t side_bytes = 0;
  uint32_t side_at = 0;
  constexpr uint32_t row_bytes() const { return entry_bytes + side_bytes; }
  // Where byte `at` of a pool entry goes in its output row.
  constexpr uint32_t row_offset(uint32_t at) const { return at < side_at ? at : at + side_bytes; }
  // Every length and place of the shape is a multiple of `granule` bytes (a kernel's load width)
  // and the side bytes go in within the entry: the one rule every launcher and caller checks.
  constexpr bool aligned_to(uint32_t granule) const {
    return entry_bytes % granule == 0 && stride % granule == 0 && side_bytes % granule == 0 && side_at % granule == 0 &&
           side_at <= entry_bytes;
  }
};

// A read lease's pages as the GPU checks them after reading them (reuse_check.h): each part (a
// mapping the pages lie in: one node of a cluster) has a slab-free count and a serving epoch in
// the pool, each page a slab word. Offsets are bytes from the pool's device view (modulo 2^64);
// arrays are GPU memory in GPU launches and host memory in the CPU reference.
inline constexpr uint32_t kMaxGuardParts = 64;
inline constexpr uint64_t kNoEpoch = ~uint64_t{0};  // epoch_offset of a part with no epoch word
struct LeaseGuard {
  uint64_t* frees_seen = nullptr;           // [parts] the counts at which the pages were last found good
  const uint64_t* frees_offset = nullptr;   // [parts]
  const uint64_t* epoch_offset = nullptr;   // [parts], kNoEpoch: none
  const uint64_t* epoch = nullptr;          // [parts] the part's epoch when the lease was taken
  const uint64_t* word_offset = nullptr;    // [pages]
  const uint64_t* word_expected = nullptr;  // [pages] the slab word as leased: generation << 8 | in use
  uint32_t parts = 0;                       // 0: nothing to check (a lease made over a bare region)
  uint32_t pages = 0;
  uint32_t* reused = nullptr;               // counts each output poisoned (GPU memory)
  uint32_t keeps_counts = 1;                // 0: frees_seen is not raised (a guard of one call)
};

// What one launch read through a guard's pages: its output bytes, poisoned if the check fails.
struct GuardTarget {
  LeaseGuard guard;
  uint8_t* out = nullptr;
  uint64_t bytes = 0;
};

#ifdef __CUDACC__
// Called first by every kernel that reads the pool: the reuse check launched after it (with
// programmatic dependent launch, reuse_check.h) may be set up while this launch runs, and waits
// for it to complete. A no-op where nothing was launched that way, and before Hopper.
__device__ __forceinline__ void let_reuse_check_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
#endif

// The byte a poisoned output is filled with: 0xFF is NaN in e4m3, bf16 and fp32.
inline constexpr uint8_t kPoisonByte = 0xFF;

// One (request, layer) pair of a decode step. Pointers are device pointers in GPU launches and
// host pointers in the CPU reference.
//   output row i (row_bytes)  <-  entry indices[i] (FlashMLA convention: page x page_tokens + offset within
//   the prefix; -1 = invalid, row left untouched; >= pages x page_tokens = out of range: the
//   row is left untouched and the segment's error flag is raised; nothing outside the prefix
//   is ever read).
struct GatherSegment {
  const uint64_t* page_base = nullptr;  // [pages] byte offsets into the pool
  const int32_t* indices = nullptr;     // [k]
  uint8_t* out = nullptr;               // [k][row_bytes], packed
  uint32_t pages = 0;
  uint32_t layer = 0;
  uint32_t k = 0;
  uint32_t reserved = 0;
  // If set, entry i goes to output row rows[i] instead of row i: an ordered copy of a segment
  // (launch_order_segments) keeps the rows of its original order.
  const uint32_t* rows = nullptr;  // [k]
  // With shape.side_bytes: [pages x page_tokens][side_bytes] of this segment's layer, indexed by
  // the entry's index (GPU memory in GPU launches).
  const uint8_t* side = nullptr;
};

// One request of one layer of the sparse-decode fetch (sparse_fetch.h). Positions p of `topk`:
// -1 none (row untouched), [0, prefix_tokens) the prefix, [prefix_tokens, prefix_tokens +
// tail_tokens) the tail (row p - prefix_tokens of `tail`); anything else is counted as an error
// and its row left untouched.
struct SparseFetchSegment {
  const int32_t* topk = nullptr;      // [k]
  const int32_t* row_of = nullptr;    // [k] hot-buffer rows of the prefix positions; null: no hot buffer
  const uint8_t* hot_rows = nullptr;  // [capacity][row_bytes]
  const uint8_t* tail = nullptr;      // [tail_tokens][row_bytes]
  uint8_t* out = nullptr;             // [k][row_bytes]
  uint32_t prefix_tokens = 0;
  uint32_t tail_tokens = 0;
  uint32_t k = 0;
  uint32_t reserved = 0;
};

// Page base offsets of a leased prefix for one stream: base[p] for p in [0, pages).
inline uint64_t page_base_offset(uint64_t slab_offset, uint64_t stream_offset, uint32_t position, uint32_t page_tokens,
                                 uint32_t stride) {
  return slab_offset + stream_offset + uint64_t{position} * page_tokens * stride;
}

}  // namespace cxlkv::kernels
