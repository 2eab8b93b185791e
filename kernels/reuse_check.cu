// The reuse check as a launch of its own (reuse_check.h): after a hot step or a page fetch.
#include "reuse_check.h"

#include "reuse_check.cuh"

namespace cxlkv::kernels {
namespace {

constexpr uint32_t kCheckThreads = 128;

// One target: its guard's counts, then (moved) the epochs and every page's word; poisoned whole.
__device__ __forceinline__ void check_target(const uint8_t* pool, const GuardTarget& t) {
  __shared__ uint64_t counts[kMaxGuardParts];
  const LeaseGuard& g = t.guard;
  if (!guard_counts_moved(pool, g, counts)) return;
  if (!guard_pages_changed(pool, g, g.pages, [](uint32_t i) { return i; })) {
    guard_raise_counts(g, counts);
    return;
  }
  poison_bytes(t.out, t.bytes);
  if (threadIdx.x == 0) atomicAdd(g.reused, 1u);
}

__global__ void __launch_bounds__(kCheckThreads) check_targets_kernel(const uint8_t* __restrict__ pool,
                                                                      const GuardTarget* __restrict__ targets) {
  check_target(pool, targets[blockIdx.x]);
}

__global__ void __launch_bounds__(kCheckThreads) check_one_kernel(const uint8_t* __restrict__ pool, GuardTarget target) {
  check_target(pool, target);
}

}  // namespace

cudaError_t launch_check_reuse(const uint8_t* pool, const GuardTarget* targets, uint32_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  check_targets_kernel<<<count, kCheckThreads, 0, stream>>>(pool, targets);
  return cudaGetLastError();
}

cudaError_t launch_check_reuse_one(const uint8_t* pool, const GuardTarget& target, cudaStream_t stream) {
  check_one_kernel<<<1, kCheckThreads, 0, stream>>>(pool, target);
  return cudaGetLastError();
}

}  // namespace cxlkv::kernels
