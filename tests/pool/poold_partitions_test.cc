// The real daemon serving two partitions bound to two tenants: each session is handed its own
// tenant's region only, so a tenant storing through every byte it can map leaves the other's pages
// as they were; a reserve that cannot fit one partition evicts nothing in the other; stats,
// metrics and recovery are per partition; a binding to no partition is a configuration error.
#include <catch2/catch_test_macros.hpp>

#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>

#include "daemon_fixture.h"
#include "http_get.h"

using namespace cxlkv;
using namespace cxlkv::testing;

namespace {

// A daemon whose [region] ("main", 64 MiB) serves tenant a, and a partition "b" (its own shm
// object, 32 MiB) serves tenant b.
struct TwoPartitions {
  cxl::RegionSpec b_spec{cxl::Backend::kShm, unique_name("region-b", true), -1, 0};
  RegionCleanup b_cleanup{b_spec};
  TestDaemon d;

  explicit TwoPartitions(std::vector<std::string> extra = {})
      : d(flags(b_spec, std::move(extra))) {}
  static std::vector<std::string> flags(const cxl::RegionSpec& b, std::vector<std::string> extra) {
    std::vector<std::string> f = {"--tenant", "a:ta", "--tenant", "b:tb", "--partition", "b=shm:" + b.path + ":32MiB",
                                  "--tenant-partition", "b=b"};
    f.insert(f.end(), extra.begin(), extra.end());
    return f;
  }
};

// The mapping of the region fd a Hello handed `c` (read-write), or fails the test.
struct HandedMapping {
  uint8_t* base = nullptr;
  size_t size = 0;
  explicit HandedMapping(const RawClient& c) {
    struct stat st {};
    REQUIRE(c.received_fd() >= 0);
    REQUIRE(::fstat(c.received_fd(), &st) == 0);
    size = size_t(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, c.received_fd(), 0);
    REQUIRE(p != MAP_FAILED);
    base = static_cast<uint8_t*>(p);
  }
  ~HandedMapping() { ::munmap(base, size); }
};

// Reserves `n` pages of chain `chain` and commits them (zero checksums); returns the placements
// the reserve gave.
std::vector<wire::Placement> commit_chain(RawClient& c, uint64_t chain, int n) {
  const wire::Response* r = c.reserve(wire::Key(), test_keys(chain, n));
  REQUIRE(code_of(r) == Code::kOk);
  const auto* reserved = r->body_as_ReserveResponse();
  std::vector<wire::Placement> placements;
  for (const wire::Placement* pl : *reserved->pages()) placements.push_back(*pl);
  REQUIRE(code_of(c.commit(reserved->lease(), std::vector<uint64_t>(n, 0))) == Code::kOk);
  return placements;
}

}  // namespace

TEST_CASE("each tenant is handed its own partition: stores through everything another tenant maps leave its pages intact") {
  TwoPartitions p;
  REQUIRE(p.d.process.start());
  RawClient a(p.d.socket), b(p.d.socket);
  const wire::Response* ha = a.hello("a", "ta", "m", true);
  REQUIRE(code_of(ha) == Code::kOk);
  REQUIRE(ha->body_as_HelloResponse()->region()->path()->str() == p.d.spec.path);
  const wire::Response* hb = b.hello("b", "tb", "m", true);
  REQUIRE(code_of(hb) == Code::kOk);
  REQUIRE(hb->body_as_HelloResponse()->region()->path()->str() == p.b_spec.path);
  struct stat sa {}, sb {};
  REQUIRE(::fstat(a.received_fd(), &sa) == 0);
  REQUIRE(::fstat(b.received_fd(), &sb) == 0);
  REQUIRE((sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino));  // two objects, not one
  REQUIRE(sa.st_size == 64 << 20);
  REQUIRE(sb.st_size == 32 << 20);

  // Tenant a writes a pattern into its pages' slabs and commits them.
  HandedMapping ma(a);
  const auto placements = commit_chain(a, 1, 4);
  for (const wire::Placement& pl : placements) std::memset(ma.base + pl.slab_offset(), 0xA5, 4096);
  // Tenant b stores into every byte of every mapping it was handed (its whole partition).
  {
    HandedMapping mb(b);
    std::memset(mb.base, 0x5B, mb.size);
  }
  for (const wire::Placement& pl : placements)
    for (size_t i = 0; i < 4096; ++i) REQUIRE(ma.base[pl.slab_offset() + i] == 0xA5);
  const wire::Response* r = a.lookup(test_keys(1, 4));
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 4);
  // b cannot see a's pages either: its lookup of a's keys (another namespace and partition) misses.
  r = b.lookup(test_keys(1, 4));
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 0);
}

