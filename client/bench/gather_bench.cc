// CPU top-k gather throughput against a contiguous memcpy of the same bytes, in the same run,
// on a region set up with the allocator directly (no daemon): the bar is gather >= 0.7x memcpy.
#include "gather_bench.h"

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_util.h"
#include "direct_pool.h"

namespace cxlkv::bench {

int run_gather_bench(const GatherBenchOptions& o) {
  auto layout = Layout::parse(o.layout);
  if (!layout) return fmt::print(stderr, "gather: {}\n", layout.status().to_string()), 2;
  const uint32_t pages = uint32_t(o.prefix_tokens / layout->page_tokens());
  const bool shm = o.backing == "shm";
  cxl::RegionSpec spec{shm ? cxl::Backend::kShm : cxl::Backend::kFile,
                       shm ? fmt::format("/cxlkv-bench-gather-{}", getpid()) : o.backing, -1,
                       region_bytes_for(*layout, o.slab_pages, pages)};
  if (!shm) spec.size = (spec.size + (2u << 20) - 1) / (2u << 20) * (2u << 20);  // hugetlbfs sizes
  auto pool = testing::DirectPool::create(spec, o.layout, o.slab_pages);
  if (!pool) return fmt::print(stderr, "gather: {}\n", pool.status().to_string()), 2;
  auto placed = (*pool)->place(pages);
  if (!placed) return fmt::print(stderr, "gather: {}\n", placed.status().to_string()), 2;
  const PoolView& v = (*pool)->view();
  const int stream = layout->find_stream(o.stream);
  if (stream < 0) return fmt::print(stderr, "gather: no stream '{}' in {}\n", o.stream, layout->name()), 2;
  // Touch every byte of the used slabs so no read hits an unpopulated OS page.
  const uint64_t slab_area = v.slab_bytes * ((pages + v.slab_pages - 1) / v.slab_pages);
  uint8_t* area = v.base + (*placed)[0].slab_offset;
  std::memset(area, 0x5c, slab_area);
  // The same pages read without the reuse check (a view that has no slab-free count): the check's
  // cost is the difference, measured in the same rounds.
  PoolView unchecked_view = v;
  unchecked_view.slab_frees = nullptr;
  const ReadLease unchecked = detail::LeaseFactory::read_lease(unchecked_view, *placed, 0, nullptr);
  const ReadLease lease = (*pool)->read_lease(std::move(*placed));

  const uint32_t bytes = v.streams[stream].entry_bytes;
  const uint32_t threads = std::max(1u, o.threads);
  if (uint32_t(o.k) % threads) return fmt::print(stderr, "gather: k={} does not split evenly over {} threads\n", o.k, threads), 2;
  const uint32_t share = uint32_t(o.k) / threads;  // entries per thread per call
  const size_t call_bytes = size_t(o.k) * bytes, share_bytes = size_t(share) * bytes;
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(lease.prefix_tokens()) - 1);
  constexpr int kIndexSets = 64;
  std::vector<std::vector<int32_t>> sets(kIndexSets, std::vector<int32_t>(o.k));
  for (auto& s : sets)
    for (auto& i : s) i = pick(rng);
  // Every block of a round makes `calls` calls per thread: the layers, repeated.
  const uint32_t calls = v.layers * std::max(1u, o.repeats);
  std::vector<std::vector<uint64_t>> src_offsets(o.rounds, std::vector<uint64_t>(calls));
  std::uniform_int_distribution<uint64_t> src_pick(0, (slab_area - call_bytes) / 64);
  for (auto& r : src_offsets)
    for (auto& off : r) off = src_pick(rng) * 64;

