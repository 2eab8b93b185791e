// libcxlkv's GPU path end to end: a real daemon, a prefix written through the client, looked up,
// then gathered by GpuPool into GPU memory and compared byte for byte with the CPU gather of the
// same lease and with what the writer wrote. Without a CUDA device the binary reports a skip
// (exit 77) and says why.
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "cxlkv/client.h"
#include "cxlkv/gpu.h"
#include "etcd_process.h"
#include "eventually.h"
#include "node_record.h"
#include "gpu_region.h"
#include "poold_process.h"
#include "prefix_io.h"

using namespace cxlkv;

namespace {

struct Setup {
  std::unique_ptr<testing::PooldProcess> daemon;
  std::unique_ptr<Client> client;
  std::vector<PageKey> keys;
  ReadLease lease;
  explicit Setup(uint32_t slab_pages, const std::string& layout = "deepseek-v3.2") {
    testing::PooldOptions o;
    o.layout = layout;
    o.size = "2GiB";
    o.slab_pages = slab_pages;
    o.tenants = {"decode:t0ken"};
    auto d = testing::PooldProcess::start(o);
    INFO(d.status().to_string());
    REQUIRE(d.is_ok());
    daemon = std::move(*d);
    ClientOptions co;
    co.endpoint = daemon->unix_endpoint();
    co.tenant = "decode";
    co.token = "t0ken";
    co.model = "gpu-test";
    auto c = Client::connect(co);
    INFO(c.status().to_string());
    REQUIRE(c.is_ok());
    client = std::move(*c);
    std::vector<int32_t> tokens(48 * 64);
    std::mt19937 rng(std::random_device{}());
    for (auto& t : tokens) t = int32_t(rng() % 100000);
    keys = client->page_keys(tokens);
    auto written = testing::write_prefix(*client, keys);
    REQUIRE(written.is_ok());
    REQUIRE(*written == keys.size());
    auto l = client->lookup(keys);
    REQUIRE(l.is_ok());
    REQUIRE(l->pages() == keys.size());
    lease = std::move(*l);
  }
};

}  // namespace