TEST_CASE("a reserve that cannot fit its partition evicts nothing in another, and stats count each partition alone") {
  TwoPartitions p;
  REQUIRE(p.d.process.start());
  auto a = p.d.client("m", "a", "ta");
  auto b = p.d.client("m", "b", "tb");
  commit_chain(*a, 1, 8);
  const uint64_t a_total = stats_of(*a)->slabs_total();
  const uint64_t b_total = stats_of(*b)->slabs_total();
  REQUIRE(a_total > b_total);  // 64 MiB against 32 MiB
  REQUIRE(stats_of(*a)->pages_committed() == 8);
  REQUIRE(stats_of(*b)->pages_committed() == 0);
  const wire::Response* r = b->reserve(wire::Key(), test_keys(9, int(b_total) + 1));
  REQUIRE(code_of(r) == Code::kExhausted);
  for (uint64_t chain = 10; chain < 20 + b_total; ++chain) commit_chain(*b, chain, 1);  // past full: b's own go
  REQUIRE(stats_of(*b)->evictions() > 0);
  REQUIRE(stats_of(*a)->evictions() == 0);
  r = a->lookup(test_keys(1, 8));
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 8);
}

TEST_CASE("metrics label each partition, and a restart recovers each partition's pages into it") {
  const uint16_t port = *free_tcp_port();
  TwoPartitions p({"--metrics-port", std::to_string(port)});
  REQUIRE(p.d.process.start());
  {
    auto a = p.d.client("m", "a", "ta");
    auto b = p.d.client("m", "b", "tb");
    commit_chain(*a, 1, 3);
    commit_chain(*b, 2, 5);
  }
  const std::string body = http_get(port, "/metrics");
  CHECK(body.find("cxlkv_pages_committed 8") != std::string::npos);  // summed over partitions
  CHECK(body.find("cxlkv_partition_pages_committed{partition=\"main\",region=\"shm:" + p.d.spec.path + "\"} 3") !=
        std::string::npos);
  CHECK(body.find("cxlkv_partition_pages_committed{partition=\"b\",region=\"shm:" + p.b_spec.path + "\"} 5") !=
        std::string::npos);
  p.d.process.kill9();
  REQUIRE(p.d.process.start());
  auto a = p.d.client("m", "a", "ta");
  auto b = p.d.client("m", "b", "tb");
  REQUIRE(a->lookup(test_keys(1, 3))->body_as_LookupResponse()->pages()->size() == 3);
  REQUIRE(b->lookup(test_keys(2, 5))->body_as_LookupResponse()->pages()->size() == 5);
  REQUIRE(stats_of(*a)->pages_committed() == 3);
  REQUIRE(stats_of(*b)->pages_committed() == 5);
}

TEST_CASE("a tenant bound to no partition, a partition bound to no tenant, or partitions without tenants are refused") {
  const cxl::RegionSpec b_spec{cxl::Backend::kShm, unique_name("region-b", true), -1, 0};
  RegionCleanup b_cleanup{b_spec};
  const std::string partition = "b=shm:" + b_spec.path + ":32MiB";
  struct Case {
    std::vector<std::string> flags;
    const char* says;
  };
  const Case cases[] = {
      {{"--tenant", "a:ta", "--tenant-partition", "a=nowhere"}, "partition 'nowhere' is not one of the daemon's"},
      {{"--tenant", "a:ta", "--partition", partition}, "partition 'b' is bound to no tenant"},
      {{"--partition", partition}, "no tenants: partitions are bound to tenants"},
      {{"--tenant", "a:ta", "--tenant", "b:tb", "--partition", "b=shm:", "--tenant-partition", "b=b"},
       "partition 'b' needs a path"},
  };
  for (const Case& c : cases) {
    TestDaemon d(c.flags);
    REQUIRE_FALSE(d.process.start());
    REQUIRE(d.process.wait_exit() == 2);
    INFO(d.process.log());
    REQUIRE(d.process.log().find(c.says) != std::string::npos);
  }
}

