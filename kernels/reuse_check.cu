// The reuse check (reuse_check.h), launched after a gather, a hot step or a page fetch. The
// helpers are block-wide: every thread of the block calls them.
#include "reuse_check.h"

namespace cxlkv::kernels {
namespace {

// A word of the pool as it is in memory now, not from any cache of the GPU.
__device__ __forceinline__ uint64_t load_now(const uint8_t* pool, uint64_t offset) {
  return __ldcv(reinterpret_cast<const unsigned long long*>(pool + offset));
}

// Whether any part's slab-free count moved since the guard's pages were last found good; counts
// (shared, kMaxGuardParts) receives the counts read. The reads checked are an earlier launch's
// on the stream, so they have completed.
__device__ __forceinline__ bool guard_counts_moved(const uint8_t* pool, const LeaseGuard& g, uint64_t* counts) {
  int moved = 0;
  for (uint32_t p = threadIdx.x; p < g.parts; p += blockDim.x) {
    counts[p] = load_now(pool, g.frees_offset[p]);
    moved |= counts[p] != __ldcg(reinterpret_cast<const unsigned long long*>(g.frees_seen + p));
  }
  return __syncthreads_or(moved);
}

// The slow path, after guard_counts_moved: whether a part's daemon restarted (epoch) or a page's
// slab word is not as leased.
__device__ __forceinline__ bool guard_pages_changed(const uint8_t* pool, const LeaseGuard& g) {
  int changed = 0;
  __threadfence_system();  // the counts before the words (written by CPUs): a count raised below is one they held at
  for (uint32_t p = threadIdx.x; p < g.parts; p += blockDim.x)
    changed |= g.epoch_offset[p] != kNoEpoch && load_now(pool, g.epoch_offset[p]) != g.epoch[p];
  for (uint32_t i = threadIdx.x; i < g.pages; i += blockDim.x)
    changed |= load_now(pool, g.word_offset[i]) != g.word_expected[i];
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

constexpr uint32_t kCheckThreads = 128;

// Under programmatic dependent launch: until the read launch before this one has completed and
// its memory operations are visible. A no-op for a plain launch (and before Hopper).
__device__ __forceinline__ void wait_for_reads() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Whether the guard's slabs were freed or reused since it was last found good: its counts, then
// (moved) the epochs and every page's word; found as leased, later checks start from the counts.
__device__ __forceinline__ bool guard_found_reused(const uint8_t* pool, const LeaseGuard& g) {
  __shared__ uint64_t counts[kMaxGuardParts];
  if (!guard_counts_moved(pool, g, counts)) return false;
  if (guard_pages_changed(pool, g)) return true;
  guard_raise_counts(g, counts);
  return false;
}

// One target: poisoned whole and counted where its guard finds reuse.
__device__ __forceinline__ void check_target(const uint8_t* pool, const GuardTarget& t) {
  wait_for_reads();
  if (!guard_found_reused(pool, t.guard)) return;
  poison_bytes(t.out, t.bytes);
  if (threadIdx.x == 0) atomicAdd(t.guard.reused, 1u);
}

__global__ void __launch_bounds__(kCheckThreads) check_targets_kernel(const uint8_t* __restrict__ pool,
                                                                      const GuardTarget* __restrict__ targets) {
  check_target(pool, targets[blockIdx.x]);
}

__global__ void __launch_bounds__(kCheckThreads) check_one_kernel(const uint8_t* __restrict__ pool, GuardTarget target) {
  check_target(pool, target);
}

// Block b: the targets [starts[b], starts[b + 1]), which share one guard, checked by one look at it.
__global__ void __launch_bounds__(kCheckThreads) check_groups_kernel(const uint8_t* __restrict__ pool,
                                                                     const GuardTarget* __restrict__ targets,
                                                                     const uint32_t* __restrict__ starts) {
  const uint32_t first = starts[blockIdx.x], end = starts[blockIdx.x + 1];
  if (!guard_found_reused(pool, targets[first].guard)) return;
  for (uint32_t t = first; t < end; ++t) poison_bytes(targets[t].out, targets[t].bytes);
  if (threadIdx.x == 0) atomicAdd(targets[first].guard.reused, end - first);
}

// `grid` blocks of kernel(args...) on the stream; overlapped: with programmatic stream
// serialization, and plainly where that is refused (the error it left is cleared first).
template <typename... Params, typename... Args>
cudaError_t launch_check(void (*kernel)(Params...), uint32_t grid, cudaStream_t stream, bool overlapped, Args... args) {
  if (overlapped) {
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(grid);
    config.blockDim = dim3(kCheckThreads);
    config.stream = stream;
    config.attrs = &attribute;
    config.numAttrs = 1;
    if (cudaLaunchKernelEx(&config, kernel, args...) == cudaSuccess) return cudaSuccess;
    (void)cudaGetLastError();
  }
  kernel<<<grid, kCheckThreads, 0, stream>>>(args...);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_check_reuse(const uint8_t* pool, const GuardTarget* targets, uint32_t count, cudaStream_t stream,
                               bool overlapped) {
  if (count == 0) return cudaSuccess;
  return launch_check(check_targets_kernel, count, stream, overlapped, pool, targets);
}

cudaError_t launch_check_reuse_one(const uint8_t* pool, const GuardTarget& target, cudaStream_t stream,
                                   bool overlapped) {
  return launch_check(check_one_kernel, 1, stream, overlapped, pool, target);
}

cudaError_t launch_check_reuse_grouped(const uint8_t* pool, const GuardTarget* targets, const uint32_t* starts,
                                       uint32_t groups, cudaStream_t stream) {
  if (groups == 0) return cudaSuccess;
  return launch_check(check_groups_kernel, groups, stream, false, pool, targets, starts);
}

}  // namespace cxlkv::kernels
