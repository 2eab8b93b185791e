// GpuPool: the GPU data path of libcxlkv. Registers a Client's mapping of the region with CUDA
// once (host-mapped: the GPU loads straight from the pool) and unregisters it when destroyed;
// uploads a lease's block table to the GPU; gathers the top-k entries of a batch of (lease,
// layer) pairs into packed GPU buffers in one launch, and fetches whole page ranges of a stream.
// Decode workers call it; the kernels live in kernels/. Built only where CUDA is (libcxlkv_gpu).
// Every call is asynchronous on the caller's stream: record an event after a gather and make the
// attention kernel's stream wait on it, so the next layer's fetch overlaps this layer's compute.
// Reads that detect reuse: after every gather, hot step and page fetch, the same stream checks
// on the GPU that the leases' slabs were not freed or reused while they were read (a lease that
// ran out, or a daemon restart); where one was, the launch's output for it is poisoned (every
// byte 0xFF: NaN in e4m3, bf16 and fp32) and counted (reused_count), never left as data. (A lease
// made without a session, over a bare region in tests, has no count to check by: not checked.)
// Or once per decode step (set_reuse_check(kPerStep), then check_reads): the cheaper form, which
// leaves the caller to read reused_count() before it trusts the step.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cxlkv/client.h"
#include "cxlkv/read_lease.h"
#include "cxlkv/status.h"

namespace cxlkv {

class GpuPool;
class GpuSparseFetcher;

// One stream's block table of a lease, in GPU memory: page p's first entry of layer 0, and the
// lease's reuse guard (its slabs' words and slab-free counts as the GPU checks them).
class GpuBlockTable {
 public:
  GpuBlockTable() = default;
  GpuBlockTable(GpuBlockTable&& other) noexcept { *this = std::move(other); }
  GpuBlockTable& operator=(GpuBlockTable&& other) noexcept;
  ~GpuBlockTable();
  uint32_t pages() const { return pages_; }
  int stream() const { return stream_; }
  const uint64_t* device_page_base() const { return page_base_; }

 private:
  friend class GpuPool;
  uint64_t* page_base_ = nullptr;  // [pages], GPU memory
  uint32_t pages_ = 0;
  int stream_ = 0;
  uint64_t* guard_ = nullptr;      // GPU memory: the reuse guard's words (gpu.cc, guard_layout)
  uint32_t guard_parts_ = 0;       // the mappings the lease's pages lie in; 0: no guard
};

// One (request, layer) of a decode step: indices and out are GPU pointers.
struct GpuGatherItem {
  const GpuBlockTable* table = nullptr;
  uint32_t layer = 0;
  const int32_t* indices = nullptr;  // [k], FlashMLA convention; -1 skipped (row untouched)
  uint32_t k = 0;
  void* out = nullptr;               // [k][row bytes], packed (row bytes: entry_bytes + splice.side_bytes)
  // With a GpuRowSplice: this layer's side bytes, [prefix tokens][side_bytes] in GPU memory.
  const void* side = nullptr;
};

// Split rows, for layouts that keep part of an entry in a stream of its own ("deepseek-v3.2-split":
// the 16 B of scales apart from the 640 B of NoPE + RoPE, so a scattered entry is five whole
// 128 B lines on the link instead of six). The caller fetches the side stream of each layer
// whole (fetch_pages, e.g. with the indexer keys at admission); the gather then writes each row
// as the pool entry with side_bytes from the item's `side` put in at byte side_at: FlashMLA's
// 656 B row. side_bytes = 0: rows are the pool entries as they are.
struct GpuRowSplice {
  uint32_t side_bytes = 0;
  uint32_t side_at = 0;  // <= entry_bytes
  bool operator==(const GpuRowSplice&) const = default;
};

// A GPU hot buffer for one (request, layer): `capacity` rows of latent entries in HBM kept across
// decode steps (kernels/hot_buffer.h has the algorithm; the CPU reference defines the result).
// After GpuPool::hot_step, row_of()[i] is the row holding top-k slot i's entry (-1 for -1 slots),
// and rows() is the [capacity][row bytes] cache that FlashMLA's sparse decode reads with those
// row numbers as its indices.
class GpuHotBuffer {
 public:
  ~GpuHotBuffer();
  GpuHotBuffer(const GpuHotBuffer&) = delete;
  GpuHotBuffer& operator=(const GpuHotBuffer&) = delete;
  uint32_t capacity() const;
  uint32_t max_k() const;
  const uint8_t* rows() const;       // GPU memory
  const int32_t* row_of() const;     // GPU memory, [max_k]
  // Hits and misses (entries fetched from the pool) of the last step; synchronizes.
  Result<std::pair<uint32_t, uint32_t>> last_step_counts() const;

