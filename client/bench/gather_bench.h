// The CPU gather benchmark (gather_bench.cc) and its options; called by client_bench.cc.
#pragma once

#include <cstdint>
#include <string>

namespace cxlkv::bench {

struct GatherBenchOptions {
  // The deepseek-v3.2 streams over 4 layers: the same entries and strides as the preset, with
  // a region small enough for a shared machine (a 128K prefix of all 61 layers takes 6.3 GB).
  std::string layout = "custom:name=dsv32-4l,layers=4,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";
  uint32_t slab_pages = 1;
  std::string stream = "latent";
  uint64_t prefix_tokens = 131072;
  int k = 2048;
  int rounds = 100;
  // Calls of each block of a round: the layers, this many times (longer blocks for many threads).
  uint32_t repeats = 1;
  // Threads that split every call's entries (gather) and bytes (memcpy) evenly.
  uint32_t threads = 1;
  // "shm", or a file path for the file backend: on a hugetlbfs mount the region is backed by
  // 2 MiB pages, as a devdax device is.
  std::string backing = "shm";
};

int run_gather_bench(const GatherBenchOptions& options);

}  // namespace cxlkv::bench
