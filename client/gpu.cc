// GpuPool (cxlkv/gpu.h): registration, block-table upload and the launch of the gather kernels
// with their descriptors staged through pinned memory.
#include "cxlkv/gpu.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gather.h"
#include "gpu_region.h"
#include "gpu_staging.h"
#include "hot_buffer.h"
#include "reuse_check.h"
#include "slab_allocator.h"

namespace cxlkv {
namespace {

using gpu_detail::cuda_error;
using gpu_detail::DescriptorStaging;

// The kernels' view of one stream of the pool, with a splice's side bytes.
kernels::StreamShape shape_of(const PoolView& v, int stream, GpuRowSplice splice) {
  const auto& st = v.streams[stream];
  return {st.entry_bytes, st.stride, st.layer_step, v.page_tokens, v.page_shift, splice.side_bytes, splice.side_at};
}

// A reuse guard in one block of words (GPU memory in a table, a host copy while it is built):
// [frees_seen, frees_offset, epoch_offset, epoch] x parts, then [word_offset, word_expected] x pages.
size_t guard_words(uint32_t parts, uint32_t pages) { return size_t{parts} * 4 + size_t{pages} * 2; }

kernels::LeaseGuard guard_layout(uint64_t* words, uint32_t parts, uint32_t pages, uint32_t* reused) {
  kernels::LeaseGuard g;
  g.reused = reused;
  g.frees_seen = words;
  g.frees_offset = words + parts;
  g.epoch_offset = words + size_t{parts} * 2;
  g.epoch = words + size_t{parts} * 3;
  g.word_offset = words + size_t{parts} * 4;
  g.word_expected = g.word_offset + pages;
  g.parts = parts;
  g.pages = pages;
  return g;
}

// The check's descriptors after a launch's own: `head` bytes, then the targets, in `blob`.
void pack_with_targets(const void* head, size_t head_bytes, const std::vector<kernels::GuardTarget>& targets,
                       std::vector<uint8_t>& blob) {
  blob.resize(head_bytes + targets.size() * sizeof(kernels::GuardTarget));
  std::memcpy(blob.data(), head, head_bytes);
  if (!targets.empty()) std::memcpy(blob.data() + head_bytes, targets.data(), targets.size() * sizeof(kernels::GuardTarget));
}

// A launch's check targets where its check is queued (per-step mode), not sent with it.
const std::vector<kernels::GuardTarget> kNoTargets;

// A GPU counter's value, set back to zero (the stream that counts must be synchronized).
Result<uint32_t> read_and_clear(uint32_t* counter, const char* what) {
  uint32_t n = 0;
  if (cudaError_t e = cudaMemcpy(&n, counter, sizeof n, cudaMemcpyDeviceToHost); e != cudaSuccess) return cuda_error(what, e);
  if (cudaError_t e = cudaMemset(counter, 0, sizeof n); e != cudaSuccess) return cuda_error(what, e);
  return n;
}

}  // namespace

struct GpuHotBuffer::State {
  kernels::HotSegment segment;  // device pointers; gather.indices is set per step
  const GpuBlockTable* table = nullptr;
  uint32_t max_k = 0;
  GpuRowSplice splice;
  std::vector<void*> owned;
  ~State() {
    for (void* p : owned) cudaFree(p);
  }
};

GpuHotBuffer::GpuHotBuffer(std::unique_ptr<State> state) : state_(std::move(state)) {}
GpuHotBuffer::~GpuHotBuffer() = default;
uint32_t GpuHotBuffer::capacity() const { return state_->segment.capacity; }
uint32_t GpuHotBuffer::max_k() const { return state_->max_k; }
const uint8_t* GpuHotBuffer::rows() const { return state_->segment.rows; }
const int32_t* GpuHotBuffer::row_of() const { return state_->segment.row_of; }

Result<std::pair<uint32_t, uint32_t>> GpuHotBuffer::last_step_counts() const {
  uint32_t counts[2] = {0, 0};
  if (cudaError_t e = cudaMemcpy(counts, state_->segment.hits, sizeof counts, cudaMemcpyDeviceToHost); e != cudaSuccess)
    return cuda_error("hot buffer counts", e);
  return std::pair<uint32_t, uint32_t>{counts[0], counts[1]};
}

struct GpuPool::Impl {
  PoolView view;
  std::unique_ptr<kernels::GpuRegistration> registration;  // the client's own mapping
  // Other mappings the kernels read through (another node's of a cluster lease, or another
  // session's), registered at the first upload or fetch that needs them and dropped at the first
  // one after their session ended (its mapping gone with it).
  struct OtherMapping {
    std::weak_ptr<detail::Session> session;
    std::unique_ptr<kernels::GpuRegistration> registration;
  };
  std::vector<OtherMapping> others;
  uint32_t* bad_indices = nullptr;  // GPU counter
  uint32_t* reused = nullptr;       // GPU counter: outputs poisoned by the reuse check
  ReuseCheck reuse_check = ReuseCheck::kOverlapped;
  DescriptorStaging segments, runs, hot;
  // A page fetch's guard lives in pinned memory until its check ran: enough slots that a worker
  // queueing every layer's fetches of a batch (61 layers x a few requests) seldom waits.
  DescriptorStaging fetch_guards{64};
  std::vector<kernels::HotSegment> hot_scratch;
  std::vector<kernels::GatherSegment> segment_scratch;
  std::vector<kernels::GuardTarget> guard_scratch;
  std::vector<uint8_t> run_scratch;
  // Per-step mode: each stream's checks queued since its last check_reads.
  struct QueuedChecks {
    cudaStream_t stream = nullptr;
    std::vector<kernels::GuardTarget> targets;
  };
  std::vector<QueuedChecks> queued;
  std::vector<uint32_t> group_starts;  // check_reads' scratch
  std::vector<kernels::GuardTarget>& queue_of(cudaStream_t stream) {
    for (QueuedChecks& q : queued)
      if (q.stream == stream) return q.targets;
    return queued.emplace_back(QueuedChecks{stream, {}}).targets;
  }
  // After a launch of reads on `stream` whose check's targets are `targets`: per-step mode
  // queues them; true where the stream's queue passed the mark and must be checked now.
  bool queue_checks(const std::vector<kernels::GuardTarget>& targets, cudaStream_t stream);
  ~Impl() {
    cudaFree(bad_indices);
    cudaFree(reused);
  }
};

GpuBlockTable& GpuBlockTable::operator=(GpuBlockTable&& other) noexcept {
  std::swap(page_base_, other.page_base_);
  std::swap(pages_, other.pages_);
  std::swap(stream_, other.stream_);
  std::swap(guard_, other.guard_);
  std::swap(guard_parts_, other.guard_parts_);
  return *this;
}

GpuBlockTable::~GpuBlockTable() {
  cudaFree(page_base_);
  cudaFree(guard_);
}

GpuPool::GpuPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuPool::~GpuPool() = default;

Result<std::unique_ptr<GpuPool>> GpuPool::attach(const Client& client) {
  std::string why;
  if (!kernels::gpu_available(&why)) return Status(Code::kUnavailable, "no CUDA device: " + why);
  auto impl = std::make_unique<Impl>();
  impl->view = client.view();
  auto reg = kernels::GpuRegistration::register_range(impl->view.base, impl->view.region_bytes);
  if (!reg) return reg.status();
  impl->registration = std::move(*reg);
  for (uint32_t** counter : {&impl->bad_indices, &impl->reused}) {
    if (cudaError_t e = cudaMalloc(counter, sizeof(uint32_t)); e != cudaSuccess) return cuda_error("counter", e);
    if (cudaError_t e = cudaMemset(*counter, 0, sizeof(uint32_t)); e != cudaSuccess) return cuda_error("counter", e);
  }
  return std::unique_ptr<GpuPool>(new GpuPool(std::move(impl)));
}

const uint8_t* GpuPool::device_pool() const { return impl_->registration->device(); }
const PoolView& GpuPool::impl_view() const { return impl_->view; }
uint32_t* GpuPool::impl_bad_indices() const { return impl_->bad_indices; }

struct GpuPool::LeaseOnDevice {
  std::vector<uint64_t> page_offset;  // [pages]: where each page's slab starts, from device_pool()
  std::vector<uint64_t> guard;        // the guard of pages [p0, p1), guard_layout; empty: none
  uint32_t guard_parts = 0;
};

// Where each page of a lease starts on the device, as an offset from device_pool() (modulo 2^64:
// another mapping's device view may lie below it): every mapping the lease's pages lie in
// registered with the device, the client's own at attach and the others' here. A lease with no
// session (made over a bare region) must be of this pool's own mapping, and has no reuse guard.
// The guard: per mapping (a part), its slab-free count and epoch where the device reads them and
// the lease's values; per page in [p0, p1), its slab word and the word it was leased at.
Result<GpuPool::LeaseOnDevice> GpuPool::map_lease(const ReadLease& lease, const char* what, uint32_t p0, uint32_t p1) {
  struct Device {
    uintptr_t host;
    uint64_t bytes;
    uintptr_t device;
    const ReadLease::Mapping* mapping;  // null: the lease has no session
  };
  const PoolView& v = impl_->view;
  std::vector<Device> devices;
  const auto own = Device{uintptr_t(v.base), v.region_bytes, uintptr_t(device_pool()), nullptr};
  const auto mappings = lease.mappings();
  if (mappings.empty()) {
    if (lease.view().base != v.base)
      return Status(Code::kInvalidArgument, fmt::format("{}: the lease is of another client's mapping and holds no "
                                                        "session to keep it mapped", what));
    devices.push_back(own);
  }
  auto& others = impl_->others;
  std::erase_if(others, [](const Impl::OtherMapping& m) { return m.session.expired(); });
  for (const ReadLease::Mapping& m : mappings) {
    if (m.view->base == v.base) {
      devices.push_back({own.host, own.bytes, own.device, &m});
      continue;
    }
    // The kernels address every page with this pool's shape: a mapping of another shape
    // (another daemon's layout or E) would be read wrong, or past its end.
    if (!same_page_shape(*m.view, v))
      return Status(Code::kMismatch, fmt::format("{}: a node of the lease serves another layout or E ({} layers, E = {}) "
                                                 "than this pool's ({} layers, E = {})", what, m.view->layers,
                                                 m.view->slab_pages, v.layers, v.slab_pages));
    auto it = std::find_if(others.begin(), others.end(), [&](const Impl::OtherMapping& o) {
      return o.session.lock() == m.session && o.registration->host() == m.view->base;
    });
    if (it == others.end()) {
      auto reg = kernels::GpuRegistration::register_range(m.view->base, m.view->region_bytes);
      if (!reg) return Status(reg.status().code(), fmt::format("{}: registering a node's mapping ({} bytes) with the "
                                                               "device: {}", what, m.view->region_bytes,
                                                               reg.status().message()));
      others.push_back({m.session, std::move(*reg)});
      it = others.end() - 1;
    }
    devices.push_back({uintptr_t(it->registration->host()), it->registration->bytes(),
                       uintptr_t(it->registration->device()), &m});
  }
  // A host address inside device d, as the kernels address it.
  auto device_offset = [&](const Device& d, uintptr_t host) { return uint64_t(d.device + (host - d.host) - own.device); };
  LeaseOnDevice out;
  out.page_offset.resize(lease.pages());
  std::vector<uint32_t> page_device(lease.pages());
  const uintptr_t lease_base = uintptr_t(lease.view().base);
  for (uint32_t p = 0; p < lease.pages(); ++p) {
    const uintptr_t host = lease_base + lease.placement(p).slab_offset;  // wraps: see ReadLease::placement
    auto d = std::find_if(devices.begin(), devices.end(), [&](const Device& x) {
      return x.bytes >= v.slab_bytes && host - x.host <= x.bytes - v.slab_bytes;  // the whole slab inside
    });
    if (d == devices.end())
      return Status(Code::kCorrupt, fmt::format("{}: page {} of the lease lies in none of its {} mapping(s)", what, p,
                                                devices.size()));
    out.page_offset[p] = device_offset(*d, host);
    page_device[p] = uint32_t(d - devices.begin());
  }
  if (devices.size() > kernels::kMaxGuardParts)
    return Status(Code::kUnavailable, fmt::format("{}: the lease lies in {} mappings; the GPU's reuse check covers at "
                                                  "most {}", what, devices.size(), kernels::kMaxGuardParts));
  // A lease made over a bare region (tests) has no session, and no count to check by.
  if (mappings.empty()) return out;
  for (const Device& d : devices)
    if (d.mapping->view->slab_frees == nullptr || d.mapping->view->slab_words == nullptr) return out;
  const uint32_t parts = uint32_t(devices.size()), pages = p1 - p0;
  out.guard_parts = parts;
  out.guard.resize(guard_words(parts, pages));
  const kernels::LeaseGuard g = guard_layout(out.guard.data(), parts, pages, nullptr);
  auto* frees_offset = const_cast<uint64_t*>(g.frees_offset);
  auto* epoch_offset = const_cast<uint64_t*>(g.epoch_offset);
  auto* epoch = const_cast<uint64_t*>(g.epoch);
  auto* word_offset = const_cast<uint64_t*>(g.word_offset);
  auto* word_expected = const_cast<uint64_t*>(g.word_expected);
  for (uint32_t i = 0; i < parts; ++i) {
    const ReadLease::Mapping& m = *devices[i].mapping;
    g.frees_seen[i] = m.frees_seen;
    frees_offset[i] = device_offset(devices[i], uintptr_t(m.view->slab_frees));
    epoch_offset[i] = m.view->serving_epoch ? device_offset(devices[i], uintptr_t(m.view->serving_epoch)) : kernels::kNoEpoch;
    epoch[i] = m.epoch;
  }
  for (uint32_t p = p0; p < p1; ++p) {
    const Device& d = devices[page_device[p]];
    const Placement& pl = lease.placement(p);
    word_offset[p - p0] = device_offset(d, uintptr_t(d.mapping->view->slab_words + pl.slab));
    word_expected[p - p0] = slab_word(pl.generation, SlabState::kInUse);
  }
  return out;
}

Result<GpuBlockTable> GpuPool::upload(const ReadLease& lease, int stream) {
  const PoolView& v = impl_->view;
  if (uint32_t(stream) >= v.stream_count)
    return Status(Code::kInvalidArgument, fmt::format("upload: stream {} of {}", stream, v.stream_count));
  // Pages already freed or reused are refused here; the guard starts from counts found good.
  if (Status st = lease.check_reuse(); !st) return st;
  auto mapped = map_lease(lease, "upload", 0, lease.pages());
  if (!mapped) return mapped.status();
  const auto& s = v.streams[stream];
  std::vector<uint64_t> base(lease.pages());
  for (uint32_t p = 0; p < lease.pages(); ++p) {
    const Placement& pl = lease.placement(p);
    base[p] = mapped->page_offset[p] + s.offset + uint64_t{pl.position} * v.page_tokens * s.stride;
  }
  GpuBlockTable t;
  t.pages_ = lease.pages();
  t.stream_ = stream;
  if (cudaError_t e = cudaMalloc(&t.page_base_, std::max<size_t>(1, base.size()) * 8); e != cudaSuccess)
    return cuda_error("block table", e);
  if (!base.empty())
    if (cudaError_t e = cudaMemcpy(t.page_base_, base.data(), base.size() * 8, cudaMemcpyHostToDevice); e != cudaSuccess)
      return cuda_error("block table upload", e);
  if (!mapped->guard.empty()) {
    const size_t bytes = mapped->guard.size() * 8;
    if (cudaError_t e = cudaMalloc(&t.guard_, bytes); e != cudaSuccess) return cuda_error("reuse guard", e);
    if (cudaError_t e = cudaMemcpy(t.guard_, mapped->guard.data(), bytes, cudaMemcpyHostToDevice); e != cudaSuccess)
      return cuda_error("reuse guard upload", e);
    t.guard_parts_ = mapped->guard_parts;
  }
  return t;
}

Result<uint32_t> GpuPool::reused_count() { return read_and_clear(impl_->reused, "reused count"); }

void GpuPool::set_reuse_check(ReuseCheck mode) { impl_->reuse_check = mode; }

namespace {
// Outputs a stream may queue for its per-step check before a gather checks them itself: a
// decode step of 61 layers queues batch x 61 (x2 with hot buffers), so 16,384 is a batch of 134.
constexpr size_t kMaxQueuedChecks = 16384;
}  // namespace

bool GpuPool::Impl::queue_checks(const std::vector<kernels::GuardTarget>& targets, cudaStream_t stream) {
  if (reuse_check != ReuseCheck::kPerStep || targets.empty()) return false;
  auto& queue = queue_of(stream);
  queue.insert(queue.end(), targets.begin(), targets.end());
  return queue.size() >= kMaxQueuedChecks;
}

Status GpuPool::check_reads(cudaStream_t stream) {
  auto& targets = impl_->queue_of(stream);
  if (targets.empty()) return Status::ok();
  // A block per guard (a lease's table, read by every layer of the step): the targets sorted by
  // it, each group's first index in `starts`.
  std::stable_sort(targets.begin(), targets.end(), [](const kernels::GuardTarget& a, const kernels::GuardTarget& b) {
    return std::less<>{}(a.guard.frees_seen, b.guard.frees_seen);
  });
  auto& starts = impl_->group_starts;
  starts.clear();
  for (size_t i = 0; i < targets.size(); ++i)
    if (i == 0 || targets[i].guard.frees_seen != targets[i - 1].guard.frees_seen) starts.push_back(uint32_t(i));
  starts.push_back(uint32_t(targets.size()));
  const size_t target_bytes = targets.size() * sizeof(kernels::GuardTarget);
  auto& blob = impl_->run_scratch;
  blob.resize(target_bytes + starts.size() * sizeof(uint32_t));
  std::memcpy(blob.data(), targets.data(), target_bytes);
  std::memcpy(blob.data() + target_bytes, starts.data(), starts.size() * sizeof(uint32_t));
  targets.clear();
  auto dev = impl_->segments.stage(blob.data(), blob.size(), stream);
  if (!dev) return dev.status();
  auto* base = static_cast<uint8_t*>(*dev);
  const cudaError_t e = kernels::launch_check_reuse_grouped(device_pool(), reinterpret_cast<const kernels::GuardTarget*>(base),
                                                            reinterpret_cast<const uint32_t*>(base + target_bytes),
                                                            uint32_t(starts.size() - 1), stream);
  if (Status r = impl_->segments.retire(stream); !r.is_ok()) return r;
  if (e != cudaSuccess) return cuda_error("check_reads launch", e);
  return Status::ok();
}

Status GpuPool::gather_topk(std::span<const GpuGatherItem> items, cudaStream_t stream, GpuRowSplice splice) {
  if (items.empty()) return Status::ok();
  const PoolView& v = impl_->view;
  const int s = items[0].table ? items[0].table->stream() : -1;
  if (s < 0) return Status(Code::kInvalidArgument, "gather_topk: item 0 has no block table");
  const kernels::StreamShape shape = shape_of(v, s, splice);
  if (splice.side_bytes && !shape.aligned_to(16))
    return Status(Code::kInvalidArgument,
                  fmt::format("gather_topk: splice of {} B at byte {} of {} B entries (stride {}): all must be multiples "
                              "of 16 and the place within the entry", splice.side_bytes, splice.side_at, shape.entry_bytes,
                              shape.stride));
  auto& segs = impl_->segment_scratch;
  segs.resize(items.size());
  uint32_t max_k = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const GpuGatherItem& it = items[i];
    if (!it.table || it.table->stream() != s || it.layer >= v.layers ||
        (it.k && (!it.indices || !it.out || (splice.side_bytes && !it.side))))
      return Status(Code::kInvalidArgument,
                    fmt::format("gather_topk: item {} (layer {}, k {}) has no table, another stream, a layer past {} "
                                "or null buffers (indices, out, and side with a splice)", i, it.layer, it.k, v.layers));
    segs[i] = kernels::GatherSegment{it.table->device_page_base(), it.indices, static_cast<uint8_t*>(it.out),
                                     it.table->pages(), it.layer, it.k, 0};
    if (splice.side_bytes) segs[i].side = static_cast<const uint8_t*>(it.side);
    max_k = std::max(max_k, it.k);
  }
  // Up to kMaxOrderedK entries per item, each item's indices are first put in page order on the
  // GPU and the blocks interleave over the items: the entries read at once then lie in a narrow
  // window of the pool (docs/performance.md: 0.64x -> 0.83x of bulk for 61 layers in a launch).
  const uint32_t count = uint32_t(segs.size());
  const bool ordered = max_k <= kernels::kMaxOrderedK;
  // The reuse check's targets (one per item that read a guarded lease) travel with the segments.
  auto& targets = impl_->guard_scratch;
  targets.clear();
  for (const GpuGatherItem& it : items)
    if (impl_->reuse_check != ReuseCheck::kOff && it.k && it.table->guard_parts_)
      targets.push_back({guard_layout(it.table->guard_, it.table->guard_parts_, it.table->pages(), impl_->reused),
                         static_cast<uint8_t*>(it.out), uint64_t{it.k} * shape.row_bytes()});
  const bool per_step = impl_->reuse_check == ReuseCheck::kPerStep;
  const size_t seg_bytes = segs.size() * sizeof(segs[0]);
  auto& blob = impl_->run_scratch;
  pack_with_targets(segs.data(), seg_bytes, per_step ? kNoTargets : targets, blob);
  const size_t desc_bytes = blob.size();
  const size_t order_bytes = ordered ? size_t{count} * (sizeof(kernels::GatherSegment) + size_t{max_k} * 8) : 0;
  auto dev = impl_->segments.stage(blob.data(), desc_bytes, stream, order_bytes);
  if (!dev) return dev.status();
  const auto* launch_segs = static_cast<const kernels::GatherSegment*>(*dev);
  kernels::GatherTuning tuning;
  cudaError_t e = cudaSuccess;
  if (ordered) {
    auto* scratch = static_cast<uint8_t*>(*dev) + DescriptorStaging::scratch_offset(desc_bytes);
    kernels::GatherOrderScratch order;
    order.segments = reinterpret_cast<kernels::GatherSegment*>(scratch);
    order.indices = reinterpret_cast<int32_t*>(scratch + size_t{count} * sizeof(kernels::GatherSegment));
    order.rows = reinterpret_cast<uint32_t*>(order.indices + size_t{count} * max_k);
    e = kernels::launch_order_segments(launch_segs, count, max_k, order, stream);
    launch_segs = order.segments;
    tuning = kernels::kOrderedGatherTuning;
  }
  if (e == cudaSuccess)
    e = kernels::launch_gather_topk(device_pool(), shape, launch_segs, count, max_k, impl_->bad_indices, tuning, stream);
  // Right after the gather on its stream: the reads are done, no caller has used the rows yet.
  if (e == cudaSuccess && !per_step)
    e = kernels::launch_check_reuse(device_pool(),
                                    reinterpret_cast<const kernels::GuardTarget*>(static_cast<uint8_t*>(*dev) + seg_bytes),
                                    uint32_t(targets.size()), stream, impl_->reuse_check == ReuseCheck::kOverlapped);
  if (Status r = impl_->segments.retire(stream); !r.is_ok()) return r;
  if (e != cudaSuccess) return cuda_error("gather_topk launch", e);
  return impl_->queue_checks(targets, stream) ? check_reads(stream) : Status::ok();
}