 private:
  friend class GpuPool;
  struct State;
  explicit GpuHotBuffer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// One hot buffer's step: its top-k indices (GPU memory, [k], unique apart from -1).
struct GpuHotStepItem {
  GpuHotBuffer* buffer = nullptr;
  const int32_t* indices = nullptr;
  uint32_t k = 0;
};

class GpuPool {
 public:
  // Registers the client's mapping (it must outlive the GpuPool).
  static Result<std::unique_ptr<GpuPool>> attach(const Client& client);
  ~GpuPool();
  GpuPool(const GpuPool&) = delete;
  GpuPool& operator=(const GpuPool&) = delete;

  // Copies the lease's block table for `stream` and its reuse guard to the GPU (once per lease;
  // synchronous); a lease whose slabs were already freed or reused is refused (kExpired). A lease
  // over several nodes of a cluster, or of another session, works too: each mapping its pages lie
  // in is registered with the device at the first upload or fetch that needs it (slow once:
  // cudaHostRegister pins the mapping) and dropped after its session ends. Keep the lease while
  // the table is in use.
  Result<GpuBlockTable> upload(const ReadLease& lease, int stream);

  // Gathers every item in one launch on `stream`. All items must use tables of one stream.
  // Indices past an item's prefix are never read; their rows stay untouched and they are
  // counted: bad_index_count() reads (and clears) the count after the stream is synchronized.
  // With a splice, every item must carry `side`; side_bytes and side_at multiples of 16.
  Status gather_topk(std::span<const GpuGatherItem> items, cudaStream_t stream, GpuRowSplice splice = {});
  Result<uint32_t> bad_index_count();
  // Outputs poisoned because their lease's slabs were freed or reused while a launch read them
  // (per gather item, hot-step item or page fetch), since the last call; read (and cleared)
  // after the stream is synchronized. Non-zero: look the prefix up again.
  Result<uint32_t> reused_count();
  // How the reuse check runs after each gather and hot step: overlapped (the default: its launch
  // is set up while the read still runs, by programmatic dependent launch on Hopper and later, a
  // plain launch elsewhere), after (a plain launch after the read), per step (below), or off
  // (only to measure what it costs). A page fetch's check is a plain launch in every mode but off.
  // Per step: gathers and hot steps only queue their checks (per stream), and check_reads(stream)
  // launches all of them as one check with one block per lease, not per output: once per decode
  // step, after its last gather, instead of once per layer (docs/performance.md: what each
  // costs). The rows are then checked when the step ends, not before attention reads them: a
  // reused slab's rows are still poisoned and counted, but the step's result (its sampled tokens)
  // must be trusted only after the stream is synchronized and reused_count() read 0. Keep every
  // block table and hot buffer a queued check names until check_reads has been called. A stream
  // that queues more than 16,384 outputs has them checked by the gather that passes the mark.
  enum class ReuseCheck : uint8_t { kOff, kAfter, kOverlapped, kPerStep };
  void set_reuse_check(ReuseCheck mode);
  void set_reuse_check(bool on) { set_reuse_check(on ? ReuseCheck::kOverlapped : ReuseCheck::kOff); }
  // Launches the checks queued on `stream` (per-step mode) as one check on it; none queued: no
  // launch. Asynchronous, as the reads are.
  Status check_reads(cudaStream_t stream);

  // How fetch_pages moves its runs (the pages adjacent in one slab): SM loads (one kernel, best
  // for short runs) or the copy engines (one cudaMemcpyBatchAsync, best for long ones: with E = 8
  // an indexer run is 66 KiB and the copy engines reach the link's rate; docs/performance.md).
  // Auto takes the copy engines for runs of 32 KiB and more on average, except on the legacy
  // default stream, which batched copies do not take, and falls back to SM loads where the
  // runtime refuses them. Forced copy engines: kInvalidArgument on the legacy stream,
  // kUnavailable where the runtime has no batched copy (before CUDA 13) or refuses it.
  enum class FetchEngine { kAuto, kSmLoads, kCopyEngines };