TEST_CASE("GpuPool gathers a batch of layers of a leased prefix exactly as the CPU gather does") {
  // k <= kMaxOrderedK takes the ordered path (indices sorted on the GPU), larger k the plain one;
  // item 3 has half the entries of the others.
  const uint32_t k = GENERATE(2048u, 3000u);
  for (uint32_t slab_pages : {1u, 8u}) {
    CAPTURE(k, slab_pages);
    Setup s(slab_pages);
    auto gpu = GpuPool::attach(*s.client);
    INFO(gpu.status().to_string());
    REQUIRE(gpu.is_ok());
    auto table = (*gpu)->upload(s.lease, 0);
    REQUIRE(table.is_ok());
    const uint32_t layers = 8;
    const uint32_t entry = s.client->layout().stream(0).entry_bytes;
    std::mt19937 rng(std::random_device{}());
    std::vector<int32_t> idx(size_t{layers} * k);
    for (auto& i : idx) i = int32_t(rng() % s.lease.prefix_tokens());
    idx[7] = -1;
    idx[k + 9] = int32_t(s.lease.prefix_tokens());  // past the prefix: counted, never read
    int32_t* d_idx = nullptr;
    uint8_t* d_out = nullptr;
    REQUIRE(cudaMalloc(&d_idx, idx.size() * 4) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_out, idx.size() * entry) == cudaSuccess);
    REQUIRE(cudaMemcpy(d_idx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemset(d_out, 0x77, idx.size() * entry) == cudaSuccess);
    std::vector<GpuGatherItem> items;
    for (uint32_t l = 0; l < layers; ++l)
      items.push_back({&*table, l * 7, d_idx + size_t{l} * k, l == 3 ? k / 2 : k, d_out + size_t{l} * k * entry});
    cudaStream_t stream;
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    REQUIRE((*gpu)->gather_topk(items, stream).is_ok());
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    auto bad = (*gpu)->bad_index_count();
    REQUIRE(bad.is_ok());
    CHECK(*bad == 1);
    std::vector<uint8_t> got(idx.size() * entry), want(idx.size() * entry, 0x77);
    REQUIRE(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (uint32_t l = 0; l < layers; ++l) {
      const int kk = int(l == 3 ? k / 2 : k);
      std::vector<int32_t> cpu_idx(idx.begin() + size_t{l} * k, idx.begin() + size_t{l} * k + kk);
      if (l == 1) cpu_idx[9] = -1;  // the CPU gather refuses the whole call; the GPU skips the row
      REQUIRE(s.lease.gather_topk(0, l * 7, cpu_idx.data(), kk, want.data() + size_t{l} * k * entry).is_ok());
      CHECK(testing::verify_rows(s.keys, s.client->page_tokens(), 0, l * 7, entry, cpu_idx.data(), kk,
                                 got.data() + size_t{l} * k * entry, 0x77).is_ok());
    }
    CHECK(got == want);
    cudaFree(d_idx), cudaFree(d_out);
    cudaStreamDestroy(stream);
  }
}

TEST_CASE("GpuPool gathers split rows: 640 B from the pool, the 16 B of scales from GPU memory, FlashMLA's 656 B row") {
  Setup s(8, "deepseek-v3.2-split");
  auto gpu = std::move(*GpuPool::attach(*s.client));
  const Layout& layout = s.client->layout();
  const int latent = layout.find_stream("latent"), scales = layout.find_stream("latent_scales");
  REQUIRE(layout.stream(latent).entry_bytes == 640);
  REQUIRE(layout.stream(scales).entry_bytes == 16);
  auto table = gpu->upload(s.lease, latent);
  REQUIRE(table.is_ok());
  const uint32_t k = 2048, layers = 3, pages = s.lease.pages(), tokens = s.lease.prefix_tokens();
  // Each layer's scales, fetched whole: what a decode worker holds after admission.
  uint8_t* d_side = nullptr;
  REQUIRE(cudaMalloc(&d_side, size_t{layers} * tokens * 16) == cudaSuccess);
  for (uint32_t l = 0; l < layers; ++l)
    REQUIRE(gpu->fetch_pages(s.lease, scales, 20 * l, 0, pages, d_side + size_t{l} * tokens * 16, 0).is_ok());
  std::mt19937 rng(std::random_device{}());
  std::vector<int32_t> idx(size_t{layers} * k);
  for (auto& i : idx) i = int32_t(rng() % tokens);
  idx[5] = -1;
  int32_t* d_idx = nullptr;
  uint8_t* d_out = nullptr;
  REQUIRE(cudaMalloc(&d_idx, idx.size() * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_out, idx.size() * 656) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_idx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemset(d_out, 0x77, idx.size() * 656) == cudaSuccess);
  std::vector<GpuGatherItem> items;
  for (uint32_t l = 0; l < layers; ++l)
    items.push_back({&*table, 20 * l, d_idx + size_t{l} * k, k, d_out + size_t{l} * k * 656, d_side + size_t{l} * tokens * 16});
  REQUIRE(gpu->gather_topk(items, 0, GpuRowSplice{16, 512}).is_ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<uint8_t> got(idx.size() * 656), want(idx.size() * 656, 0x77);
  REQUIRE(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
  // The same rows from the CPU gather of both streams, spliced on the host.
  auto cpu_rows = [&](uint32_t layer, const int32_t* li, uint8_t* out) {
    std::vector<uint8_t> body(size_t{k} * 640), scale(size_t{k} * 16);
    REQUIRE(s.lease.gather_topk(latent, layer, li, k, body.data()).is_ok());
    REQUIRE(s.lease.gather_topk(scales, layer, li, k, scale.data()).is_ok());
    CHECK(testing::verify_rows(s.keys, s.client->page_tokens(), latent, layer, 640, li, k, body.data(), 0).is_ok());
    for (uint32_t i = 0; i < k; ++i) {
      if (li[i] < 0) continue;
      uint8_t* row = out + size_t{i} * 656;
      std::memcpy(row, body.data() + size_t{i} * 640, 512);
      std::memcpy(row + 512, scale.data() + size_t{i} * 16, 16);
      std::memcpy(row + 528, body.data() + size_t{i} * 640 + 512, 128);
    }
  };
  for (uint32_t l = 0; l < layers; ++l) cpu_rows(20 * l, idx.data() + size_t{l} * k, want.data() + size_t{l} * k * 656);
  CHECK(got == want);
  // A hot buffer of split rows over layer 0: after one step every valid slot's row is the same
  // 656 B row.
  std::vector<int32_t> unique(tokens);  // a hot step's indices are unique apart from -1
  std::iota(unique.begin(), unique.end(), 0);
  std::shuffle(unique.begin(), unique.end(), rng);
  unique.resize(k);
  unique[5] = -1;
  std::vector<uint8_t> unique_rows(size_t{k} * 656);
  cpu_rows(0, unique.data(), unique_rows.data());
  REQUIRE(cudaMemcpy(d_idx, unique.data(), k * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  auto hot = gpu->make_hot_buffer(*table, 0, 2 * k, k, GpuRowSplice{16, 512}, d_side);
  INFO(hot.status().to_string());
  REQUIRE(hot.is_ok());
  GpuHotStepItem step_item{hot->get(), d_idx, k};
  REQUIRE(gpu->hot_step({&step_item, 1}, 0, 0).is_ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  std::vector<int32_t> row_of(k);
  std::vector<uint8_t> rows(size_t{2} * k * 656);
  REQUIRE(cudaMemcpy(row_of.data(), (*hot)->row_of(), k * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(rows.data(), (*hot)->rows(), rows.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
  for (uint32_t i = 0; i < k; ++i) {
    CAPTURE(i);
    if (unique[i] < 0) {
      CHECK(row_of[i] == -1);
      continue;
    }
    REQUIRE(row_of[i] >= 0);
    CHECK(std::memcmp(rows.data() + size_t(row_of[i]) * 656, unique_rows.data() + size_t{i} * 656, 656) == 0);
  }
  CHECK(gpu->make_hot_buffer(*table, 0, 2 * k, k, GpuRowSplice{16, 512}, nullptr).status().code() == Code::kInvalidArgument);
  // A splice needs each item's side array and a place inside the entry.
  items[1].side = nullptr;
  CHECK(gpu->gather_topk(items, 0, GpuRowSplice{16, 512}).code() == Code::kInvalidArgument);
  items[1].side = d_side;
  CHECK(gpu->gather_topk(items, 0, GpuRowSplice{16, 648}).code() == Code::kInvalidArgument);
  cudaFree(d_idx), cudaFree(d_out), cudaFree(d_side);
}

TEST_CASE("GpuPool fetches the indexer keys of a page range exactly as the CPU bulk fetch does") {
  Setup s(8);
  auto gpu = std::move(*GpuPool::attach(*s.client));
  auto table = gpu->upload(s.lease, 1);
  REQUIRE(table.is_ok());
  const uint32_t p0 = 3, p1 = 41, layer = 17;
  const size_t bytes = size_t{p1 - p0} * 64 * s.client->layout().stream(1).entry_bytes;
  uint8_t* d_out = nullptr;
  REQUIRE(cudaMalloc(&d_out, bytes) == cudaSuccess);
  const Status fetched = gpu->fetch_pages(s.lease, 1, layer, p0, p1, d_out, 0);
  INFO(fetched.to_string());
  REQUIRE(fetched.is_ok());
  std::vector<uint8_t> got(bytes), want(bytes);
  REQUIRE(cudaMemcpy(got.data(), d_out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(s.lease.fetch_pages(1, layer, p0, p1, want.data()).is_ok());
  CHECK(got == want);
  CHECK(gpu->fetch_pages(s.lease, 1, layer, 5, 99, d_out, 0).code() == Code::kInvalidArgument);
  // Either engine, forced, on a stream of its own (auto picks by run length): the same bytes.
  // Batched copies refuse the legacy default stream.
  cudaStream_t own = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking) == cudaSuccess);
  for (auto engine : {GpuPool::FetchEngine::kSmLoads, GpuPool::FetchEngine::kCopyEngines, GpuPool::FetchEngine::kAuto}) {
    REQUIRE(cudaMemset(d_out, 0x5a, bytes) == cudaSuccess);
    const Status by = gpu->fetch_pages(s.lease, 1, layer, p0, p1, d_out, own, engine);
    INFO(by.to_string());
    REQUIRE(by.is_ok());
    REQUIRE(cudaStreamSynchronize(own) == cudaSuccess);
    REQUIRE(cudaMemcpy(got.data(), d_out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(got == want);
  }
  CHECK(gpu->fetch_pages(s.lease, 1, layer, p0, p1, d_out, 0, GpuPool::FetchEngine::kCopyEngines).code() ==
        Code::kInvalidArgument);
  cudaStreamDestroy(own);
  // A lease of another client (another mapping of the region, kept by its session): that mapping
  // is registered with the device too, and the copy is the same.
  ClientOptions co;
  co.endpoint = s.daemon->unix_endpoint(), co.tenant = "decode", co.token = "t0ken", co.model = "gpu-test";
  auto other = Client::connect(co);
  REQUIRE(other.is_ok());
  auto theirs = (*other)->lookup(s.keys);
  REQUIRE(theirs.is_ok());
  REQUIRE(theirs->view().base != s.lease.view().base);
  REQUIRE(cudaMemset(d_out, 0x3c, bytes) == cudaSuccess);
  const Status foreign = gpu->fetch_pages(*theirs, 1, layer, p0, p1, d_out, 0);
  INFO(foreign.to_string());
  REQUIRE(foreign.is_ok());
  REQUIRE(cudaMemcpy(got.data(), d_out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got == want);
  // Once that client is gone (its mapping with it), this pool's own reads go on.
  REQUIRE(theirs->release().is_ok());
  *theirs = ReadLease();
  other->reset();
  REQUIRE(cudaMemset(d_out, 0, bytes) == cudaSuccess);
  REQUIRE(gpu->fetch_pages(s.lease, 1, layer, p0, p1, d_out, 0).is_ok());
  REQUIRE(cudaMemcpy(got.data(), d_out, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got == want);
  cudaFree(d_out);
}

TEST_CASE("GpuPool reads a lease that spans the memory nodes of a cluster: gather and fetch as the CPU's") {
  auto etcd = testing::EtcdProcess::start();
  INFO(etcd.status().to_string());
  REQUIRE(etcd.is_ok());
  const std::string url = (*etcd)->url("gpu");
  std::vector<std::unique_ptr<testing::PooldProcess>> nodes;
  for (int i = 0; i < 2; ++i) {
    testing::PooldOptions o;
    o.size = "1GiB";
    o.slab_pages = 4;
    o.extra = {"--cluster", url, "--node-id", fmt::format("gpu-{}", i), "--chunk-pages", "4"};
    auto d = testing::PooldProcess::start(o);
    INFO(d.status().to_string());
    REQUIRE(d.is_ok());
    nodes.push_back(std::move(*d));
  }
  {
    auto etcd_client = (*etcd)->client();
    const auto parsed = *cluster::parse_cluster_url(url);
    REQUIRE(testing::eventually([&] { auto n = cluster::list_nodes(etcd_client, parsed); return n && n->size() == 2; },
                                std::chrono::seconds(10)));
  }
  ClientOptions co;
  co.endpoint = url, co.tenant = "decode", co.model = "gpu-cluster";
  auto connected = Client::connect(co);
  INFO(connected.status().to_string());
  REQUIRE(connected.is_ok());
  std::unique_ptr<Client> client = std::move(*connected);
  std::vector<int32_t> tokens(48 * 64);
  std::iota(tokens.begin(), tokens.end(), 1000);
  const auto keys = client->page_keys(tokens);
  REQUIRE(testing::write_prefix(*client, keys).is_ok());
  auto lease = client->lookup(keys);
  REQUIRE(lease.is_ok());
  REQUIRE(lease->pages() == 48);
  REQUIRE(lease->nodes() == 2);

  auto gpu = GpuPool::attach(*client);
  REQUIRE(gpu.is_ok());
  auto table = (*gpu)->upload(*lease, 0);
  INFO(table.status().to_string());
  REQUIRE(table.is_ok());
  const uint32_t k = 2048, layers = 4;
  const uint32_t entry = client->layout().stream(0).entry_bytes;
  std::mt19937 rng(11);
  std::vector<int32_t> idx(size_t{layers} * k);
  for (auto& i : idx) i = int32_t(rng() % lease->prefix_tokens());
  int32_t* d_idx = nullptr;
  uint8_t* d_out = nullptr;
  REQUIRE(cudaMalloc(&d_idx, idx.size() * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_out, idx.size() * entry) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_idx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  std::vector<GpuGatherItem> items;
  for (uint32_t l = 0; l < layers; ++l)
    items.push_back({&*table, l * 13, d_idx + size_t{l} * k, k, d_out + size_t{l} * k * entry});
  REQUIRE((*gpu)->gather_topk(items, 0).is_ok());
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK((*gpu)->bad_index_count().value() == 0);
  std::vector<uint8_t> got(idx.size() * entry), want(idx.size() * entry);
  REQUIRE(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
  for (uint32_t l = 0; l < layers; ++l) {
    REQUIRE(lease->gather_topk(0, l * 13, idx.data() + size_t{l} * k, int(k), want.data() + size_t{l} * k * entry).is_ok());
    CHECK(testing::verify_rows(keys, client->page_tokens(), 0, l * 13, entry, idx.data() + size_t{l} * k, int(k),
                               got.data() + size_t{l} * k * entry, 0).is_ok());
  }
  CHECK(got == want);
  // The indexer keys of every page, both nodes' in one launch.
  const size_t bytes = size_t{48} * 64 * client->layout().stream(1).entry_bytes;
  std::vector<uint8_t> keys_got(bytes), keys_want(bytes);
  uint8_t* d_keys = nullptr;
  REQUIRE(cudaMalloc(&d_keys, bytes) == cudaSuccess);
  REQUIRE((*gpu)->fetch_pages(*lease, 1, 30, 0, 48, d_keys, 0).is_ok());
  REQUIRE(cudaMemcpy(keys_got.data(), d_keys, bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(lease->fetch_pages(1, 30, 0, 48, keys_want.data()).is_ok());
  CHECK(keys_got == keys_want);
  CHECK(lease->check_reuse().is_ok());
  cudaFree(d_idx), cudaFree(d_out), cudaFree(d_keys);
}

TEST_CASE("GpuPool hot buffers serve repeated top-k entries from HBM and fetch only the new ones") {
  Setup s(8);
  auto gpu = std::move(*GpuPool::attach(*s.client));
  auto table = gpu->upload(s.lease, 0);
  REQUIRE(table.is_ok());
  const uint32_t k = 512, layers = 3, entry = s.client->layout().stream(0).entry_bytes;
  CHECK(gpu->make_hot_buffer(*table, 0, k, k).status().code() == Code::kInvalidArgument);  // rows < 2k
  std::vector<std::unique_ptr<GpuHotBuffer>> buffers;
  for (uint32_t l = 0; l < layers; ++l) {
    auto b = gpu->make_hot_buffer(*table, 10 + l, 3 * k, k);
    REQUIRE(b.is_ok());
    buffers.push_back(std::move(*b));
  }
  int32_t* d_idx = nullptr;
  REQUIRE(cudaMalloc(&d_idx, size_t{layers} * k * 4) == cudaSuccess);
  std::mt19937 rng(std::random_device{}());
  std::vector<std::vector<int32_t>> cur(layers);
  for (int32_t step = 0; step < 6; ++step) {
    std::vector<int32_t> all;
    for (uint32_t l = 0; l < layers; ++l) {
      // Step 0: k distinct tokens; then keep the first half, draw the rest anew (distinct).
      std::vector<int32_t> next(cur[l].begin(), cur[l].begin() + (step == 0 ? 0 : k / 2));
      while (next.size() < k) {
        const int32_t t = int32_t(rng() % s.lease.prefix_tokens());
        if (std::find(next.begin(), next.end(), t) == next.end()) next.push_back(t);
      }
      cur[l] = next;
      all.insert(all.end(), next.begin(), next.end());
    }
    REQUIRE(cudaMemcpy(d_idx, all.data(), all.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    std::vector<GpuHotStepItem> items;
    for (uint32_t l = 0; l < layers; ++l) items.push_back({buffers[l].get(), d_idx + size_t{l} * k, k});
    REQUIRE(gpu->hot_step(items, step, 0).is_ok());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    for (uint32_t l = 0; l < layers; ++l) {
      CAPTURE(step, l);
      auto counts = buffers[l]->last_step_counts();
      REQUIRE(counts.is_ok());
      CHECK(counts->first + counts->second == k);
      // Step 0 misses everything; later the kept half always hits (3k rows hold two steps), and a
      // new draw may hit too when an older step left it resident.
      if (step == 0) CHECK(counts->second == k);
      else CHECK(counts->second <= k - k / 2);
      std::vector<int32_t> row_of(k);
      std::vector<uint8_t> rows(size_t{buffers[l]->capacity()} * entry), want(size_t{k} * entry);
      REQUIRE(cudaMemcpy(row_of.data(), buffers[l]->row_of(), k * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
      REQUIRE(cudaMemcpy(rows.data(), buffers[l]->rows(), rows.size(), cudaMemcpyDeviceToHost) == cudaSuccess);
      REQUIRE(s.lease.gather_topk(0, 10 + l, cur[l].data(), int(k), want.data()).is_ok());
      for (uint32_t i = 0; i < k; ++i) {
        REQUIRE(row_of[i] >= 0);
        REQUIRE(std::memcmp(rows.data() + size_t(row_of[i]) * entry, want.data() + size_t{i} * entry, entry) == 0);
      }
    }
  }
  CHECK(gpu->reused_count().value() == 0);  // six steps of a live lease: nothing poisoned
  cudaFree(d_idx);
}

TEST_CASE("GpuPool poisons and counts what it read from slabs freed or reused under a lease, and refuses to upload one") {
  testing::PooldOptions o;
  o.layout = "deepseek-v3.2";
  o.size = "1GiB";
  o.tenants = {"decode:t0ken"};
  o.extra = {"--read-lease-ttl-ms", "300"};
  auto d = testing::PooldProcess::start(o);
  REQUIRE(d.is_ok());
  ClientOptions co;
  co.endpoint = (*d)->unix_endpoint();
  co.tenant = "decode";
  co.token = "t0ken";
  co.model = "gpu-test";
  auto client = std::move(*Client::connect(co));
  auto prompt = [](int32_t salt, uint32_t pages) {
    std::vector<int32_t> t(size_t{pages} * 64);
    std::iota(t.begin(), t.end(), salt * 1000000);
    return t;
  };
  const auto keys = client->page_keys(prompt(1, 8)), other = client->page_keys(prompt(2, 2));
  REQUIRE(testing::write_prefix(*client, keys).is_ok());
  REQUIRE(testing::write_prefix(*client, other).is_ok());
  auto held = std::move(*client->lookup(keys));  // its TTL runs out below
  REQUIRE(held.pages() == 8);
  auto gpu = std::move(*GpuPool::attach(*client));
  auto table = std::move(*gpu->upload(held, 0));
  const uint32_t k = 256, entry = client->layout().stream(0).entry_bytes;
  const uint32_t indexer_bytes = 8 * 64 * client->layout().stream(1).entry_bytes;
  std::vector<int32_t> idx(2 * k);
  for (uint32_t i = 0; i < idx.size(); ++i) idx[i] = int32_t((i * 37) % held.prefix_tokens());
  int32_t* d_idx = nullptr;
  uint8_t *d_out = nullptr, *d_keys = nullptr;
  REQUIRE(cudaMalloc(&d_idx, idx.size() * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_out, idx.size() * entry) == cudaSuccess);
  REQUIRE(cudaMalloc(&d_keys, indexer_bytes) == cudaSuccess);
  REQUIRE(cudaMemcpy(d_idx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  const std::vector<GpuGatherItem> items = {{&table, 3, d_idx, k, d_out}, {&table, 40, d_idx + k, k, d_out + k * entry}};
  auto hot = std::move(*gpu->make_hot_buffer(table, 5, 2 * k, k));
  const std::vector<GpuHotStepItem> hot_items = {{hot.get(), d_idx, k}};
  int32_t step = 0;
  cudaStream_t stream = nullptr;  // a stream of its own: where the overlapped check's launch can overlap
  REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  // Every read the three ways, synchronized; returns reused_count().
  auto read_all = [&] {
    REQUIRE(gpu->gather_topk(items, stream).is_ok());
    REQUIRE(gpu->fetch_pages(held, 1, 7, 0, 8, d_keys, stream).is_ok());
    REQUIRE(gpu->hot_step(hot_items, step++, stream).is_ok());
    REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
    return gpu->reused_count().value();
  };
  auto copy_back = [](const void* d_ptr, size_t n) {
    std::vector<uint8_t> h(n);
    REQUIRE(cudaMemcpy(h.data(), d_ptr, n, cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  };
  auto all_poison = [](const std::vector<uint8_t>& v) {
    return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0xFF; });
  };
  auto check_rows_as_cpu = [&] {
    const auto got = copy_back(d_out, idx.size() * entry);
    std::vector<uint8_t> want(idx.size() * entry);
    REQUIRE(held.gather_topk(0, 3, idx.data(), int(k), want.data()).is_ok());
    REQUIRE(held.gather_topk(0, 40, idx.data() + k, int(k), want.data() + k * entry).is_ok());
    CHECK(got == want);
  };

  // A live lease: nothing poisoned. Another prefix's slabs freed: the check takes its slow path
  // (the count moved), finds this lease's slabs as leased, and the bytes are the pages'.
  CHECK(read_all() == 0);
  check_rows_as_cpu();
  REQUIRE(client->remove(other).value() == 2);
  CHECK(read_all() == 0);
  check_rows_as_cpu();
  // Per step: nothing is checked until check_reads, which finds the live lease's slabs as leased.
  gpu->set_reuse_check(GpuPool::ReuseCheck::kPerStep);
  CHECK(read_all() == 0);
  REQUIRE(gpu->check_reads(stream).is_ok());
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(gpu->reused_count().value() == 0);
  check_rows_as_cpu();
  gpu->set_reuse_check(GpuPool::ReuseCheck::kOverlapped);
  std::vector<uint8_t> keys_want(indexer_bytes);
  REQUIRE(held.fetch_pages(1, 7, 0, 8, keys_want.data()).is_ok());
  CHECK(copy_back(d_keys, indexer_bytes) == keys_want);

  // The lease runs out, its pages are removed and their slabs reused by another prefix: each
  // output read through it is poisoned and counted (two gather items, the fetch, the hot step).
  REQUIRE(testing::eventually([&] { return client->remove(keys).value() == 8; }, std::chrono::seconds(10)));
  REQUIRE(testing::write_prefix(*client, client->page_keys(prompt(3, 8))).is_ok());
  CHECK(read_all() == 4);
  CHECK(all_poison(copy_back(d_out, idx.size() * entry)));
  CHECK(all_poison(copy_back(d_keys, indexer_bytes)));
  CHECK(all_poison(copy_back(hot->rows(), size_t{hot->capacity()} * entry)));
  CHECK(gpu->upload(held, 0).status().code() == Code::kExpired);
  // The check as a plain launch after each read finds the same (outputs cleared first).
  gpu->set_reuse_check(GpuPool::ReuseCheck::kAfter);
  REQUIRE(cudaMemset(d_out, 0, idx.size() * entry) == cudaSuccess);
  REQUIRE(cudaMemset(d_keys, 0, indexer_bytes) == cudaSuccess);
  CHECK(read_all() == 4);
  CHECK(all_poison(copy_back(d_out, idx.size() * entry)));
  CHECK(all_poison(copy_back(d_keys, indexer_bytes)));
  // Per step: the page fetch is still checked at once; the gather's two items and the hot step
  // are checked by check_reads, one look at their shared lease poisoning all three outputs.
  gpu->set_reuse_check(GpuPool::ReuseCheck::kPerStep);
  REQUIRE(cudaMemset(d_out, 0, idx.size() * entry) == cudaSuccess);
  REQUIRE(cudaMemset(d_keys, 0, indexer_bytes) == cudaSuccess);
  CHECK(read_all() == 1);
  CHECK(all_poison(copy_back(d_keys, indexer_bytes)));
  CHECK_FALSE(all_poison(copy_back(d_out, idx.size() * entry)));  // not checked yet: the reused slabs' bytes
  REQUIRE(gpu->check_reads(stream).is_ok());
  REQUIRE(gpu->check_reads(stream).is_ok());  // nothing left queued: no second count
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(gpu->reused_count().value() == 3);
  CHECK(all_poison(copy_back(d_out, idx.size() * entry)));
  CHECK(all_poison(copy_back(hot->rows(), size_t{hot->capacity()} * entry)));
  // With the check off (to measure its cost), the same reads count nothing.
  gpu->set_reuse_check(false);
  CHECK(read_all() == 0);
  cudaStreamDestroy(stream);
  cudaFree(d_idx);
  cudaFree(d_out);
  cudaFree(d_keys);
}

int main(int argc, char** argv) {
  std::string why;
  if (!kernels::gpu_available(&why)) {
    std::printf("SKIP: GPU client tests need a CUDA device: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