Result<uint32_t> GpuPool::bad_index_count() { return read_and_clear(impl_->bad_indices, "bad index count"); }

namespace {

// Mean run length from which fetch_pages' auto takes the copy engines (measured: 66 KiB runs
// 0.97x of the bulk copy's rate by copy engines against 0.87x by SM loads; 8 KiB runs no better).
constexpr uint64_t kCopyEngineMinRun = 32 << 10;

// The runs by one cudaMemcpyBatchAsync; each source is the pool's device view at its offset
// (offsets wrap modulo 2^64, as device_offsets gives them). kUnavailable where the runtime has no
// batched copy (before CUDA 13, whose signature this is) or refuses it; the runtime's sticky
// last error is cleared so a later launch does not report it as its own.
Status copy_runs_by_engines(const uint8_t* pool, const std::vector<uint64_t>& src, const std::vector<uint32_t>& bytes,
                            const std::vector<uint64_t>& dst_off, uint8_t* dst, cudaStream_t stream) {
#if CUDART_VERSION >= 13000
  std::vector<void*> dsts(src.size());
  std::vector<const void*> srcs(src.size());
  std::vector<size_t> sizes(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    srcs[i] = reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(pool) + src[i]);
    dsts[i] = dst + dst_off[i];
    sizes[i] = bytes[i];
  }
  cudaMemcpyAttributes attr{};
  attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
  size_t attr_index = 0;
  if (cudaError_t e = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), sizes.size(), &attr, &attr_index, 1, stream);
      e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status(Code::kUnavailable, fmt::format("fetch_pages by copy engines: cudaMemcpyBatchAsync of {} runs: {}",
                                                  src.size(), cudaGetErrorString(e)));
  }
  return Status::ok();
