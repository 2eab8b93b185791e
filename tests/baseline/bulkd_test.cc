// The baseline's TCP path end to end: the real cxlkv-poold (CXLKV_POOLD) owns the region, the
// real cxlkv-bulkd (CXLKV_BULKD) maps it read-only and serves it, and the client looks a prefix
// up through the daemon and fetches it over TCP, checked byte for byte.
#include <catch2/catch_test_macros.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include "bulkd_process.h"
#include "cxlkv/client.h"
#include "prefix_fetch.h"
#include "rdma_transport.h"
#include "region_reader.h"
#include "slab_allocator.h"
#include "tcp_reader.h"
#include "poold_process.h"
#include "prefix_io.h"
#include "topk_trace.h"

using namespace cxlkv;
using namespace cxlkv::baseline;
using cxlkv::testing::TopkTrace;

namespace {

// DeepSeek-V3.2's streams over 3 layers, the latent with a padded stride so packing is exercised.
const char* kLayout = "custom:name=dsv32-3l,layers=3,page_tokens=64,stream=latent/656/704/sparse,stream=indexer/132/132/bulk";

struct Rig {
  std::unique_ptr<testing::PooldProcess> poold;
  std::unique_ptr<testing::BulkdProcess> bulkd;
  std::unique_ptr<Client> client;
  std::vector<PageKey> keys;
};

Rig start(uint32_t slab_pages, uint32_t pages) {
  Rig r;
  testing::PooldOptions o;
  o.layout = kLayout;
  o.slab_pages = slab_pages;
  o.size = "256MiB";
  auto p = testing::PooldProcess::start(o);
  INFO(p.status().to_string());
  REQUIRE(p.is_ok());
  r.poold = std::move(*p);
  auto b = testing::BulkdProcess::start("shm", r.poold->region().path);
  INFO(b.status().to_string());
  REQUIRE(b.is_ok());
  r.bulkd = std::move(*b);
  ClientOptions co;
  co.endpoint = r.poold->unix_endpoint();
  co.tenant = "t";
  co.model = "m";
  auto c = Client::connect(co);
  INFO(c.status().to_string());
  REQUIRE(c.is_ok());
  r.client = std::move(*c);
  std::vector<int32_t> tokens(size_t{pages} * 64);
  std::iota(tokens.begin(), tokens.end(), 7);
  r.keys = r.client->page_keys(tokens);
  auto w = testing::write_prefix(*r.client, r.keys);
  INFO(w.status().to_string());
  REQUIRE(w.is_ok());
  REQUIRE(*w == pages);
  return r;
}

std::unique_ptr<TcpReader> tcp(const Rig& r) {
  auto t = TcpReader::connect(r.bulkd->address());
  INFO(t.status().to_string());
  REQUIRE(t.is_ok());
  return std::move(*t);
}

}  // namespace

TEST_CASE("bulk fetch over TCP brings every page of every layer and stream, byte-exact against the page checksums") {
  for (uint32_t e : {1u, 4u}) {
    Rig r = start(e, 10);
    auto lease = r.client->lookup(r.keys);
    REQUIRE(lease.is_ok());
    REQUIRE(lease->pages() == 10);
    auto reader = tcp(r);
    CHECK(reader->info().geometry.slab_pages == e);
    const LocalLayout local = LocalLayout::of(lease->view());
    auto buf = LocalBuffer::create(10 * local.page_bytes);
    REQUIRE(buf.is_ok());
    FetchScratch scratch;
    REQUIRE(fetch_pages(*reader, lease->view(), lease->placements(), local, 0b11, buf->data(), BatchLimits{}, scratch).is_ok());
    // Every entry equals the daemon-side bytes in the client's own mapping...
    for (uint32_t p = 0; p < 10; ++p)
      for (int s = 0; s < 2; ++s)
        for (uint32_t l = 0; l < 3; ++l)
          for (uint32_t t = 0; t < 64; t += 21)
            CHECK(std::memcmp(buf->data() + local.offset(p, s, l, t), lease->entry(s, l, int32_t(p * 64 + t)),
                              local.entry_bytes[s]) == 0);
    // ...and every page's slab is still at the lease's generation, read over the wire.
    const Status st = verify_pages(*reader, lease->view(), lease->placements());
    INFO(st.to_string());
    CHECK(st.is_ok());
    // Payload bytes counted = useful bytes incl. stride padding of the latent, one range per page-run.
    CHECK(reader->counts().bytes >= 10ull * 3 * 64 * (656 + 132));
  }
}

