// gpu_region.h
#include "gpu_region.h"

#include <cuda_runtime.h>

#include <string>

namespace cxlkv::kernels {

Result<std::unique_ptr<GpuRegistration>> GpuRegistration::register_range(uint8_t* base, size_t bytes) {
  cudaError_t err = cudaHostRegister(base, bytes, cudaHostRegisterMapped | cudaHostRegisterPortable);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // not left for the next launch's check to report as its own
    return Status(Code::kIoError, std::string("cudaHostRegister of ") + std::to_string(bytes) + " bytes: " + cudaGetErrorString(err));
  }
  void* dev = nullptr;
  err = cudaHostGetDevicePointer(&dev, base, 0);
  if (err != cudaSuccess) {
    cudaHostUnregister(base);
    (void)cudaGetLastError();
    return Status(Code::kIoError, std::string("cudaHostGetDevicePointer: ") + cudaGetErrorString(err));
  }
  return std::unique_ptr<GpuRegistration>(new GpuRegistration(base, static_cast<uint8_t*>(dev), bytes));
}

GpuRegistration::~GpuRegistration() {
  // A mapping already gone (its session ended first) may fail to unregister: clear the error, so
  // the next launch's check does not read it as its own.
  if (cudaHostUnregister(host_) != cudaSuccess) (void)cudaGetLastError();
}

bool gpu_available(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    if (why) *why = err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device";
    return false;
  }
  return true;
}

}  // namespace cxlkv::kernels
