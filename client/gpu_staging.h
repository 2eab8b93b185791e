// Private to libcxlkv_gpu (gpu.cc, gpu_sparse_fetch.cc): CUDA errors as Status, and the pinned
// staging of a launch's descriptors.
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::gpu_detail {

inline Status cuda_error(const char* what, cudaError_t err) {
  return Status(Code::kIoError, fmt::format("{}: {}", what, cudaGetErrorString(err)));
}

// Descriptors for one launch go host (pinned) -> GPU through one of its slots (two by default); a
// slot is reused only after the launch that last read it has finished (the event retire() records
// after it), so a caller may launch step after step, on one stream or several, without
// synchronizing. A slot's GPU buffer may carry scratch for that launch after the descriptors.
class DescriptorStaging {
 public:
  // `slots` launches may be queued ahead of the GPU before a stage waits for the oldest.
  explicit DescriptorStaging(size_t slots = 2) : slots_(slots) {}
  ~DescriptorStaging() {
    for (auto& s : slots_) {
      if (s.event) cudaEventDestroy(s.event);
      cudaFreeHost(s.host);
      cudaFree(s.device);
    }
  }
  static constexpr size_t scratch_offset(size_t bytes) { return (bytes + 255) / 256 * 256; }

  // Returns the GPU copy of `data`; scratch_offset(bytes) past it lie `device_extra` bytes that
  // belong to this launch alone.
  Result<void*> stage(const void* data, size_t bytes, cudaStream_t stream, size_t device_extra = 0) {
    auto slot = take_slot(data, bytes);
    if (!slot) return slot.status();
    Slot& s = **slot;
    if (Status st = grow(&s.device, s.device_capacity, scratch_offset(bytes) + device_extra,
                         [](void** p, size_t n) { return cudaMalloc(p, n); }, cudaFree, "descriptor buffer");
        !st)
      return st;
    if (cudaError_t e = cudaMemcpyAsync(s.device, s.host, bytes, cudaMemcpyHostToDevice, stream); e != cudaSuccess)
      return cuda_error("descriptor upload", e);
    return s.device;
  }

  // The pinned host copy of `data`, which the GPU reads over the link (no upload): for a few
  // words read once. Retire it as a staged slot.
  Result<void*> stage_host(const void* data, size_t bytes) {
    auto slot = take_slot(data, bytes);
    if (!slot) return slot.status();
    return (*slot)->host;
  }

  // Called after the launch that reads the last staged slot has been enqueued on `stream`.
  Status retire(cudaStream_t stream) {
    if (cudaError_t e = cudaEventRecord(slots_[last_].event, stream); e != cudaSuccess) return cuda_error("descriptor event", e);
    return Status::ok();
  }

 private:
  struct Slot;
  // The next slot, once the launch that last read it has finished, holding a copy of `data`.
  Result<Slot*> take_slot(const void* data, size_t bytes) {
    Slot& s = slots_[next_];
    last_ = next_;
    next_ = (next_ + 1) % slots_.size();
    if (s.event) {
      if (cudaError_t e = cudaEventSynchronize(s.event); e != cudaSuccess) return cuda_error("descriptor slot wait", e);
    } else if (cudaError_t e = cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming); e != cudaSuccess) {
      return cuda_error("descriptor event", e);
    }
    if (Status st = grow(&s.host, s.host_capacity, bytes, [](void** p, size_t n) { return cudaMallocHost(p, n); },
                         cudaFreeHost, "descriptor staging");
        !st)
      return st;
    std::memcpy(s.host, data, bytes);
    return &s;
  }

  // Replaces *buffer by one of at least `need` bytes (64 KiB at least) where it is smaller.
  template <typename Alloc, typename Free>
  static Status grow(void** buffer, size_t& capacity, size_t need, Alloc alloc, Free release, const char* what) {
    if (need <= capacity) return Status::ok();
    release(*buffer);
    *buffer = nullptr, capacity = 0;
    const size_t cap = std::max<size_t>(need, 64 << 10);
    if (cudaError_t e = alloc(buffer, cap); e != cudaSuccess) return cuda_error(what, e);
    capacity = cap;
    return Status::ok();
  }

  struct Slot {
    void* host = nullptr;
    void* device = nullptr;
    size_t host_capacity = 0, device_capacity = 0;
    cudaEvent_t event = nullptr;
  };
  std::vector<Slot> slots_;
  size_t next_ = 0, last_ = 0;
};

}  // namespace cxlkv::gpu_detail
