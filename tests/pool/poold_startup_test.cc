// The real daemon's life cycle: create or open the region, refuse the wrong one, format only on
// request, stop cleanly on SIGTERM, serve its metrics and its TCP listener.
#include <catch2/catch_test_macros.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <unistd.h>

#include <cstring>

#include "daemon_fixture.h"
#include "http_get.h"
#include "huge_pages.h"
#include "region_header.h"
#include "slab_allocator.h"
#include "tls_files.h"

using namespace cxlkv;
using namespace cxlkv::testing;

namespace {

// Reserves and commits one prefix of three pages; returns its keys.
std::vector<wire::Key> commit_three_pages(TestDaemon& d) {
  auto keys = test_keys(1, 3);
  auto c = d.client();
  const wire::Response* r = c->reserve(wire::Key(), keys);
  REQUIRE(code_of(c->commit(r->body_as_ReserveResponse()->lease(), {1, 2, 3})) == Code::kOk);
  return keys;
}

}  // namespace

TEST_CASE("a restart opens the existing region and serves the pages committed before") {
  TestDaemon d;
  REQUIRE(d.process.start());
  const auto keys = commit_three_pages(d);
  REQUIRE(d.process.stop(SIGTERM) == 0);
  REQUIRE(::access(d.socket.c_str(), F_OK) != 0);  // the socket file is gone
  REQUIRE(d.process.start());
  auto c = d.client();
  REQUIRE(c->lookup(keys)->body_as_LookupResponse()->pages()->size() == 3);
}

TEST_CASE("a region of another layout is refused with exit code 2 unless --format is given") {
  TestDaemon d;
  REQUIRE(d.process.start());
  REQUIRE(d.process.stop(SIGINT) == 0);
  auto args = TestDaemon::args(d.spec, d.socket, "64MiB", {"--layout", "deepseek-v3.2"});
  PooldProcess other(args, d.socket);
  REQUIRE_FALSE(other.start());
  REQUIRE(other.wait_exit() == 2);
  REQUIRE(other.log().find("layout") != std::string::npos);
  args.push_back("--format");
  PooldProcess formatting(args, d.socket);
  REQUIRE(formatting.start());
  auto region = cxl::Region::open(d.spec);
  REQUIRE(region.is_ok());
  REQUIRE((*region)->layout().name() == "deepseek-v3.2");
}

TEST_CASE("a region with a damaged header is refused with exit code 2") {
  TestDaemon d;
  REQUIRE(d.process.start());
  REQUIRE(d.process.stop() == 0);
  {
    auto region = cxl::Region::open(d.spec);
    REQUIRE(region.is_ok());
    (*region)->base()[20] ^= 0xff;  // inside the uuid: the header checksum no longer holds
  }
  PooldProcess again(TestDaemon::args(d.spec, d.socket, "64MiB", {}), d.socket);
  REQUIRE_FALSE(again.start());
  REQUIRE(again.wait_exit() == 2);
  REQUIRE(again.log().find("checksum") != std::string::npos);
}

TEST_CASE("a region of format 1 is refused naming the way out, and --format makes it one of format 2") {
  TestDaemon d;
  REQUIRE(d.process.start());
  REQUIRE(d.process.stop() == 0);
  {
    auto region = cxl::Region::open(d.spec);
    REQUIRE(region.is_ok());
    auto* h = reinterpret_cast<cxl::RegionHeader*>((*region)->base());
    h->format_version = 1;  // as a daemon before the records moved out of the region wrote it
    h->checksum = cxl::region_header_checksum(*h);
  }
  PooldProcess old(TestDaemon::args(d.spec, d.socket, "64MiB", {}), d.socket);
  REQUIRE_FALSE(old.start());
  REQUIRE(old.wait_exit() == 2);
  CHECK(old.log().find("format version 1") != std::string::npos);
  CHECK(old.log().find("--format") != std::string::npos);
  PooldProcess formatting(TestDaemon::args(d.spec, d.socket, "64MiB", {"--format"}), d.socket);
  REQUIRE(formatting.start());
  auto region = cxl::Region::open(d.spec);
  REQUIRE(region.is_ok());
  CHECK((*region)->header().format_version == cxl::kRegionFormatVersion);
}

TEST_CASE("a region whose metadata region is gone is refused: its pages cannot be served") {
  TestDaemon d;
  REQUIRE(d.process.start());
  REQUIRE(d.process.stop() == 0);
  const cxl::RegionSpec metadata = *cxl::Region::metadata_spec_for(d.spec);
  REQUIRE(::shm_unlink(metadata.path.c_str()) == 0);
  PooldProcess again(TestDaemon::args(d.spec, d.socket, "64MiB", {}), d.socket);
  REQUIRE_FALSE(again.start());
  REQUIRE(again.wait_exit() == 2);
  CHECK(again.log().find(metadata.path) != std::string::npos);
  CHECK(again.log().find("--format") != std::string::npos);
}

