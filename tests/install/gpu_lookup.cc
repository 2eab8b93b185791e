// Built against an installed libcxlkv_gpu with `pkg-config --cflags --libs cxlkv-gpu` only
// (install_test.sh, where CUDA is built): connects to the daemon at argv[1], writes and commits one
// page, looks it up; then, where a CUDA device is present, registers the mapping, gathers one
// entry into GPU memory and checks its bytes against the CPU gather. Exit 0 when all that held.
#include <cuda_runtime_api.h>
#include <cxlkv/client.h>
#include <cxlkv/gpu.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int fail(const char* what, const cxlkv::Status& status) {
  std::fprintf(stderr, "gpu_lookup.cc: %s: %s\n", what, status.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ENDPOINT\n", argv[0]);
    return 2;
  }
  cxlkv::ClientOptions options;
  options.endpoint = argv[1];
  options.tenant = "install";
  options.token = "install-token";
  options.model = "install-gpu";
  auto client = cxlkv::Client::connect(options);
  if (!client.is_ok()) return fail("connect", client.status());
  cxlkv::Client& c = **client;

  std::vector<int32_t> tokens(c.page_tokens());
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<int32_t>(3000 + t);
  std::vector<cxlkv::PageKey> keys = c.page_keys(tokens);
  auto lease = c.reserve(cxlkv::PageKey{}, keys);
  if (!lease.is_ok()) return fail("reserve", lease.status());
  const cxlkv::Layout& layout = c.layout();
  for (int s = 0; s < layout.stream_count(); ++s) {
    std::vector<unsigned char> run(size_t{layout.stream(s).entry_bytes} * tokens.size());
    for (uint32_t l = 0; l < layout.layers(); ++l) {
      for (size_t i = 0; i < run.size(); ++i) run[i] = static_cast<unsigned char>(i * 5 + l + s);
      auto st = c.write_entries(*lease, 0, s, l, run.data(), c.page_tokens());
      if (!st.is_ok()) return fail("write_entries", st);
    }
  }
  auto committed = c.commit(*lease);
  if (!committed.is_ok()) return fail("commit", committed.status());
  auto read = c.lookup(keys);
  if (!read.is_ok()) return fail("lookup", read.status());
  if (read->pages() != 1) {
    std::fprintf(stderr, "gpu_lookup.cc: lookup found %u pages, 1 expected\n", read->pages());
    return 1;
  }

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gpu_lookup.cc: built and linked against cxlkv-gpu; lookup done; no CUDA device, "
                "so the GPU gather was not run\n");
    return 0;
  }
  auto gpu = cxlkv::GpuPool::attach(c);
  if (!gpu.is_ok()) return fail("GpuPool::attach", gpu.status());
  const int latent = layout.find_stream("latent");
  auto table = (*gpu)->upload(*read, latent);
  if (!table.is_ok()) return fail("upload", table.status());
  const uint32_t bytes = layout.stream(latent).entry_bytes;
  const int32_t index = 7;
  int32_t* d_index = nullptr;
  void* d_row = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&d_index), sizeof index) != cudaSuccess || cudaMalloc(&d_row, bytes) != cudaSuccess) {
    std::fprintf(stderr, "gpu_lookup.cc: cudaMalloc failed\n");
    return 1;
  }
  cudaMemcpy(d_index, &index, sizeof index, cudaMemcpyHostToDevice);
  cxlkv::GpuGatherItem item;
  item.table = &*table;
  item.layer = 1;
  item.indices = d_index;
  item.k = 1;
  item.out = d_row;
  auto st = (*gpu)->gather_topk(std::span<const cxlkv::GpuGatherItem>(&item, 1), nullptr);
  if (!st.is_ok()) return fail("gather_topk", st);
  std::vector<unsigned char> gpu_row(bytes), cpu_row(bytes);
  if (cudaMemcpy(gpu_row.data(), d_row, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
    std::fprintf(stderr, "gpu_lookup.cc: copy back failed\n");
    return 1;
  }
  st = read->gather_topk(latent, 1, &index, 1, cpu_row.data());
  if (!st.is_ok()) return fail("CPU gather_topk", st);
  if (std::memcmp(gpu_row.data(), cpu_row.data(), bytes) != 0) {
    std::fprintf(stderr, "gpu_lookup.cc: the GPU gather differs from the CPU gather\n");
    return 1;
  }
  cudaFree(d_index);
  cudaFree(d_row);
  std::printf("gpu_lookup.cc: 1 page written, found, gathered into GPU memory and checked\n");
  return 0;
}
