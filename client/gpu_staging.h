// Private to libcxlkv_gpu (gpu.cc, gpu_sparse_fetch.cc): CUDA errors as Status, and the pinned
// staging of a launch's descriptors.
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "cxlkv/status.h"

namespace cxlkv::gpu_detail {

inline Status cuda_error(const char* what, cudaError_t err) {
  return Status(Code::kIoError, fmt::format("{}: {}", what, cudaGetErrorString(err)));
}

// Descriptors for one launch go host (pinned) -> GPU through one of two slots; a slot is reused
// only after the launch that last read it has finished (the event retire() records after it), so
// a caller may launch step after step, on one stream or several, without synchronizing. A slot's
// GPU buffer may carry scratch for that launch after the descriptors.
class DescriptorStaging {
 public:
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
    Slot& s = slots_[next_];
    last_ = next_;
    next_ ^= 1;
    if (s.event) {
      if (cudaError_t e = cudaEventSynchronize(s.event); e != cudaSuccess) return cuda_error("descriptor slot wait", e);
    } else if (cudaError_t e = cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming); e != cudaSuccess) {
      return cuda_error("descriptor event", e);
    }
    if (bytes > s.host_capacity) {
      cudaFreeHost(s.host);
      s.host = nullptr, s.host_capacity = 0;
      const size_t cap = std::max<size_t>(bytes, 64 << 10);
      if (cudaError_t e = cudaMallocHost(&s.host, cap); e != cudaSuccess) return cuda_error("descriptor staging", e);
      s.host_capacity = cap;
    }
    const size_t device_bytes = scratch_offset(bytes) + device_extra;
    if (device_bytes > s.device_capacity) {
      cudaFree(s.device);
      s.device = nullptr, s.device_capacity = 0;
      const size_t cap = std::max<size_t>(device_bytes, 64 << 10);
      if (cudaError_t e = cudaMalloc(&s.device, cap); e != cudaSuccess) return cuda_error("descriptor buffer", e);
      s.device_capacity = cap;
    }
    std::memcpy(s.host, data, bytes);
    if (cudaError_t e = cudaMemcpyAsync(s.device, s.host, bytes, cudaMemcpyHostToDevice, stream); e != cudaSuccess)
      return cuda_error("descriptor upload", e);
    return s.device;
  }

  // Called after the launch that reads the last staged slot has been enqueued on `stream`.
  Status retire(cudaStream_t stream) {
    if (cudaError_t e = cudaEventRecord(slots_[last_].event, stream); e != cudaSuccess) return cuda_error("descriptor event", e);
    return Status::ok();
  }

 private:
  struct Slot {
    void* host = nullptr;
    void* device = nullptr;
    size_t host_capacity = 0, device_capacity = 0;
    cudaEvent_t event = nullptr;
  };
  Slot slots_[2];
  int next_ = 0, last_ = 0;
};

}  // namespace cxlkv::gpu_detail