TEST_CASE("a first start whose metadata region cannot be made leaves no region behind") {
  TestDaemon d;
  PooldProcess bad(TestDaemon::args(d.spec, d.socket, "64MiB", {"--metadata", "file:/nonexistent-cxlkv-dir/x.meta"}),
                   d.socket);
  REQUIRE_FALSE(bad.start());
  REQUIRE(bad.wait_exit() == 2);
  CHECK(bad.log().find("/nonexistent-cxlkv-dir/x.meta") != std::string::npos);
  CHECK(cxl::Region::open(d.spec).status().code() == Code::kNotFound);  // the region it made is gone again
  REQUIRE(d.process.start());  // so the next start makes both
}

TEST_CASE("a metadata path that holds anything but a cxlkv metadata region is left as it is") {
  TestDaemon d;
  const std::string path = "/dev/shm" + unique_name("not-metadata", true);
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("an operator's file\n", f);
    std::fclose(f);
  }
  PooldProcess bad(TestDaemon::args(d.spec, d.socket, "64MiB", {"--metadata", "file:" + path}), d.socket);
  REQUIRE_FALSE(bad.start());
  REQUIRE(bad.wait_exit() == 2);
  CHECK(bad.log().find("is not a cxlkv metadata region") != std::string::npos);
  std::FILE* f = std::fopen(path.c_str(), "r");
  REQUIRE(f != nullptr);
  char line[64] = {};
  CHECK(std::fgets(line, sizeof line, f) != nullptr);
  std::fclose(f);
  CHECK(std::string(line) == "an operator's file\n");
  std::remove(path.c_str());
}

TEST_CASE("a client's stores into everything of its mapping before the slabs lose no committed page") {
  TestDaemon d;
  REQUIRE(d.process.start());
  const auto keys = commit_three_pages(d);
  // What a writer maps: the region header, then the published allocator header and slab words.
  // The page records and the allocator's own words are not in it (region format 2).
  auto region = cxl::Region::open(d.spec);
  REQUIRE(region.is_ok());
  const SlabGeometry g = *SlabAllocator::read_geometry(**region);
  std::memset((*region)->base() + (*region)->data_offset(), 0x5B, g.slab_area_offset - (*region)->data_offset());
  REQUIRE_FALSE(SlabAllocator::read_geometry(**region).is_ok());
  REQUIRE(d.process.stop(SIGKILL) != 0);
  REQUIRE(d.process.start());
  auto c = d.client();
  CHECK(c->lookup(keys)->body_as_LookupResponse()->pages()->size() == 3);
  // The published copies are the daemon's again: clients read the geometry and the words.
  auto again = SlabAllocator::read_geometry(**region);
  REQUIRE(again.is_ok());
  CHECK(std::memcmp(&*again, &g, sizeof g) == 0);
}

TEST_CASE("a second daemon on the same region or socket is refused while the first serves") {
  TestDaemon d;
  REQUIRE(d.process.start());
  PooldProcess twin(TestDaemon::args(d.spec, unique_name("twin"), "64MiB", {}), unique_name("twin"));
  REQUIRE(twin.launch());
  REQUIRE(twin.wait_exit() == 2);
  REQUIRE(d.process.running());
}

TEST_CASE("GET /metrics serves Prometheus text with pool counters and per-op latency histograms") {
  const uint16_t port = *free_tcp_port();
  TestDaemon d({"--metrics-port", std::to_string(port)});
  REQUIRE(d.process.start());
  auto c = d.client();
  REQUIRE(code_of(c->lookup(test_keys(1, 2))) == Code::kOk);
  const std::string body = http_get(port, "/metrics");
  REQUIRE(body.find("200 OK") != std::string::npos);
  for (const char* name : {"cxlkv_pages_committed 0", "cxlkv_slabs_free ", "cxlkv_lookup_misses_total 1",
                           "cxlkv_evictions_total 0", "cxlkv_read_leases 0",
                           "cxlkv_request_seconds_count{op=\"lookup\"} 1", "cxlkv_connections 1"})
    REQUIRE(body.find(name) != std::string::npos);
  // What the node is: its region (backend:path, layout, this start's epoch) and its size; a lone
  // node says nothing of a cluster.
  CHECK(body.find("cxlkv_region_info{region=\"shm:") != std::string::npos);
  CHECK(body.find("cxlkv_region_bytes{region=\"shm:") != std::string::npos);
  CHECK(body.find("cxlkv_cluster_registered") == std::string::npos);
  REQUIRE(http_get(port, "/other").find("404") != std::string::npos);
}