  // Copies the whole `stream` of `layer` for pages [p0, p1) into dst (GPU memory), packed
  // [(p1 - p0) x page_tokens][entry_bytes] (the indexer keys of a page range), in one launch or
  // one batched copy (`engine`, below).
  Status fetch_pages(const ReadLease& lease, int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst,
                     cudaStream_t cuda_stream, FetchEngine engine = FetchEngine::kAuto);

  // A hot buffer over `table` (the latent stream's) for `layer`, with capacity_rows >= 2 x max_k
  // (at most 8192 rows, max_k at most 4096). With a splice, its rows are split rows (see
  // GpuRowSplice) and `side` is the layer's side array, [prefix tokens][side_bytes] in GPU memory.
  Result<std::unique_ptr<GpuHotBuffer>> make_hot_buffer(const GpuBlockTable& table, uint32_t layer,
                                                       uint32_t capacity_rows, uint32_t max_k,
                                                       GpuRowSplice splice = {}, const void* side = nullptr);
  // One decode step of every item, in one launch: hits keep their rows, misses take the least
  // recently used rows and are fetched from the pool. `step` must grow by one each call. All
  // items' buffers share one stream and one splice.
  Status hot_step(std::span<const GpuHotStepItem> items, int32_t step, cudaStream_t stream);

  const uint8_t* device_pool() const;

 private:
  friend class GpuSparseFetcher;  // reads the pool's view, counts its bad positions with the pool's
  const PoolView& impl_view() const;
  uint32_t* impl_bad_indices() const;
  // Per page of the lease: where it starts on the device, from device_pool(); and the reuse guard
  // of its pages [p0, p1) (gpu.cc).
  struct LeaseOnDevice;
  Result<LeaseOnDevice> map_lease(const ReadLease& lease, const char* what, uint32_t p0, uint32_t p1);
  // fetch_pages' runs [src, +bytes) -> dst + dst_off by the SM-loads kernel.
  Status copy_runs_by_sm_loads(const std::vector<uint64_t>& src, const std::vector<uint32_t>& bytes,
                               const std::vector<uint64_t>& dst_off, uint8_t* dst, cudaStream_t cuda_stream);
  struct Impl;
  explicit GpuPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One request of a sparse-decode batch: its cached prefix (the block table of its read lease's
// latent stream) and its tail, the rows of the tokens decoded since in the caller's GPU memory,
// layer l's at tail + l x tail_layer_bytes, [tail_capacity][row bytes] each.
struct GpuSparseRequest {
  const GpuBlockTable* table = nullptr;
  const void* tail = nullptr;
  uint64_t tail_layer_bytes = 0;
  uint32_t tail_capacity = 0;
};

// The DSA fetch hook of one decode batch. Per layer of a step, the engine's top-k positions of
// every request ([requests][k] int32, FlashMLA's convention: position in the request's sequence,
// -1 none) become FlashMLA's packed sparse-decode rows ([requests][k][row bytes], row i for
// position i): positions in the prefix from the pool, through a hot buffer per (request, layer)
// when hot_rows > 0 (else gathered each step), positions in the tail from the caller's rows. One
// call queues it all on the caller's stream (3 launches); rows of -1 positions are left
// untouched, positions past prefix + tail too, and counted (GpuPool::bad_index_count). Scratch
// is per launch, so calls may go on several streams; each layer's calls must be ordered.
class GpuSparseFetcher {
 public:
  // Top-k positions of each (request, layer) must be unique apart from -1 (the engine's top-k).
  // hot_rows: 0, or >= 2k and <= 8192 rows per (request, layer). The tables must outlive it.
  static Result<std::unique_ptr<GpuSparseFetcher>> create(GpuPool& pool, std::span<const GpuSparseRequest> requests,
                                                          uint32_t k, uint32_t hot_rows);
  ~GpuSparseFetcher();
  GpuSparseFetcher(const GpuSparseFetcher&) = delete;
  GpuSparseFetcher& operator=(const GpuSparseFetcher&) = delete;

  // Tokens in each request's tail (<= its capacity), used from the next fetch on.
  Status set_tail_tokens(std::span<const uint32_t> tail_tokens);
  // HOT. One layer of a step: topk and out in GPU memory, as above.
  Status fetch(uint32_t layer, const int32_t* topk, void* out, cudaStream_t stream);

  uint32_t requests() const;
  uint32_t k() const;
  uint32_t row_bytes() const;
  // The hot buffer of (request, layer), null without hot buffers.
  const GpuHotBuffer* hot_buffer(uint32_t request, uint32_t layer) const;

 private:
  struct Impl;
  explicit GpuSparseFetcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
