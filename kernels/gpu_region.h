// GpuRegistration: a region's mapping registered with CUDA as host-mapped memory, so kernels
// load from it directly (what a CXL region mapped on the host is to the GPU). Owned by the
// client's GPU path and the GPU benchmark; unregisters on destruction. The only place in
// cxlkv that calls cudaHostRegister.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cxlkv/status.h"

namespace cxlkv::kernels {

class GpuRegistration {
 public:
  // Registers [base, base + bytes) (host-mapped, portable) and returns the device view.
  static Result<std::unique_ptr<GpuRegistration>> register_range(uint8_t* base, size_t bytes);
  ~GpuRegistration();
  GpuRegistration(const GpuRegistration&) = delete;
  GpuRegistration& operator=(const GpuRegistration&) = delete;

  uint8_t* host() const { return host_; }
  const uint8_t* device() const { return device_; }
  size_t bytes() const { return bytes_; }

 private:
  GpuRegistration(uint8_t* host, uint8_t* device, size_t bytes) : host_(host), device_(device), bytes_(bytes) {}
  uint8_t* host_;
  uint8_t* device_;
  size_t bytes_;
};

// True when a CUDA device is present and usable; `why` says why not.
bool gpu_available(std::string* why);

}  // namespace cxlkv::kernels