TEST_CASE("the TCP listener speaks the same protocol as the Unix socket") {
  const uint16_t port = *free_tcp_port();
  TestDaemon d({"--tcp", "127.0.0.1:" + std::to_string(port)});
  REQUIRE(d.process.start());
  const int fd = connect_tcp(port);
  REQUIRE(fd >= 0);
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateRequest(fbb, 1, wire::RequestBody::HelloRequest,
                                 wire::CreateHelloRequestDirect(fbb, 1, "t", "x", "m", true).Union()));
  REQUIRE(wire::write_frame(fd, fbb.GetBufferPointer(), static_cast<uint32_t>(fbb.GetSize())).is_ok());
  std::vector<uint8_t> reply;
  REQUIRE(wire::read_frame(fd, reply).is_ok());
  auto r = wire::verify_response(reply.data(), reply.size());
  REQUIRE(r.is_ok());
  REQUIRE((*r)->code() == 0);
  REQUIRE_FALSE((*r)->body_as_HelloResponse()->fd_attached());  // no fd over TCP
  ::close(fd);
}

TEST_CASE("the Unix socket gets its configured mode whatever the umask, and an unknown group is refused") {
  struct stat st{};
  const mode_t old_umask = ::umask(0);  // the daemon inherits it: the widest a careless operator sets
  {
    TestDaemon d;
    REQUIRE(d.process.start());
    REQUIRE(::stat(d.socket.c_str(), &st) == 0);
    REQUIRE((st.st_mode & 0777) == 0660);
  }
  {
    TestDaemon d({"--socket-mode", "0600", "--socket-group", "root"});
    REQUIRE(d.process.start());
    REQUIRE(::stat(d.socket.c_str(), &st) == 0);
    REQUIRE((st.st_mode & 0777) == 0600);
    REQUIRE(st.st_gid == 0);
  }
  ::umask(old_umask);
  TestDaemon bad({"--socket-group", "cxlkv-no-such-group"});
  REQUIRE_FALSE(bad.process.start());
  REQUIRE(bad.process.wait_exit() != 0);
  REQUIRE(bad.process.log().find("cxlkv-no-such-group") != std::string::npos);
}

TEST_CASE("GET /healthz and /readyz answer 200 on a daemon that serves") {
  const uint16_t port = *free_tcp_port();
  TestDaemon d({"--metrics-port", std::to_string(port)});
  REQUIRE(d.process.start());  // the control plane answers: recovery done, listening
  const std::string health = http_get(port, "/healthz");
  REQUIRE(health.find("200 OK") != std::string::npos);
  REQUIRE(health.find("ok") != std::string::npos);
  const std::string ready = http_get(port, "/readyz");
  REQUIRE(ready.find("200 OK") != std::string::npos);
  REQUIRE(ready.find("ready") != std::string::npos);
  REQUIRE(http_get(port, "/ready").find("404") != std::string::npos);
}

TEST_CASE("with no tenants the daemon refuses a non-loopback TCP listener and says why") {
  TestDaemon open_auth({"--tcp", "0.0.0.0:" + std::to_string(*free_tcp_port())});
  REQUIRE_FALSE(open_auth.process.start());
  REQUIRE(open_auth.process.wait_exit() == 2);
  REQUIRE(open_auth.process.log().find("no tenants configured") != std::string::npos);
  // With a tenant the same listener starts (auth is on; --insecure-tcp: no TLS); loopback without
  // tenants stays allowed.
  TestDaemon with_tenant({"--tcp", "0.0.0.0:" + std::to_string(*free_tcp_port()), "--tenant", "t:x", "--insecure-tcp"});
  REQUIRE(with_tenant.process.start());
  TestDaemon loopback({"--tcp", "127.0.0.1:" + std::to_string(*free_tcp_port())});
  REQUIRE(loopback.process.start());
}

TEST_CASE("a non-loopback TCP listener needs TLS unless --insecure-tcp says the network is trusted") {
  const std::vector<std::string> tls = {"--tls-certificate", tls_file("server.pem"), "--tls-private-key",
                                        tls_file("server.key")};
  TestDaemon plain({"--tcp", "0.0.0.0:" + std::to_string(*free_tcp_port()), "--tenant", "t:x"});
  REQUIRE_FALSE(plain.process.start());
  REQUIRE(plain.process.wait_exit() == 2);
  REQUIRE(plain.process.log().find("without TLS") != std::string::npos);

  std::vector<std::string> with_tls = {"--tcp", "0.0.0.0:" + std::to_string(*free_tcp_port()), "--tenant", "t:x"};
  with_tls.insert(with_tls.end(), tls.begin(), tls.end());
  TestDaemon secured(with_tls);
  REQUIRE(secured.process.start());

  // Bad TLS settings stop the start with the file named; nothing listens.
  TestDaemon no_key({"--tcp", "127.0.0.1:" + std::to_string(*free_tcp_port()), "--tls-certificate",
                     tls_file("server.pem")});
  REQUIRE_FALSE(no_key.process.start());
  REQUIRE(no_key.process.wait_exit() == 2);
  REQUIRE(no_key.process.log().find("both a certificate and a private key") != std::string::npos);
  TestDaemon missing({"--tcp", "127.0.0.1:" + std::to_string(*free_tcp_port()), "--tls-certificate",
                      tls_file("absent.pem"), "--tls-private-key", tls_file("server.key")});
  REQUIRE_FALSE(missing.process.start());
  REQUIRE(missing.process.wait_exit() == 2);
  REQUIRE(missing.process.log().find("absent.pem") != std::string::npos);
  // A key that is not the certificate's (the CA certificate is no key at all).
  TestDaemon wrong_key({"--tcp", "127.0.0.1:" + std::to_string(*free_tcp_port()), "--tls-certificate",
                        tls_file("server.pem"), "--tls-private-key", tls_file("ca.pem")});
  REQUIRE_FALSE(wrong_key.process.start());
  REQUIRE(wrong_key.process.wait_exit() == 2);
  REQUIRE(wrong_key.process.log().find("TLS private key") != std::string::npos);
}