TEST_CASE("verify names the page whose slab the served region no longer shows at the lease's generation") {
  Rig r = start(1, 6);
  auto lease = r.client->lookup(r.keys);
  REQUIRE(lease.is_ok());
  auto reader = tcp(r);
  const LocalLayout local = LocalLayout::of(lease->view());
  auto buf = LocalBuffer::create(6 * local.page_bytes);
  REQUIRE(buf.is_ok());
  FetchScratch scratch;
  REQUIRE(fetch_pages(*reader, lease->view(), lease->placements(), local, 0b11, buf->data(), BatchLimits{}, scratch).is_ok());
  REQUIRE(verify_pages(*reader, lease->view(), lease->placements()).is_ok());
  // Page 3's slab as the daemon publishes it after a free and a reuse: one generation on.
  const SlabGeometry& g = reader->info().geometry;
  auto* word = reinterpret_cast<uint64_t*>(lease->view().base + g.state_offset) + lease->placements()[3].slab;
  const uint64_t kept = *word;
  *word = slab_word(word_generation(kept) + 1, SlabState::kInUse);
  const Status st = verify_pages(*reader, lease->view(), lease->placements());
  *word = kept;
  CHECK(st.code() == Code::kCorrupt);
  CHECK(st.message().find("page 3 ") != std::string::npos);
  CHECK(st.message().find("generation") != std::string::npos);
  // And the bytes: one flipped bit of a fetched entry is named.
  const LocalLayout l2 = LocalLayout::of(lease->view());
  REQUIRE(verify_bytes(lease->view(), lease->placements(), l2, 0b11, buf->data()).is_ok());
  buf->data()[l2.offset(4, 1, 2, 17) + 5] ^= 0x40;
  const Status bytes = verify_bytes(lease->view(), lease->placements(), l2, 0b11, buf->data());
  CHECK(bytes.code() == Code::kCorrupt);
  CHECK(bytes.message().find("page 4 stream 1 layer 2 token 17") != std::string::npos);
}

TEST_CASE("ranged fetch over TCP returns exactly the top-k entries the local gather reads, in small batches") {
  Rig r = start(2, 12);
  auto lease = r.client->lookup(r.keys);
  REQUIRE(lease.is_ok());
  auto reader = tcp(r);
  TopkTrace trace(12 * 64, 3, 100, 0.5, 9);
  std::vector<uint8_t> got(100 * 656), want(100 * 656);
  FetchScratch scratch;
  uint64_t entries = 0;
  for (int step = 0; step < 3; ++step) {
    trace.next_step();
    for (uint32_t l = 0; l < 3; ++l) {
      const auto miss = trace.misses(l);
      REQUIRE(fetch_entries(*reader, lease->view(), lease->placements(), 0, l, miss, got.data(), BatchLimits{}, scratch).is_ok());
      REQUIRE(lease->gather_topk(0, l, miss.data(), int(miss.size()), want.data()).is_ok());
      CHECK(std::memcmp(got.data(), want.data(), miss.size() * 656) == 0);
      entries += miss.size();
    }
  }
  CHECK(reader->counts().bytes == entries * 656);
  CHECK(reader->counts().batches == 9);  // one request per (step, layer)
  // A token past the prefix is refused before anything is sent.
  const int32_t bad[] = {12 * 64};
  const Status st = fetch_entries(*reader, lease->view(), lease->placements(), 0, 0, bad, got.data(), BatchLimits{}, scratch);
  CHECK(st.code() == Code::kInvalidArgument);
}

TEST_CASE("bulkd refuses a range outside the region, naming it, and the connection stays usable") {
  Rig r = start(1, 1);
  auto reader = tcp(r);
  const uint64_t size = reader->info().region_bytes;
  std::vector<uint8_t> buf(4096);
  const Range outside[] = {{size - 100, 0, 200}};
  const Status st = reader->read(outside, buf.data(), BatchLimits{});
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find(std::to_string(size - 100)) != std::string::npos);
  const Range header[] = {{0, 0, 8}};
  REQUIRE(reader->read(header, buf.data(), BatchLimits{}).is_ok());
  CHECK(std::memcmp(buf.data(), "CXLKVRG1", 8) == 0);
}

TEST_CASE("the RDMA transport answers unavailable against a bulkd that serves TCP only") {
  Rig r = start(1, 1);
  auto reader = tcp(r);
  CHECK((reader->info().flags & wire::kInfoRdma) == 0);
  std::vector<uint8_t> buf(4096);
  auto rdma = connect_rdma(*reader, RdmaOptions{}, buf.data(), buf.size());
  CHECK(rdma.status().code() == Code::kUnavailable);
}

TEST_CASE("a region that is not a cxlkv region is refused read-only, naming it") {
  const std::string name = "/cxlkv-bulkd-test-" + std::to_string(getpid());
  const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 1 << 20) == 0);
  ::close(fd);
  auto reader = RegionReader::open({cxl::Backend::kShm, name, -1, 0});
  shm_unlink(name.c_str());
  CHECK(reader.status().code() == Code::kCorrupt);
  CHECK(reader.status().message().find(name) != std::string::npos);
}
