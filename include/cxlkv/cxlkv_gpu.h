/* The C ABI of libcxlkv_gpu: the GPU data path of gpu.h (GpuPool) behind opaque handles, for
 * callers that are not C++ (the Python package's torch path). A thin wrapper over the C++ classes
 * (client/cxlkv_gpu.cc); it adds no behaviour of its own. GPU pointers (indices, outputs, side
 * arrays) are device addresses; `cuda_stream` is a cudaStream_t (NULL: the legacy default stream).
 * Every call is asynchronous on that stream. Return codes and cxlkv_last_error() as in cxlkv.h;
 * a NULL handle or pointer is CXLKV_INVALID_ARGUMENT. Built only where CUDA is. */
#ifndef CXLKV_CXLKV_GPU_H
#define CXLKV_CXLKV_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "cxlkv/cxlkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cxlkv_gpu_pool cxlkv_gpu_pool;
typedef struct cxlkv_gpu_table cxlkv_gpu_table;
typedef struct cxlkv_gpu_hot_buffer cxlkv_gpu_hot_buffer;
typedef struct cxlkv_gpu_sparse_fetcher cxlkv_gpu_sparse_fetcher;

/* gpu.h GpuRowSplice: side_bytes from each item's side array put in at byte side_at of a row. */
typedef struct cxlkv_gpu_splice {
  uint32_t side_bytes;
  uint32_t side_at;
} cxlkv_gpu_splice;

/* gpu.h GpuGatherItem: one (request, layer) of a gather. */
typedef struct cxlkv_gpu_gather_item {
  const cxlkv_gpu_table* table;
  uint32_t layer;
  uint32_t k;
  const int32_t* indices; /* GPU, [k]; -1 skipped (row untouched) */
  void* out;              /* GPU, [k][entry_bytes + side_bytes] */
  const void* side;       /* GPU, [prefix tokens][side_bytes], with a splice; else NULL */
} cxlkv_gpu_gather_item;

/* Registers the client's mapping with CUDA; the client must stay connected while it is attached. */
int cxlkv_gpu_attach(const cxlkv_client* client, cxlkv_gpu_pool** out);
void cxlkv_gpu_detach(cxlkv_gpu_pool* pool);

/* The lease's block table of `stream`, in GPU memory (synchronous). */
int cxlkv_gpu_upload(cxlkv_gpu_pool* pool, const cxlkv_read_lease* lease, int stream, cxlkv_gpu_table** out);
uint32_t cxlkv_gpu_table_pages(const cxlkv_gpu_table* table);
void cxlkv_gpu_table_free(cxlkv_gpu_table* table);

/* Gathers every item in one launch. splice: NULL for rows that are pool entries as they are. */
int cxlkv_gpu_gather_topk(cxlkv_gpu_pool* pool, const cxlkv_gpu_gather_item* items, size_t n, void* cuda_stream,
                          const cxlkv_gpu_splice* splice);
/* Indices past their prefix since the last call (synchronize the stream first); clears the count. */
int cxlkv_gpu_bad_index_count(cxlkv_gpu_pool* pool, uint32_t* out);
/* Outputs poisoned (every byte 0xFF) since the last call because their lease's slabs were freed or
   reused while read (synchronize the stream first); clears the count. Non-zero: look up again. */
int cxlkv_gpu_reused_count(cxlkv_gpu_pool* pool, uint32_t* out);
/* How the reuse check runs (gpu.h GpuPool::ReuseCheck); an unknown mode is CXLKV_INVALID_ARGUMENT. */
enum {
  CXLKV_GPU_REUSE_CHECK_OFF = 0,        /* only to measure what the check costs */
  CXLKV_GPU_REUSE_CHECK_AFTER = 1,      /* a launch after each read */
  CXLKV_GPU_REUSE_CHECK_OVERLAPPED = 2, /* the same, set up while the read runs (the default) */
  CXLKV_GPU_REUSE_CHECK_PER_STEP = 3    /* queued; cxlkv_gpu_check_reads checks them all at once */
};
int cxlkv_gpu_set_reuse_check(cxlkv_gpu_pool* pool, int mode);
/* Per-step mode: the checks queued on cuda_stream, as one launch (gpu.h GpuPool::check_reads). Once
   per decode step, after its last gather; trust the step only where cxlkv_gpu_reused_count then
   reads 0. */