TEST_CASE("the admin role is a tenant's only where configured: no fd, no page ops, the open-auth daemon has none") {
  TwoPartitions p({"--tenant", "ops:to", "--tenant-roles", "ops=admin"});
  REQUIRE(p.d.process.start());
  RawClient admin(p.d.socket);
  const wire::Response* h = admin.hello("ops", "to", "m", true, wire::Role::Admin);
  REQUIRE(code_of(h) == Code::kOk);
  CHECK(admin.received_fd() < 0);  // asked for, not handed
  CHECK_FALSE(h->body_as_HelloResponse()->fd_attached());
  const wire::Response* r = admin.reserve(wire::Key(), test_keys(1, 1));
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  CHECK(r->message()->str().find("is an admin session") != std::string::npos);
  CHECK(code_of(admin.lookup(test_keys(1, 1))) == Code::kPermissionDenied);
  CHECK(code_of(admin.stats()) == Code::kOk);
  RawClient not_admin(p.d.socket);  // a tenant without the role
  r = not_admin.hello("a", "ta", "m", true, wire::Role::Admin);
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  CHECK(r->message()->str().find("tenant 'a' may not take the role admin") != std::string::npos);
  RawClient ops_writer(p.d.socket);  // an admin-only tenant may not write
  CHECK(code_of(ops_writer.hello("ops", "to", "m", true)) == Code::kPermissionDenied);

  TestDaemon open_auth;
  REQUIRE(open_auth.process.start());
  RawClient anyone(open_auth.socket);
  r = anyone.hello("t", "x", "m", true, wire::Role::Admin);
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  CHECK(r->message()->str().find("the admin role needs a tenant configured with it") != std::string::npos);
}

TEST_CASE("an admin drains the node: reserves refused in every partition, reads and open leases served; resume ends it") {
  const uint16_t port = *free_tcp_port();
  TwoPartitions p({"--tenant", "ops:to", "--tenant-roles", "ops=admin", "--metrics-port", std::to_string(port)});
  REQUIRE(p.d.process.start());
  auto a = p.d.client("m", "a", "ta");
  auto b = p.d.client("m", "b", "tb");
  commit_chain(*a, 1, 3);
  const wire::Response* r = b->reserve(wire::Key(), test_keys(2, 4));
  REQUIRE(code_of(r) == Code::kOk);
  const uint64_t open_lease = r->body_as_ReserveResponse()->lease();
  CHECK(http_get(port, "/metrics").find("cxlkv_node_draining 0") != std::string::npos);

  RawClient admin(p.d.socket);
  REQUIRE(code_of(admin.hello("ops", "to", "m", false, wire::Role::Admin)) == Code::kOk);
  r = admin.drain(true);
  REQUIRE(code_of(r) == Code::kOk);
  const auto* d = r->body_as_DrainResponse();
  CHECK(d->draining());
  CHECK(d->write_leases() == 1);
  CHECK(d->pages_committed() == 3);
  CHECK(http_get(port, "/metrics").find("cxlkv_node_draining 1") != std::string::npos);
  for (RawClient* c : {a.get(), b.get()}) {
    r = c->reserve(wire::Key(), test_keys(9, 1));
    REQUIRE(code_of(r) == Code::kBusy);
    CHECK(r->message()->str().find("draining") != std::string::npos);
  }
  CHECK(a->lookup(test_keys(1, 3))->body_as_LookupResponse()->pages()->size() == 3);
  CHECK(code_of(b->commit(open_lease, std::vector<uint64_t>(4, 0))) == Code::kOk);
  CHECK(b->lookup(test_keys(2, 4))->body_as_LookupResponse()->pages()->size() == 4);
  r = a->drain(false);  // a tenant's session may not end it
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  CHECK(r->message()->str().find("not an admin session") != std::string::npos);
  r = admin.drain(false, /*ask=*/true);  // only asks: the drain stands, now with no write lease open
  REQUIRE(code_of(r) == Code::kOk);
  CHECK(r->body_as_DrainResponse()->draining());
  CHECK(r->body_as_DrainResponse()->write_leases() == 0);
  CHECK(r->body_as_DrainResponse()->pages_committed() == 7);

  r = admin.drain(false);
  REQUIRE(code_of(r) == Code::kOk);
  CHECK_FALSE(r->body_as_DrainResponse()->draining());
  CHECK(http_get(port, "/metrics").find("cxlkv_node_draining 0") != std::string::npos);
  commit_chain(*a, 3, 2);
}

