// The GPU C ABI (cxlkv/cxlkv_gpu.h): opaque handles over GpuPool, GpuBlockTable, GpuHotBuffer and
// GpuSparseFetcher.
#include "cxlkv/cxlkv_gpu.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <memory>
#include <new>
#include <string>
#include <vector>

#include "c_handles.h"
#include "cxlkv/gpu.h"

struct cxlkv_gpu_pool {
  std::unique_ptr<cxlkv::GpuPool> pool;
};
struct cxlkv_gpu_table {
  cxlkv::GpuBlockTable table;
};
struct cxlkv_gpu_hot_buffer {
  std::unique_ptr<cxlkv::GpuHotBuffer> buffer;
};
struct cxlkv_gpu_sparse_fetcher {
  std::unique_ptr<cxlkv::GpuSparseFetcher> fetcher;
};

namespace {

using cxlkv::detail::c_fail;
using cxlkv::detail::c_null_argument;

cxlkv::GpuRowSplice splice_of(const cxlkv_gpu_splice* s) {
  return s ? cxlkv::GpuRowSplice{s->side_bytes, s->side_at} : cxlkv::GpuRowSplice{};
}

cudaStream_t stream_of(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

extern "C" {

int cxlkv_gpu_attach(const cxlkv_client* c, cxlkv_gpu_pool** out) {
  if (!c) return c_null_argument("cxlkv_gpu_attach", "client");
  if (!out) return c_null_argument("cxlkv_gpu_attach", "out");
  auto pool = cxlkv::GpuPool::attach(*c->client);
  if (!pool) return c_fail(pool.status());
  *out = new cxlkv_gpu_pool{std::move(*pool)};
  return CXLKV_OK;
}
void cxlkv_gpu_detach(cxlkv_gpu_pool* pool) { delete pool; }

int cxlkv_gpu_upload(cxlkv_gpu_pool* pool, const cxlkv_read_lease* lease, int stream, cxlkv_gpu_table** out) {
  if (!pool) return c_null_argument("cxlkv_gpu_upload", "pool");
  if (!lease) return c_null_argument("cxlkv_gpu_upload", "lease");
  if (!out) return c_null_argument("cxlkv_gpu_upload", "out");
  auto table = pool->pool->upload(lease->lease, stream);
  if (!table) return c_fail(table.status());
  *out = new cxlkv_gpu_table{std::move(*table)};
  return CXLKV_OK;
}
uint32_t cxlkv_gpu_table_pages(const cxlkv_gpu_table* t) { return t ? t->table.pages() : 0; }
void cxlkv_gpu_table_free(cxlkv_gpu_table* t) { delete t; }

int cxlkv_gpu_gather_topk(cxlkv_gpu_pool* pool, const cxlkv_gpu_gather_item* items, size_t n, void* cuda_stream,
                          const cxlkv_gpu_splice* splice) {
  if (!pool) return c_null_argument("cxlkv_gpu_gather_topk", "pool");
  if (!items && n > 0) return c_null_argument("cxlkv_gpu_gather_topk", "items");
  std::vector<cxlkv::GpuGatherItem> batch(n);
  for (size_t i = 0; i < n; ++i) {
    if (!items[i].table) return c_null_argument("cxlkv_gpu_gather_topk", "items[i].table");
    batch[i] = {&items[i].table->table, items[i].layer, items[i].indices, items[i].k, items[i].out, items[i].side};
  }
  return c_fail(pool->pool->gather_topk(batch, stream_of(cuda_stream), splice_of(splice)));
}

int cxlkv_gpu_bad_index_count(cxlkv_gpu_pool* pool, uint32_t* out) {
  if (!pool) return c_null_argument("cxlkv_gpu_bad_index_count", "pool");
  if (!out) return c_null_argument("cxlkv_gpu_bad_index_count", "out");
  auto n = pool->pool->bad_index_count();
  if (!n) return c_fail(n.status());
  *out = *n;
  return CXLKV_OK;
}

int cxlkv_gpu_reused_count(cxlkv_gpu_pool* pool, uint32_t* out) {
  if (!pool) return c_null_argument("cxlkv_gpu_reused_count", "pool");
  if (!out) return c_null_argument("cxlkv_gpu_reused_count", "out");
  auto n = pool->pool->reused_count();
  if (!n) return c_fail(n.status());
  *out = *n;
  return CXLKV_OK;
}

int cxlkv_gpu_set_reuse_check(cxlkv_gpu_pool* pool, int mode) {
  using Mode = cxlkv::GpuPool::ReuseCheck;
  if (!pool) return c_null_argument("cxlkv_gpu_set_reuse_check", "pool");
  static_assert(CXLKV_GPU_REUSE_CHECK_OFF == int(Mode::kOff) && CXLKV_GPU_REUSE_CHECK_AFTER == int(Mode::kAfter) &&
                CXLKV_GPU_REUSE_CHECK_OVERLAPPED == int(Mode::kOverlapped) &&
                CXLKV_GPU_REUSE_CHECK_PER_STEP == int(Mode::kPerStep));
  if (mode < CXLKV_GPU_REUSE_CHECK_OFF || mode > CXLKV_GPU_REUSE_CHECK_PER_STEP)
    return c_fail(cxlkv::Status(cxlkv::Code::kInvalidArgument,
                                fmt::format("cxlkv_gpu_set_reuse_check: mode {} is none of 0 (off), 1 (after), "
                                            "2 (overlapped), 3 (per step)", mode)));
  pool->pool->set_reuse_check(Mode(mode));
  return CXLKV_OK;
}

int cxlkv_gpu_check_reads(cxlkv_gpu_pool* pool, void* cuda_stream) {
  if (!pool) return c_null_argument("cxlkv_gpu_check_reads", "pool");
  return c_fail(pool->pool->check_reads(stream_of(cuda_stream)));
}

int cxlkv_gpu_fetch_pages(cxlkv_gpu_pool* pool, const cxlkv_read_lease* lease, int stream, uint32_t layer, uint32_t p0,
                          uint32_t p1, void* dst, void* cuda_stream) {
  if (!pool) return c_null_argument("cxlkv_gpu_fetch_pages", "pool");
  if (!lease) return c_null_argument("cxlkv_gpu_fetch_pages", "lease");
  if (!dst) return c_null_argument("cxlkv_gpu_fetch_pages", "dst");
  return c_fail(pool->pool->fetch_pages(lease->lease, stream, layer, p0, p1, dst, stream_of(cuda_stream)));
}

int cxlkv_gpu_make_hot_buffer(cxlkv_gpu_pool* pool, const cxlkv_gpu_table* table, uint32_t layer,
                              uint32_t capacity_rows, uint32_t max_k, const cxlkv_gpu_splice* splice,
                              const void* side, cxlkv_gpu_hot_buffer** out) {
  if (!pool) return c_null_argument("cxlkv_gpu_make_hot_buffer", "pool");
  if (!table) return c_null_argument("cxlkv_gpu_make_hot_buffer", "table");
  if (!out) return c_null_argument("cxlkv_gpu_make_hot_buffer", "out");
  auto buffer = pool->pool->make_hot_buffer(table->table, layer, capacity_rows, max_k, splice_of(splice), side);
  if (!buffer) return c_fail(buffer.status());
  *out = new cxlkv_gpu_hot_buffer{std::move(*buffer)};
  return CXLKV_OK;
}
void cxlkv_gpu_hot_buffer_free(cxlkv_gpu_hot_buffer* b) { delete b; }
uint32_t cxlkv_gpu_hot_capacity(const cxlkv_gpu_hot_buffer* b) { return b ? b->buffer->capacity() : 0; }
const void* cxlkv_gpu_hot_rows(const cxlkv_gpu_hot_buffer* b) { return b ? b->buffer->rows() : nullptr; }
const int32_t* cxlkv_gpu_hot_row_of(const cxlkv_gpu_hot_buffer* b) { return b ? b->buffer->row_of() : nullptr; }

int cxlkv_gpu_hot_step(cxlkv_gpu_pool* pool, cxlkv_gpu_hot_buffer* const* buffers, const int32_t* const* indices,
                       const uint32_t* ks, size_t n, int32_t step, void* cuda_stream) {
  if (!pool) return c_null_argument("cxlkv_gpu_hot_step", "pool");
  if (n > 0 && (!buffers || !indices || !ks)) return c_null_argument("cxlkv_gpu_hot_step", "buffers, indices or ks");
  std::vector<cxlkv::GpuHotStepItem> items(n);
  for (size_t i = 0; i < n; ++i) {
    if (!buffers[i]) return c_null_argument("cxlkv_gpu_hot_step", "buffers[i]");
    items[i] = {buffers[i]->buffer.get(), indices[i], ks[i]};
  }
  return c_fail(pool->pool->hot_step(items, step, stream_of(cuda_stream)));
}

int cxlkv_gpu_hot_last_counts(const cxlkv_gpu_hot_buffer* b, uint32_t* hits, uint32_t* misses) {
  if (!b) return c_null_argument("cxlkv_gpu_hot_last_counts", "buffer");
  auto counts = b->buffer->last_step_counts();
  if (!counts) return c_fail(counts.status());
  if (hits) *hits = counts->first;
  if (misses) *misses = counts->second;
  return CXLKV_OK;
}

int cxlkv_gpu_sparse_fetcher_create(cxlkv_gpu_pool* pool, const cxlkv_gpu_sparse_request* requests, size_t n,
                                    uint32_t k, uint32_t hot_rows, cxlkv_gpu_sparse_fetcher** out) {
  if (!pool) return c_null_argument("cxlkv_gpu_sparse_fetcher_create", "pool");
  if (!requests && n > 0) return c_null_argument("cxlkv_gpu_sparse_fetcher_create", "requests");
  if (!out) return c_null_argument("cxlkv_gpu_sparse_fetcher_create", "out");
  std::vector<cxlkv::GpuSparseRequest> batch(n);
  for (size_t i = 0; i < n; ++i) {
    if (!requests[i].table) return c_null_argument("cxlkv_gpu_sparse_fetcher_create", "requests[i].table");
    batch[i] = {&requests[i].table->table, requests[i].tail, requests[i].tail_layer_bytes, requests[i].tail_capacity};
  }
  auto fetcher = cxlkv::GpuSparseFetcher::create(*pool->pool, batch, k, hot_rows);
  if (!fetcher) return c_fail(fetcher.status());
  *out = new cxlkv_gpu_sparse_fetcher{std::move(*fetcher)};
  return CXLKV_OK;
}
void cxlkv_gpu_sparse_fetcher_free(cxlkv_gpu_sparse_fetcher* f) { delete f; }

int cxlkv_gpu_sparse_set_tail_tokens(cxlkv_gpu_sparse_fetcher* f, const uint32_t* tail_tokens, size_t n) {
  if (!f) return c_null_argument("cxlkv_gpu_sparse_set_tail_tokens", "fetcher");
  if (!tail_tokens && n > 0) return c_null_argument("cxlkv_gpu_sparse_set_tail_tokens", "tail_tokens");
  return c_fail(f->fetcher->set_tail_tokens({tail_tokens, n}));
}

int cxlkv_gpu_sparse_fetch(cxlkv_gpu_sparse_fetcher* f, uint32_t layer, const int32_t* topk, void* out,
                           void* cuda_stream) {
  if (!f) return c_null_argument("cxlkv_gpu_sparse_fetch", "fetcher");
  return c_fail(f->fetcher->fetch(layer, topk, out, stream_of(cuda_stream)));
}

int cxlkv_gpu_sparse_hot_counts(const cxlkv_gpu_sparse_fetcher* f, uint32_t request, uint32_t layer, uint32_t* hits,
                                uint32_t* misses) {
  if (!f) return c_null_argument("cxlkv_gpu_sparse_hot_counts", "fetcher");
  const cxlkv::GpuHotBuffer* b = f->fetcher->hot_buffer(request, layer);
  if (!b)
    return c_fail(cxlkv::Status(cxlkv::Code::kInvalidArgument,
                                "cxlkv_gpu_sparse_hot_counts: no hot buffer for request " + std::to_string(request) +
                                    ", layer " + std::to_string(layer)));
  auto counts = b->last_step_counts();
  if (!counts) return c_fail(counts.status());
  if (hits) *hits = counts->first;
  if (misses) *misses = counts->second;
  return CXLKV_OK;
}

}  // extern "C"