int cxlkv_gpu_check_reads(cxlkv_gpu_pool* pool, void* cuda_stream);
/* The whole `stream` of `layer` for pages [p0, p1) into dst (GPU), packed [tokens][entry_bytes]. */
int cxlkv_gpu_fetch_pages(cxlkv_gpu_pool* pool, const cxlkv_read_lease* lease, int stream, uint32_t layer, uint32_t p0,
                          uint32_t p1, void* dst, void* cuda_stream);

/* A hot buffer over `table` for `layer` (gpu.h make_hot_buffer). splice and side may be NULL. */
int cxlkv_gpu_make_hot_buffer(cxlkv_gpu_pool* pool, const cxlkv_gpu_table* table, uint32_t layer,
                              uint32_t capacity_rows, uint32_t max_k, const cxlkv_gpu_splice* splice,
                              const void* side, cxlkv_gpu_hot_buffer** out);
void cxlkv_gpu_hot_buffer_free(cxlkv_gpu_hot_buffer* buffer);
uint32_t cxlkv_gpu_hot_capacity(const cxlkv_gpu_hot_buffer* buffer);
const void* cxlkv_gpu_hot_rows(const cxlkv_gpu_hot_buffer* buffer);       /* GPU, [capacity][row bytes] */
const int32_t* cxlkv_gpu_hot_row_of(const cxlkv_gpu_hot_buffer* buffer);  /* GPU, [max_k] */
/* One decode step of n buffers in one launch: buffers[i] with indices[i] (GPU, [ks[i]]). */
int cxlkv_gpu_hot_step(cxlkv_gpu_pool* pool, cxlkv_gpu_hot_buffer* const* buffers, const int32_t* const* indices,
                       const uint32_t* ks, size_t n, int32_t step, void* cuda_stream);
/* Hits and misses of the buffer's last step (synchronizes). */
int cxlkv_gpu_hot_last_counts(const cxlkv_gpu_hot_buffer* buffer, uint32_t* hits, uint32_t* misses);

/* gpu.h GpuSparseRequest: one request of a sparse-decode batch; its tail's layer l rows at
 * tail + l x tail_layer_bytes (GPU, [tail_capacity][row bytes]). */
typedef struct cxlkv_gpu_sparse_request {
  const cxlkv_gpu_table* table; /* its prefix's latent stream */
  const void* tail;
  uint64_t tail_layer_bytes;
  uint32_t tail_capacity;
} cxlkv_gpu_sparse_request;

/* The DSA fetch hook of one decode batch (gpu.h GpuSparseFetcher); hot_rows 0: no hot buffers. */
int cxlkv_gpu_sparse_fetcher_create(cxlkv_gpu_pool* pool, const cxlkv_gpu_sparse_request* requests, size_t n,
                                    uint32_t k, uint32_t hot_rows, cxlkv_gpu_sparse_fetcher** out);
void cxlkv_gpu_sparse_fetcher_free(cxlkv_gpu_sparse_fetcher* fetcher);
/* Tokens in each request's tail, n = the batch's requests; used from the next fetch on. */
int cxlkv_gpu_sparse_set_tail_tokens(cxlkv_gpu_sparse_fetcher* fetcher, const uint32_t* tail_tokens, size_t n);
/* One layer of a step: topk (GPU, [requests][k] int32) into out (GPU, [requests][k][row bytes]). */
int cxlkv_gpu_sparse_fetch(cxlkv_gpu_sparse_fetcher* fetcher, uint32_t layer, const int32_t* topk, void* out,
                           void* cuda_stream);
/* Hits and misses of the last step of (request, layer)'s hot buffer (synchronizes). */
int cxlkv_gpu_sparse_hot_counts(const cxlkv_gpu_sparse_fetcher* fetcher, uint32_t request, uint32_t layer,
                                uint32_t* hits, uint32_t* misses);

#ifdef __cplusplus
}
#endif

#endif /* CXLKV_CXLKV_GPU_H */