  // Thread t gathers entries [t x share, (t+1) x share) of each call's index set and copies the
  // same share of a contiguous run: both designs move the same bytes with the same threads.
  // Gather block and memcpy block alternate, so both see the same machine state; the barrier
  // marks the block edges, and thread 0 reads the clock there.
  std::barrier sync(threads);
  std::vector<double> t_gather, t_copy, t_unchecked;  // per call, one sample per round
  std::atomic<bool> failed{false};
  auto worker = [&](uint32_t t) {
    std::vector<uint8_t> dst(call_bytes);
    std::memset(dst.data(), 0, dst.size());
    // One block of gathers through `l`, each call on its own index set (never the entries a
    // block just before read, which the cache would still hold).
    auto gather_block = [&](const ReadLease& l, int round, uint32_t set_offset) {
      for (uint32_t c = 0; c < calls; ++c) {
        const int32_t* idx = sets[(uint64_t(round) * calls * 2 + c + set_offset) % kIndexSets].data() + uint64_t{t} * share;
        if (!l.gather_topk(stream, c % v.layers, idx, share, dst.data()).is_ok()) failed = true;
      }
    };
    for (int round = 0; round < o.rounds; ++round) {
      // Checked and unchecked gathers take turns going first, the memcpy block between them.
      const bool checked_first = round % 2 == 0;
      sync.arrive_and_wait();
      const double t0 = now_s();
      gather_block(checked_first ? lease : unchecked, round, 0);
      sync.arrive_and_wait();
      const double t1 = now_s();
      for (uint32_t c = 0; c < calls; ++c)
        std::memcpy(dst.data(), area + src_offsets[round][c] + uint64_t{t} * share_bytes, share_bytes);
      sync.arrive_and_wait();
      const double t2 = now_s();
      gather_block(checked_first ? unchecked : lease, round, calls);
      sync.arrive_and_wait();
      const double t3 = now_s();
      if (t == 0 && round > 1) {  // rounds 0 and 1 warm up
        (checked_first ? t_gather : t_unchecked).push_back((t1 - t0) / calls);
        t_copy.push_back((t2 - t1) / calls);
        (checked_first ? t_unchecked : t_gather).push_back((t3 - t2) / calls);
      }
    }
  };
  std::vector<std::thread> pool_threads;
  for (uint32_t t = 1; t < threads; ++t) pool_threads.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool_threads) th.join();
  if (failed) return fmt::print(stderr, "gather: gather_topk failed\n"), 1;
  // Medians: the machine may be shared, and a median ignores the rounds someone else took.
  const uint64_t samples = uint64_t(t_gather.size()) * calls;
  const double g_call = percentile(t_gather, 0.5), c_call = percentile(t_copy, 0.5);
  const double gather_gbs = double(call_bytes) / g_call / 1e9, copy_gbs = double(call_bytes) / c_call / 1e9;
  fmt::print("top-k gather: layout {} E={} stream {} ({} B entries, stride {}), prefix {} tokens ({} pages), k={}, "
             "{} thread(s), {} calls\n",
             layout->name(), v.slab_pages, o.stream, bytes, v.streams[stream].stride, lease.prefix_tokens(), pages, o.k,
             threads, samples);
  fmt::print("  {:<28} {:>12} {:>14} {:>10}\n", "method (median of rounds)", "us/call", "entries/s", "GB/s");
  fmt::print("  {:<28} {:>12.1f} {:>14.3e} {:>10.2f}\n", "gather_topk (random)", g_call * 1e6, o.k / g_call, gather_gbs);
  fmt::print("  {:<28} {:>12.1f} {:>14.3e} {:>10.2f}\n", "memcpy (contiguous, ceiling)", c_call * 1e6, o.k / c_call, copy_gbs);
  const double u_call = percentile(t_unchecked, 0.5);
  fmt::print("  {:<28} {:>12.1f} {:>14.3e} {:>10.2f}\n", "gather_topk, no reuse check", u_call * 1e6, o.k / u_call,
             double(call_bytes) / u_call / 1e9);
  fmt::print("  gather / memcpy = {:.2f}x (bar >= 0.70x); the reuse check costs {:+.2f} % of a gather (bar <= 2 %)\n",
             gather_gbs / copy_gbs, (g_call / u_call - 1) * 100);
  return 0;
}

}  // namespace cxlkv::bench