TEST_CASE("TCP connections from one address are capped; the Unix socket and other peers are served") {
  const uint16_t port = *free_tcp_port();
  TestDaemon d({"--tcp", "127.0.0.1:" + std::to_string(port), "--max-connections-per-address", "2"});
  REQUIRE(d.process.start());
  const int a = connect_tcp(port), b = connect_tcp(port);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  auto served = d.client();  // the two are admitted before the third connects
  const int c = connect_tcp(port);
  REQUIRE(c >= 0);  // accepted by the kernel, then answered `exhausted` and closed by the daemon
  std::vector<uint8_t> reply;
  REQUIRE(wire::read_frame(c, reply).is_ok());
  auto r = wire::verify_response(reply.data(), reply.size());
  REQUIRE(r.is_ok());
  REQUIRE(static_cast<Code>((*r)->code()) == Code::kExhausted);
  REQUIRE((*r)->message()->str().find("from one address") != std::string::npos);
  ::close(c);
  ::close(a);  // a place frees up
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    const int e = connect_tcp(port);
    pollfd p{e, POLLIN, 0};
    admitted = ::poll(&p, 1, 100) == 0;  // no refusal arrives: admitted
    ::close(e);
  }
  REQUIRE(admitted);
  REQUIRE(code_of(served->stats()) == Code::kOk);
  ::close(b);
}

TEST_CASE("--huge-pages require starts only where this machine gives the region huge pages, and says why not") {
  // The decision is the library's (place_region, tested case by case in huge_pages_test); here the
  // daemon must act on it: start and log the pages, or exit 2 naming what the machine lacks.
  TestDaemon strict({"--huge-pages", "require", "--log-level", "info"});
  cxl::RegionSpec spec = strict.spec;
  spec.size = 64ull << 20;  // TestDaemon's default size
  auto expected = cxl::place_region(spec, cxl::HugePagePolicy::kRequire, cxl::probe_huge_pages(),
                                    [](const std::string& p) { return ::access(p.c_str(), F_OK) == 0; });
  if (expected.is_ok()) {
    REQUIRE(strict.process.start());
    CHECK(strict.process.log().find("(huge pages require;") != std::string::npos);
    CHECK(strict.process.log().find("for 2 MiB pages") == std::string::npos);
    REQUIRE(strict.process.stop() == 0);
    if (expected->spec.backend != cxl::Backend::kShm) (void)cxl::Region::remove(expected->spec);
  } else {
    REQUIRE_FALSE(strict.process.start());
    REQUIRE(strict.process.wait_exit() == 2);
    CHECK(strict.process.log().find("huge pages required") != std::string::npos);
    CHECK(strict.process.log().find("shmem THP") != std::string::npos);
    CHECK(::access(("/dev/shm" + strict.spec.path).c_str(), F_OK) != 0);  // nothing created
  }
  // auto always starts, logging the pages it got (and, with 4 KiB pages, how to get huge ones).
  TestDaemon fallback({"--huge-pages", "auto", "--log-level", "info"});
  REQUIRE(fallback.process.start());
  CHECK(fallback.process.log().find("(huge pages auto;") != std::string::npos);
  spec = fallback.spec;
  spec.size = 64ull << 20;
  auto placed = cxl::place_region(spec, cxl::HugePagePolicy::kAuto, cxl::probe_huge_pages(),
                                  [](const std::string&) { return false; });
  REQUIRE(placed.is_ok());
  if (!placed->huge) CHECK(fallback.process.log().find("for 2 MiB pages") != std::string::npos);
  REQUIRE(fallback.process.stop() == 0);
  if (placed->spec.backend != cxl::Backend::kShm) (void)cxl::Region::remove(placed->spec);
}
