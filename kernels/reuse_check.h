// The GPU's own check that a read lease's slabs were not freed or reused while a launch read them
// (docs/hardening.md, "Reads that detect reuse"): the seqlock-style check of ReadLease::
// check_reuse, run on the GPU right after the reads on the same stream, so a caller never needs
// to synchronize and ask before the rows are used. Rows read from a reused slab are poisoned
// (every byte 0xFF: NaN in e4m3, bf16 and fp32) and counted, never left looking like data.
// Launched by the client's GPU path (client/gpu.cc) after each gather, hot step and page fetch
// (one block per output), or once per decode step over all of them (one block per
// lease). The CPU reference is reference_check_reuse (reference.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gather_types.h"  // LeaseGuard, GuardTarget

namespace cxlkv::kernels {

// One block per target: reads each part's slab-free count from the pool; all unchanged since the
// guard's pages were last found good: done (one load per part). Else checks every part's epoch
// and every page's slab word; all as leased: raises frees_seen to the counts read; any changed:
// poisons the target's bytes and adds one to guard.reused. `targets` in GPU memory; the guards'
// arrays in memory the GPU reads (GPU memory, or pinned host memory for a guard that does not
// keep its counts).
// overlapped: launched with programmatic dependent launch (Hopper on): the check's launch is set
// up while the read launch before it on the stream runs, and its blocks wait for that launch to
// complete and its stores to be visible before reading anything, so the check starts when the
// reads end instead of a launch later. Only after a kernel of this folder (they allow it first
// thing); where the GPU or driver refuses the attribute, a plain launch. false: a plain launch.
cudaError_t launch_check_reuse(const uint8_t* pool, const GuardTarget* targets, uint32_t count, cudaStream_t stream,
                               bool overlapped = false);
// One block per group of targets that share a guard (the targets sorted by guard, group g being
// targets [starts[g], starts[g + 1]), `starts` in GPU memory): each guard looked at once, all its
// targets poisoned and counted where it finds reuse. For the check of a whole decode step
// (GpuPool::check_reads), where a lease is read by every layer: a block per lease, not per output.
// A plain launch.
cudaError_t launch_check_reuse_grouped(const uint8_t* pool, const GuardTarget* targets, const uint32_t* starts,
                                       uint32_t groups, cudaStream_t stream);
// The same for one target passed by value (no descriptor to upload).
cudaError_t launch_check_reuse_one(const uint8_t* pool, const GuardTarget& target, cudaStream_t stream,
                                   bool overlapped = false);

}  // namespace cxlkv::kernels