TEST_CASE("ListPages walks a session's own committed pages with their parents, none of another namespace's") {
  TwoPartitions p({"--tenant", "ops:to", "--tenant-roles", "ops=admin"});
  REQUIRE(p.d.process.start());
  auto a = p.d.client("m", "a", "ta");
  auto a2 = p.d.client("m2", "a", "ta");  // the same tenant, another model: another namespace
  commit_chain(*a, 1, 5);
  commit_chain(*a2, 2, 4);
  REQUIRE(code_of(a->reserve(wire::Key(), test_keys(3, 2))) == Code::kOk);  // reserved, not committed
  const std::vector<wire::Key> chain = test_keys(1, 5);
  std::vector<std::pair<wire::Key, wire::Key>> listed;
  uint64_t slot = 0;
  int answers = 0;
  for (bool done = false; !done; ++answers) {
    const wire::Response* r = a->list_pages(slot, 2);
    REQUIRE(code_of(r) == Code::kOk);
    const auto* l = r->body_as_ListPagesResponse();
    CHECK(l->pages()->size() <= 2);
    for (const wire::ListedPage* page : *l->pages()) listed.emplace_back(page->key(), page->parent());
    done = l->done();
    REQUIRE((done || l->next_slot() > slot));
    slot = l->next_slot();
  }
  CHECK(answers >= 3);  // 5 pages, 2 an answer
  REQUIRE(listed.size() == 5);
  auto same = [](const wire::Key& x, const wire::Key& y) { return std::memcmp(&x, &y, sizeof x) == 0; };
  for (size_t i = 0; i < chain.size(); ++i) {
    auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& e) { return same(e.first, chain[i]); });
    REQUIRE(it != listed.end());
    CHECK(same(it->second, i == 0 ? wire::Key() : chain[i - 1]));
  }
  const wire::Response* r = a2->list_pages(0, 0);  // max 0: up to max_keys
  REQUIRE(code_of(r) == Code::kOk);
  CHECK(r->body_as_ListPagesResponse()->pages()->size() == 4);
  CHECK(r->body_as_ListPagesResponse()->done());
  r = a->list_pages(uint64_t{1} << 40, 8);  // past the last slot: done, nothing
  REQUIRE(code_of(r) == Code::kOk);
  CHECK(r->body_as_ListPagesResponse()->pages()->size() == 0);
  CHECK(r->body_as_ListPagesResponse()->done());
  RawClient admin(p.d.socket);
  REQUIRE(code_of(admin.hello("ops", "to", "m", false, wire::Role::Admin)) == Code::kOk);
  CHECK(code_of(admin.list_pages(0, 8)) == Code::kPermissionDenied);  // an admin reads no pages
}

TEST_CASE("ListPages answers fit a frame: a namespace of more pages than one frame holds is listed whole, in parts") {
  testing::PooldOptions o;
  o.layout = "custom:name=tiny,layers=1,page_tokens=64,stream=latent/16/16/sparse";  // 1 KiB pages
  o.size = "64MiB";
  o.slab_pages = 8;
  auto d = testing::PooldProcess::start(o);
  INFO(d.status().to_string());
  REQUIRE(d.is_ok());
  RawClient c((*d)->socket_path());
  REQUIRE(code_of(c.hello("t", "x", "m")) == Code::kOk);
  constexpr uint32_t kPages = 17000;  // more than (1 MiB - 4 KiB) / 64 B a listed page = 16,320
  for (uint32_t first = 0; first < kPages; first += 4000) {
    const uint32_t n = std::min(4000u, kPages - first);
    std::vector<wire::Key> keys = test_keys(7, n, first);
    const wire::Response* r = c.reserve(first == 0 ? wire::Key() : test_key(7, first - 1), keys);
    REQUIRE(code_of(r) == Code::kOk);
    REQUIRE(code_of(c.commit(r->body_as_ReserveResponse()->lease(), std::vector<uint64_t>(n, 0))) == Code::kOk);
  }
  uint64_t slot = 0, listed = 0;
  uint32_t largest = 0;
  for (bool done = false; !done;) {
    const wire::Response* r = c.list_pages(slot, 0);  // 0: as many as may be
    REQUIRE(code_of(r) == Code::kOk);  // a frame the client could read
    const auto* l = r->body_as_ListPagesResponse();
    largest = std::max(largest, l->pages()->size());
    listed += l->pages()->size();
    done = l->done();
    slot = l->next_slot();
  }
  CHECK(listed == kPages);
  CHECK(largest <= (wire::kMaxFrameBytes - 4096) / sizeof(wire::ListedPage));
  CHECK(largest > 16000);
}
