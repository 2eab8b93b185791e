// CUDA_OR_DIE(call): for benchmark programs, a CUDA runtime call that must succeed; on failure it
// prints the program, the call and CUDA's message on stderr and exits 1. Used by cxlkv-bench-gpu
// and cxlkv-bench-ttft (never by the library, whose errors are Status values).
#pragma once

#include <cuda_runtime.h>
#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>

namespace cxlkv::testing {

inline void cuda_or_die(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s failed: %s\n", program_invocation_short_name, call, cudaGetErrorString(e));
  std::exit(1);
}

}  // namespace cxlkv::testing

#define CUDA_OR_DIE(call) ::cxlkv::testing::cuda_or_die((call), #call)