#else
  (void)pool, (void)src, (void)bytes, (void)dst_off, (void)dst, (void)stream;
  return Status(Code::kUnavailable, "fetch_pages by copy engines: needs CUDA 13's cudaMemcpyBatchAsync");
#endif
}

}  // namespace

Status GpuPool::fetch_pages(const ReadLease& lease, int stream, uint32_t layer, uint32_t p0, uint32_t p1, void* dst,
                            cudaStream_t cuda_stream, FetchEngine engine) {
  const PoolView& v = impl_->view;
  if (uint32_t(stream) >= v.stream_count || layer >= v.layers || p0 > p1 || p1 > lease.pages())
    return Status(Code::kInvalidArgument, fmt::format("fetch_pages: stream {} layer {} pages [{}, {}) of a {}-page lease",
                                                      stream, layer, p0, p1, lease.pages()));
  if (p0 == p1) return Status::ok();
  const auto& s = v.streams[stream];
  const uint64_t page_bytes = uint64_t{v.page_tokens} * s.entry_bytes;
  // Runs are copied in 16 B pieces: each page's run must be packed and start 16 B-aligned.
  if (s.stride != s.entry_bytes || page_bytes % 16 || s.layer_step % 16 || s.offset % 16)
    return Status(Code::kUnavailable, fmt::format("fetch_pages: stream {} runs are padded (stride {} > {} B) or not "
                                                  "16 B-aligned ({} B per page); use gather_topk", stream, s.stride,
                                                  s.entry_bytes, page_bytes));
  // One run per stretch of pages adjacent in one slab: [src, bytes, dst] as three arrays.
  auto mapped = map_lease(lease, "fetch_pages", p0, p1);
  if (!mapped) return mapped.status();
  std::vector<uint64_t> src, dst_off;
  std::vector<uint32_t> bytes;
  for (uint32_t p = p0; p < p1; ++p) {
    const Placement& pl = lease.placement(p);
    const uint64_t at = mapped->page_offset[p] + s.offset + uint64_t{layer} * s.layer_step + uint64_t{pl.position} * page_bytes;
    if (!src.empty() && src.back() + bytes.back() == at) {
      bytes.back() += uint32_t(page_bytes);
    } else {
      src.push_back(at);
      bytes.push_back(uint32_t(page_bytes));
      dst_off.push_back(uint64_t{p - p0} * page_bytes);
    }
  }
  const bool legacy_stream = cuda_stream == nullptr || cuda_stream == cudaStreamLegacy;
  if (engine == FetchEngine::kCopyEngines && legacy_stream)
    return Status(Code::kInvalidArgument, "fetch_pages: copy engines need a stream other than the legacy default stream");
  Status copied = Status::ok();
  if (engine == FetchEngine::kCopyEngines) {
    copied = copy_runs_by_engines(device_pool(), src, bytes, dst_off, static_cast<uint8_t*>(dst), cuda_stream);
  } else if (engine == FetchEngine::kAuto && !legacy_stream && uint64_t{p1 - p0} * page_bytes >= src.size() * kCopyEngineMinRun &&
             copy_runs_by_engines(device_pool(), src, bytes, dst_off, static_cast<uint8_t*>(dst), cuda_stream).is_ok()) {
    // Auto took the copy engines (where they are refused nothing was queued: SM loads below).
  } else {
    copied = copy_runs_by_sm_loads(src, bytes, dst_off, static_cast<uint8_t*>(dst), cuda_stream);
  }
  if (!copied.is_ok() || impl_->reuse_check == ReuseCheck::kOff || mapped->guard.empty()) return copied;
  // This fetch's own guard (pages [p0, p1)), which the check reads from pinned host memory (a
  // few words, once; no upload): its counts are not kept.
  auto words = impl_->fetch_guards.stage_host(mapped->guard.data(), mapped->guard.size() * 8);
  if (!words) return words.status();
  kernels::GuardTarget target{guard_layout(static_cast<uint64_t*>(*words), mapped->guard_parts, p1 - p0, impl_->reused),
                              static_cast<uint8_t*>(dst), uint64_t{p1 - p0} * page_bytes};
  target.guard.keeps_counts = 0;
  const cudaError_t e = kernels::launch_check_reuse_one(device_pool(), target, cuda_stream);
  if (Status r = impl_->fetch_guards.retire(cuda_stream); !r.is_ok()) return r;
  if (e != cudaSuccess) return cuda_error("fetch_pages reuse check launch", e);
  return Status::ok();
}

