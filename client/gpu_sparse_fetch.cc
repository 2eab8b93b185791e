// GpuSparseFetcher (cxlkv/gpu.h): the DSA fetch hook. Per layer call: split the top-k positions
// into the prefix's (kernels/sparse_fetch.h), fetch those from the pool (hot step or gather,
// GpuPool's own launches), then put the hot rows and the tail rows in place (assemble).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <vector>

#include "cxlkv/gpu.h"
#include "gpu_staging.h"
#include "hot_buffer.h"
#include "sparse_fetch.h"

namespace cxlkv {

struct GpuSparseFetcher::Impl {
  GpuPool* pool = nullptr;
  std::vector<GpuSparseRequest> requests;
  std::vector<uint32_t> tail_tokens;
  std::vector<std::unique_ptr<GpuHotBuffer>> hot;  // [layer][request], empty without hot buffers
  std::vector<int32_t> hot_steps;                  // per layer: the step of its next hot_step
  uint32_t k = 0, row_bytes = 0, layers = 0, page_tokens = 0;
  uint32_t* bad_positions = nullptr;               // the pool's counter
  // Per call, reused: the descriptors, the hot step and gather items.
  std::vector<kernels::SparseFetchSegment> segments;
  std::vector<GpuHotStepItem> hot_items;
  std::vector<GpuGatherItem> gather_items;
  gpu_detail::DescriptorStaging staging;
};

GpuSparseFetcher::GpuSparseFetcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuSparseFetcher::~GpuSparseFetcher() = default;
uint32_t GpuSparseFetcher::requests() const { return uint32_t(impl_->requests.size()); }
uint32_t GpuSparseFetcher::k() const { return impl_->k; }
uint32_t GpuSparseFetcher::row_bytes() const { return impl_->row_bytes; }

const GpuHotBuffer* GpuSparseFetcher::hot_buffer(uint32_t request, uint32_t layer) const {
  if (impl_->hot.empty() || request >= requests() || layer >= impl_->layers) return nullptr;
  return impl_->hot[size_t{layer} * requests() + request].get();
}

Result<std::unique_ptr<GpuSparseFetcher>> GpuSparseFetcher::create(GpuPool& pool,
                                                                   std::span<const GpuSparseRequest> requests,
                                                                   uint32_t k, uint32_t hot_rows) {
  const PoolView& v = pool.impl_view();
  if (requests.empty() || k == 0)
    return Status(Code::kInvalidArgument, fmt::format("sparse fetcher: {} requests, k {}: need at least one of each",
                                                      requests.size(), k));
  const int stream = requests[0].table ? requests[0].table->stream() : -1;
  for (size_t r = 0; r < requests.size(); ++r) {
    const GpuSparseRequest& q = requests[r];
    if (!q.table || q.table->stream() != stream || (q.tail_capacity && !q.tail))
      return Status(Code::kInvalidArgument, fmt::format("sparse fetcher: request {} has no block table, one of another "
                                                        "stream than request 0's, or a tail capacity of {} rows and no "
                                                        "tail", r, q.tail_capacity));
  }
  auto impl = std::make_unique<Impl>();
  impl->pool = &pool;
  impl->requests.assign(requests.begin(), requests.end());
  impl->tail_tokens.assign(requests.size(), 0);
  impl->k = k;
  impl->row_bytes = v.streams[stream].entry_bytes;
  impl->layers = v.layers;
  impl->page_tokens = v.page_tokens;
  impl->bad_positions = pool.impl_bad_indices();
  if (impl->row_bytes % 16)
    return Status(Code::kInvalidArgument,
                  fmt::format("sparse fetcher: rows of {} B: the row copies need a multiple of 16", impl->row_bytes));
  for (size_t r = 0; r < requests.size(); ++r)
    if (requests[r].tail_capacity && requests[r].tail_layer_bytes < uint64_t{requests[r].tail_capacity} * impl->row_bytes)
      return Status(Code::kInvalidArgument,
                    fmt::format("sparse fetcher: request {}: {} B between layers of its tail hold fewer than its {} "
                                "rows of {} B", r, requests[r].tail_layer_bytes, requests[r].tail_capacity,
                                impl->row_bytes));
  if (hot_rows) {
    impl->hot.reserve(size_t{v.layers} * requests.size());
    for (uint32_t l = 0; l < v.layers; ++l)
      for (const GpuSparseRequest& q : requests) {
        auto b = pool.make_hot_buffer(*q.table, l, hot_rows, k);
        if (!b) return b.status();
        impl->hot.push_back(std::move(*b));
      }
    impl->hot_steps.assign(v.layers, 0);
  }
  return std::unique_ptr<GpuSparseFetcher>(new GpuSparseFetcher(std::move(impl)));
}

Status GpuSparseFetcher::set_tail_tokens(std::span<const uint32_t> tail_tokens) {
  Impl& m = *impl_;
  if (tail_tokens.size() != m.requests.size())
    return Status(Code::kInvalidArgument, fmt::format("set_tail_tokens: {} counts for {} requests", tail_tokens.size(),
                                                      m.requests.size()));
  for (size_t r = 0; r < tail_tokens.size(); ++r)
    if (tail_tokens[r] > m.requests[r].tail_capacity)
      return Status(Code::kInvalidArgument, fmt::format("set_tail_tokens: request {}: {} tokens in a tail of {} rows", r,
                                                        tail_tokens[r], m.requests[r].tail_capacity));
  m.tail_tokens.assign(tail_tokens.begin(), tail_tokens.end());
  return Status::ok();
}

// HOT: per call, host work is one pass over the requests; no allocation once the vectors are sized.
Status GpuSparseFetcher::fetch(uint32_t layer, const int32_t* topk, void* out, cudaStream_t stream) {
  Impl& m = *impl_;
  if (layer >= m.layers || !topk || !out)
    return Status(Code::kInvalidArgument, fmt::format("sparse fetch: layer {} of {}, top-k {}, out {}", layer, m.layers,
                                                      topk ? "set" : "null", out ? "set" : "null"));
  const size_t n = m.requests.size();
  const bool hot = !m.hot.empty();
  auto* out_rows = static_cast<uint8_t*>(out);
  m.segments.resize(n);
  for (size_t r = 0; r < n; ++r) {
    const GpuSparseRequest& q = m.requests[r];
    kernels::SparseFetchSegment& s = m.segments[r];
    s = {};
    s.topk = topk + r * m.k;
    s.out = out_rows + r * m.k * m.row_bytes;
    s.tail = static_cast<const uint8_t*>(q.tail) + (q.tail ? layer * q.tail_layer_bytes : 0);
    s.prefix_tokens = q.table->pages() * m.page_tokens;
    s.tail_tokens = m.tail_tokens[r];
    s.k = m.k;
    if (hot) {
      const GpuHotBuffer& b = *m.hot[size_t{layer} * n + r];
      s.row_of = b.row_of();
      s.hot_rows = b.rows();
    }
  }
  // The prefix positions live in this launch's own scratch after the descriptors.
  const size_t desc_bytes = n * sizeof(kernels::SparseFetchSegment);
  auto dev = m.staging.stage(m.segments.data(), desc_bytes, stream, n * m.k * sizeof(int32_t));
  if (!dev) return dev.status();
  auto* prefix_topk = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(*dev) +
                                                 gpu_detail::DescriptorStaging::scratch_offset(desc_bytes));
  auto* dev_segments = static_cast<const kernels::SparseFetchSegment*>(*dev);
  cudaError_t e = kernels::launch_split_prefix(dev_segments, uint32_t(n), m.k, prefix_topk, m.bad_positions, stream);
  Status fetched = Status::ok();
  if (e == cudaSuccess && hot) {
    m.hot_items.resize(n);
    for (size_t r = 0; r < n; ++r) m.hot_items[r] = {m.hot[size_t{layer} * n + r].get(), prefix_topk + r * m.k, m.k};
    fetched = m.pool->hot_step(m.hot_items, m.hot_steps[layer]++, stream);
  } else if (e == cudaSuccess) {
    m.gather_items.resize(n);
    for (size_t r = 0; r < n; ++r)
      m.gather_items[r] = {m.requests[r].table, layer, prefix_topk + r * m.k, m.k, m.segments[r].out, nullptr};
    fetched = m.pool->gather_topk(m.gather_items, stream);
  }
  if (e == cudaSuccess && fetched.is_ok()) e = kernels::launch_assemble_rows(dev_segments, uint32_t(n), m.k, m.row_bytes, stream);
  if (Status st = m.staging.retire(stream); !st.is_ok()) return st;
  if (!fetched.is_ok()) return fetched;
  if (e != cudaSuccess) return gpu_detail::cuda_error("sparse fetch launch", e);
  return Status::ok();
}

}  // namespace cxlkv
