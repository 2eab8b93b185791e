// CPU references of the GPU kernels: the definition of what each kernel must produce, byte for
// byte. The Catch2 tests run them on CI (no GPU) and the GPU tests and benchmark compare the
// kernels' output with them. Straightforward loops on purpose; never used on a hot path.
#pragma once

#include <cstdint>
#include <vector>

#include "gather_types.h"

namespace cxlkv::kernels {

// Gathers every segment from `pool` into its out rows. Returns the number of out-of-range
// indices seen (their rows are left untouched, like -1 rows).
uint64_t reference_gather(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments, uint32_t count);

// A run copy: out[i] = pool[src_offset[i], +bytes[i]) packed back to back (bulk stream fetch).
void reference_copy_runs(const uint8_t* pool, const uint64_t* src_offset, const uint32_t* bytes, uint32_t count, uint8_t* out);

// The GPU hot buffer's state for one (request, layer): `capacity` rows of entry_bytes in HBM,
// which prefix token each row holds, when each row was last used, and the inverse map.
// Invariant: slot_of[token_of[r]] == r for every row r with token_of[r] >= 0, and every
// slot_of[t] >= 0 names a row whose token_of is t.
struct HotBufferState {
  uint32_t capacity = 0;
  uint32_t tokens = 0;                 // prefix length: the domain of slot_of
  std::vector<int32_t> slot_of;        // [tokens]: row or -1
  std::vector<int32_t> token_of;       // [capacity]: token or -1
  std::vector<int32_t> last_used;      // [capacity]: step, or -1 if never
  std::vector<uint8_t> rows;           // [capacity][row_bytes] (StreamShape::row_bytes)
  void reset(uint32_t capacity_rows, uint32_t prefix_tokens, uint32_t row_bytes);
};

struct HotStepResult {
  uint32_t hits = 0;
  uint32_t misses = 0;                 // entries fetched from the pool this step
  std::vector<int32_t> row_of;         // [k]: hot-buffer row of each top-k slot, -1 for -1 slots
};

// One decode step of the hot buffer (the algorithm hot_buffer.cu implements):
//  1. each valid index whose token is resident is a hit; its row's last_used becomes `step`;
//  2. the victims are the rows not used this step that were used least recently (last_used
//     ascending, ties by row number), as many as there are misses; the misses, in top-k order,
//     take them in row order, evicting their old tokens;
//  3. each miss's entry is copied from the pool into its row.
// Indices must be unique apart from -1 and capacity >= 2k (so a victim always exists).
HotStepResult reference_hot_step(HotBufferState& state, const uint8_t* pool, const StreamShape& shape,
                                 const GatherSegment& segment, int32_t step);

// The sparse-decode fetch's split (launch_split_prefix): prefix_topk [count][max_k], slot i of
// segment s is its position if that lies in the prefix, else -1. Returns the positions outside
// prefix + tail (and below -1).
uint64_t reference_split_prefix(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k, int32_t* prefix_topk);

// Its assembly (launch_assemble_rows): out row i of each segment becomes tail row p - prefix_tokens
// for tail positions p, and hot row row_of[i] for prefix positions when row_of is set; every
// other row is left as it is.
void reference_assemble_rows(const SparseFetchSegment* segments, uint32_t count, uint32_t row_bytes);

// The reuse check after a launch's reads (launch_check_reuse): per target, its guard's parts'
// counts unchanged since last found good: nothing; else the epochs and every page's slab word
// checked: all as leased, frees_seen raised to the counts; any changed, the target's bytes set to
// kPoisonByte. Returns the targets poisoned. Offsets are from `pool`.
uint32_t reference_check_reuse(const uint8_t* pool, const GuardTarget* targets, uint32_t count);

}  // namespace cxlkv::kernels