Status GpuPool::copy_runs_by_sm_loads(const std::vector<uint64_t>& src, const std::vector<uint32_t>& bytes,
                                      const std::vector<uint64_t>& dst_off, uint8_t* dst, cudaStream_t cuda_stream) {
  const size_t n = src.size();
  auto& blob = impl_->run_scratch;
  blob.resize(n * 20);
  std::memcpy(blob.data(), src.data(), n * 8);
  std::memcpy(blob.data() + n * 8, dst_off.data(), n * 8);
  std::memcpy(blob.data() + n * 16, bytes.data(), n * 4);
  auto dev = impl_->runs.stage(blob.data(), blob.size(), cuda_stream);
  if (!dev) return dev.status();
  auto* d = static_cast<uint8_t*>(*dev);
  if (cudaError_t e = kernels::launch_copy_runs(device_pool(), reinterpret_cast<const uint64_t*>(d),
                                                reinterpret_cast<const uint32_t*>(d + n * 16),
                                                reinterpret_cast<const uint64_t*>(d + n * 8), uint32_t(n), dst,
                                                cuda_stream);
      e != cudaSuccess) {
    (void)impl_->runs.retire(cuda_stream);
    return cuda_error("fetch_pages launch", e);
  }
  if (Status r = impl_->runs.retire(cuda_stream); !r.is_ok()) return r;
  return Status::ok();
}

}  // namespace cxlkv

namespace cxlkv {

Result<std::unique_ptr<GpuHotBuffer>> GpuPool::make_hot_buffer(const GpuBlockTable& table, uint32_t layer,
                                                               uint32_t capacity_rows, uint32_t max_k,
                                                               GpuRowSplice splice, const void* side) {
  const PoolView& v = impl_->view;
  if (layer >= v.layers || max_k == 0 || max_k > kernels::kHotMaxRows / 2 || capacity_rows < 2 * max_k ||
      capacity_rows > kernels::kHotMaxRows)
    return Status(Code::kInvalidArgument,
                  fmt::format("hot buffer: layer {} (of {}), {} rows for k {}: need rows >= 2k, rows <= {}", layer,
                              v.layers, capacity_rows, max_k, kernels::kHotMaxRows));
  const kernels::StreamShape shape = shape_of(v, table.stream(), splice);
  if (!shape.aligned_to(16) || (splice.side_bytes && !side))
    return Status(Code::kInvalidArgument,
                  fmt::format("hot buffer: stream {} ({} B entries, stride {}, splice of {} B at byte {}{}): all must be "
                              "multiples of 16 and the place within the entry", table.stream(), shape.entry_bytes,
                              shape.stride, splice.side_bytes, splice.side_at,
                              splice.side_bytes && !side ? ", no side array" : ""));
  const uint32_t row_bytes = shape.row_bytes();
  auto state = std::make_unique<GpuHotBuffer::State>();
  auto alloc = [&](size_t bytes, int fill) -> void* {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) return nullptr;
    state->owned.push_back(p);
    if (cudaMemset(p, fill, bytes) != cudaSuccess) return nullptr;
    return p;
  };
  const uint32_t tokens = table.pages() * v.page_tokens;
  kernels::HotSegment& h = state->segment;
  h.gather = kernels::GatherSegment{table.device_page_base(), nullptr, nullptr, table.pages(), layer, 0, 0};
  h.slot_of = static_cast<int32_t*>(alloc(size_t{std::max(tokens, 1u)} * 4, 0xff));
  h.token_of = static_cast<int32_t*>(alloc(size_t{capacity_rows} * 4, 0xff));
  h.last_used = static_cast<int32_t*>(alloc(size_t{capacity_rows} * 4, 0xff));
  h.rows = static_cast<uint8_t*>(alloc(size_t{capacity_rows} * row_bytes, 0));
  h.row_of = static_cast<int32_t*>(alloc(size_t{max_k} * 4, 0xff));
  auto* counts = static_cast<uint32_t*>(alloc(8, 0));
  if (!h.slot_of || !h.token_of || !h.last_used || !h.rows || !h.row_of || !counts)
    return Status(Code::kExhausted, fmt::format("hot buffer: GPU memory for {} rows of {} B", capacity_rows, row_bytes));
  if (splice.side_bytes) h.gather.side = static_cast<const uint8_t*>(side);
  h.hits = counts;
  h.misses = counts + 1;
  h.capacity = capacity_rows;
  h.tokens = tokens;
  state->table = &table;
  state->max_k = max_k;
  state->splice = splice;
  return std::unique_ptr<GpuHotBuffer>(new GpuHotBuffer(std::move(state)));
}

Status GpuPool::hot_step(std::span<const GpuHotStepItem> items, int32_t step, cudaStream_t stream) {
  if (items.empty()) return Status::ok();
  const PoolView& v = impl_->view;
  auto& segs = impl_->hot_scratch;
  segs.resize(items.size());
  const int s = items[0].buffer ? items[0].buffer->state_->table->stream() : -1;
  const GpuRowSplice splice = items[0].buffer ? items[0].buffer->state_->splice : GpuRowSplice{};
  for (size_t i = 0; i < items.size(); ++i) {
    const GpuHotStepItem& it = items[i];
    if (!it.buffer || it.buffer->state_->table->stream() != s || it.k > it.buffer->max_k() || (it.k && !it.indices) ||
        it.buffer->state_->splice != splice)
      return Status(Code::kInvalidArgument, fmt::format("hot_step: item {} has no buffer, another stream or splice, k {} "
                                                        "over its max or no indices", i, it.k));
    segs[i] = it.buffer->state_->segment;
    segs[i].gather.indices = it.indices;
    segs[i].gather.k = it.k;
  }
  // The reuse check's targets travel with the segments (one upload): a buffer whose lease's slabs
  // were reused is poisoned whole, as its rows are the pages' from then on.
  const uint32_t row_bytes = shape_of(v, s, splice).row_bytes();
  auto& targets = impl_->guard_scratch;
  targets.clear();
  for (const GpuHotStepItem& it : items) {
    const GpuBlockTable& t = *it.buffer->state_->table;
    if (impl_->reuse_check != ReuseCheck::kOff && it.k && t.guard_parts_)
      targets.push_back({guard_layout(t.guard_, t.guard_parts_, t.pages(), impl_->reused),
                         it.buffer->state_->segment.rows, uint64_t{it.buffer->capacity()} * row_bytes});
  }
  const bool per_step = impl_->reuse_check == ReuseCheck::kPerStep;
  const size_t seg_bytes = segs.size() * sizeof(segs[0]);
  auto& blob = impl_->run_scratch;
  pack_with_targets(segs.data(), seg_bytes, per_step ? kNoTargets : targets, blob);
  auto dev = impl_->hot.stage(blob.data(), blob.size(), stream);
  if (!dev) return dev.status();
  cudaError_t e = kernels::launch_hot_step(device_pool(), shape_of(v, s, splice), static_cast<const kernels::HotSegment*>(*dev),
                                           uint32_t(segs.size()), step, impl_->bad_indices, stream);
  if (e == cudaSuccess && !per_step)
    e = kernels::launch_check_reuse(device_pool(),
                                    reinterpret_cast<const kernels::GuardTarget*>(static_cast<uint8_t*>(*dev) + seg_bytes),
                                    uint32_t(targets.size()), stream, impl_->reuse_check == ReuseCheck::kOverlapped);
  if (Status r = impl_->hot.retire(stream); !r.is_ok()) return r;
  if (e != cudaSuccess) return cuda_error("hot_step launch", e);
  return impl_->queue_checks(targets, stream) ? check_reads(stream) : Status::ok();
}

}  // namespace cxlkv
