// The real cxlkv-poold against docs/protocol.md: bad frames, sessions, tenants, namespaces,
// lease ids, and a client that dies holding leases. Each test starts its own daemon.
#include <catch2/catch_test_macros.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "daemon_fixture.h"

using namespace cxlkv;
using namespace cxlkv::testing;
using namespace std::chrono_literals;

namespace {

// The other client is still served: its Stats call answers.
void require_served(RawClient& other) { REQUIRE(code_of(other.stats()) == Code::kOk); }

wire::FrameHeader header(uint16_t magic, uint16_t version, uint32_t length) { return {magic, version, length}; }

// Reserves and commits `n` pages of chain `chain` (zero checksums); returns the keys.
std::vector<wire::Key> commit_pages(RawClient& c, uint64_t chain, int n) {
  auto keys = test_keys(chain, n);
  const wire::Response* r = c.reserve(wire::Key(), keys);
  REQUIRE(code_of(r) == Code::kOk);
  const uint64_t lease = r->body_as_ReserveResponse()->lease();
  r = c.commit(lease, std::vector<uint64_t>(n, 0));
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_CommitResponse()->committed() == static_cast<uint32_t>(n));
  return keys;
}

}  // namespace

TEST_CASE("a frame header with bad magic, bad version or oversized length closes only that connection") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto other = d.client();
  const wire::FrameHeader bad[] = {header(0x1234, wire::kProtocolVersion, 16), header(wire::kFrameMagic, 2, 16),
                                   header(wire::kFrameMagic, wire::kProtocolVersion, wire::kMaxFrameBytes + 1),
                                   header(wire::kFrameMagic, wire::kProtocolVersion, 0)};
  for (const wire::FrameHeader& h : bad) {
    RawClient c(d.socket);
    REQUIRE(c.send_raw(&h, sizeof h));
    CHECK(c.closed_by_peer());
    require_served(*other);
  }
  REQUIRE(d.process.stop() == 0);  // a clean exit: no leak or sanitizer report after bad frames
}

TEST_CASE("a truncated frame ends that connection and the daemon keeps serving others") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto other = d.client();
  {
    RawClient c(d.socket);
    const wire::FrameHeader h = header(wire::kFrameMagic, wire::kProtocolVersion, 100);
    REQUIRE(c.send_raw(&h, sizeof h));
    REQUIRE(c.send_raw("0123456789", 10));
    ::shutdown(c.fd(), SHUT_WR);
    CHECK(c.closed_by_peer());
  }
  require_served(*other);
  REQUIRE(d.process.stop() == 0);
}

TEST_CASE("a frame whose FlatBuffer fails verification gets a protocol error and the connection stays usable") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto other = d.client();
  RawClient c(d.socket);
  std::vector<uint8_t> garbage(64);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
  const wire::FrameHeader h = header(wire::kFrameMagic, wire::kProtocolVersion, 64);
  REQUIRE(c.send_raw(&h, sizeof h));
  REQUIRE(c.send_raw(garbage.data(), garbage.size()));
  const wire::Response* r = c.receive();
  REQUIRE(code_of(r) == Code::kProtocol);
  // Still the same connection, and Hello still works on it.
  REQUIRE(code_of(c.hello("t", "x", "m")) == Code::kOk);
  require_served(*other);
}

TEST_CASE("any op before hello is refused with permission denied and the connection closes") {
  TestDaemon d;
  REQUIRE(d.process.start());
  RawClient c(d.socket);
  REQUIRE(code_of(c.lookup(test_keys(1, 2))) == Code::kPermissionDenied);
  CHECK(c.closed_by_peer());
  RawClient c2(d.socket);
  REQUIRE(code_of(c2.stats()) == Code::kPermissionDenied);
}

TEST_CASE("hello with a wrong token or an unknown tenant is refused; the right token opens a session") {
  TestDaemon d({"--tenant", "alice:secret-a", "--tenant", "bob:secret-b"});
  REQUIRE(d.process.start());
  RawClient c(d.socket);
  REQUIRE(code_of(c.hello("alice", "secret-b", "m")) == Code::kPermissionDenied);
  REQUIRE(code_of(c.hello("mallory", "secret-a", "m")) == Code::kPermissionDenied);
  REQUIRE(code_of(c.stats()) == Code::kPermissionDenied);  // still no session
  RawClient ok(d.socket);
  const wire::Response* r = ok.hello("alice", "secret-a", "m", /*want_fd=*/true);
  REQUIRE(code_of(r) == Code::kOk);
  const wire::HelloResponse* h = r->body_as_HelloResponse();
  REQUIRE(h->session() != 0);
  REQUIRE(h->fd_attached());
  REQUIRE(ok.received_fd() >= 0);
  REQUIRE(h->region()->layout()->size() == sizeof(LayoutRecord));
  // The daemon never logs a token.
  REQUIRE(d.process.log().find("secret-b") == std::string::npos);
}

TEST_CASE("pages committed under one model are invisible to another model and to another tenant") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto a = d.client("model-a", "t");
  auto b = d.client("model-b", "t");
  auto other_tenant = d.client("model-a", "u");
  const auto keys = commit_pages(*a, 7, 4);
  const wire::Response* r = b->lookup(keys);
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->lease() == 0);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 0);
  r = other_tenant->lookup(keys);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 0);
  REQUIRE(code_of(b->remove(keys)) == Code::kOk);  // removes nothing of model-a
  r = a->lookup(keys);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 4);
  REQUIRE(r->body_as_LookupResponse()->lease() != 0);
}

TEST_CASE("lookup returns the longest committed prefix in key order") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto c = d.client();
  const auto keys = commit_pages(*c, 3, 5);
  auto longer = keys;
  longer.push_back(test_key(3, 5));
  longer.push_back(test_key(3, 6));
  const wire::Response* r = c->lookup(longer);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 5);
  auto gap = keys;
  gap[2] = test_key(99, 0);
  r = c->lookup(gap);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 2);
  const auto* s = stats_of(*c);
  REQUIRE(s->lookup_hits() == 7);
  REQUIRE(s->lookup_misses() == 2);
}

TEST_CASE("unknown, zero, out-of-range and other sessions' lease ids are not found") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto c = d.client();
  auto thief = d.client();
  const wire::Response* r = c->reserve(wire::Key(), test_keys(1, 2));
  REQUIRE(code_of(r) == Code::kOk);
  const uint64_t write_lease = r->body_as_ReserveResponse()->lease();
  for (uint64_t bogus : {uint64_t{0}, uint64_t{12345}, ~uint64_t{0}, write_lease + 1}) {
    INFO("lease " << bogus);
    REQUIRE(code_of(c->commit(bogus, {0, 0})) == Code::kNotFound);
    REQUIRE(code_of(c->renew(bogus)) == Code::kNotFound);
    REQUIRE(code_of(c->release(bogus)) == Code::kNotFound);
    REQUIRE(code_of(c->abort(bogus)) == Code::kNotFound);
  }
  REQUIRE(code_of(thief->commit(write_lease, {0, 0})) == Code::kNotFound);
  REQUIRE(code_of(thief->abort(write_lease)) == Code::kNotFound);
  REQUIRE(code_of(c->release(write_lease)) == Code::kNotFound);  // a write lease is not released
  REQUIRE(code_of(c->commit(write_lease, {0})) == Code::kInvalidArgument);  // wrong checksum count
  REQUIRE(code_of(c->abort(write_lease)) == Code::kOk);
  REQUIRE(code_of(c->abort(write_lease)) == Code::kNotFound);  // ended
  const auto* s = stats_of(*c);
  REQUIRE(s->pages_reserved() == 0);
  REQUIRE(s->slabs_free() == s->slabs_total());
}

TEST_CASE("a request with more keys than max_keys is refused with a message naming the count") {
  TestDaemon d({"--max-keys", "100"});
  REQUIRE(d.process.start());
  auto c = d.client();
  const wire::Response* r = c->lookup(test_keys(1, 101));
  REQUIRE(code_of(r) == Code::kInvalidArgument);
  REQUIRE(r->message()->str() == "lookup: 101 keys, at most 100");
  REQUIRE(code_of(c->lookup(test_keys(1, 100))) == Code::kOk);
}

TEST_CASE("reserve flags pages already committed (Cached) or being written (InFlight) and gives them no slot") {
  TestDaemon d;
  REQUIRE(d.process.start());
  auto c = d.client();
  auto w = d.client();
  const auto keys = commit_pages(*c, 5, 2);
  const wire::Response* r = w->reserve(wire::Key(), test_keys(5, 3));
  REQUIRE(code_of(r) == Code::kOk);
  const auto* pages = r->body_as_ReserveResponse()->pages();
  REQUIRE(pages->Get(0)->flags() == uint16_t(wire::PlacementFlags::Cached));
  REQUIRE(pages->Get(1)->flags() == uint16_t(wire::PlacementFlags::Cached));
  REQUIRE(pages->Get(2)->flags() == 0);
  r = c->reserve(keys[1], test_keys(5, 1, 2));
  REQUIRE(r->body_as_ReserveResponse()->pages()->Get(0)->flags() == uint16_t(wire::PlacementFlags::InFlight));
}

TEST_CASE("a client killed while holding read and write leases loses them after the TTL") {
  TestDaemon d({"--read-lease-ttl-ms", "1000", "--write-lease-ttl-ms", "1000"});
  REQUIRE(d.process.start());
  auto c = d.client();
  const auto pinned = commit_pages(*c, 11, 3);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    RawClient k(d.socket);
    bool ok = code_of(k.hello("t", "x", "m")) == Code::kOk;
    ok = ok && code_of(k.reserve(wire::Key(), test_keys(12, 4))) == Code::kOk;
    ok = ok && code_of(k.lookup(pinned)) == Code::kOk;
    if (!ok) _exit(1);
    pause();  // killed here, leases held
    _exit(0);
  }
  // Wait until the child holds both leases, then kill it.
  bool held = false;
  for (int i = 0; i < 500 && !held; ++i) {
    const auto* s = stats_of(*c);
    held = s->write_leases() == 1 && s->read_leases() == 1;
    if (!held) std::this_thread::sleep_for(2ms);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(held);
  {
    const auto* s = stats_of(*c);
    REQUIRE(s->pages_reserved() == 4);
    REQUIRE(code_of(c->remove(pinned)) == Code::kOk);  // pinned: nothing removed yet
  }
  REQUIRE(stats_of(*c)->pages_committed() == 3);
  // The reaper frees them once the TTL (1 s) has passed; a loaded machine may run it late.
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    const auto* now = stats_of(*c);
    if (now->write_leases() == 0 && now->read_leases() == 0 && now->pages_reserved() == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  const auto* s = stats_of(*c);
  REQUIRE(s->write_leases() == 0);
  REQUIRE(s->read_leases() == 0);
  REQUIRE(s->pages_reserved() == 0);
  REQUIRE(s->slabs_free() == s->slabs_total() - 3);
  const wire::Response* r = c->remove(pinned);  // no pin is left
  REQUIRE(r->body_as_RemoveResponse()->removed() == 3);
  REQUIRE(d.process.stop() == 0);
}

TEST_CASE("a thousand stalled connections do not lock a legitimate client out") {
  rlimit files{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &files) == 0);
  const rlimit wanted{std::min<rlim_t>(files.rlim_max, 4096), files.rlim_max};
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &wanted) == 0);
  REQUIRE(wanted.rlim_cur >= 1100);
  TestDaemon d;  // max_connections 256, max_pending 64, hello timeout 5 s: the defaults
  REQUIRE(d.process.start());
  std::vector<int> stalled;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_unix(d.socket);  // connects and never sends a byte
    if (fd >= 0) stalled.push_back(fd);
  }
  REQUIRE(stalled.size() == 1000);
  auto c = d.client();  // hello, then a call: served
  require_served(*c);
  auto other = d.client("m2");
  require_served(*other);
  REQUIRE(d.process.running());
  for (int fd : stalled) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &files);
}

TEST_CASE("a connection that says no hello within the timeout is closed") {
  TestDaemon d({"--hello-timeout-ms", "500"});
  REQUIRE(d.process.start());
  const int fd = connect_unix(d.socket);
  REQUIRE(fd >= 0);
  pollfd p{fd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 3000) == 1);  // the daemon closes it: readable, then end of stream
  char byte = 0;
  REQUIRE(::recv(fd, &byte, 1, 0) == 0);
  ::close(fd);
  auto c = d.client();  // a session that said hello in time is not touched by the timer
  std::this_thread::sleep_for(1000ms);
  require_served(*c);
}

TEST_CASE("a frame begun and not finished within the frame timeout closes that connection") {
  TestDaemon d({"--frame-timeout-ms", "300"});
  REQUIRE(d.process.start());
  auto stalled = d.client();
  auto other = d.client();
  const wire::FrameHeader h = header(wire::kFrameMagic, wire::kProtocolVersion, 64);
  REQUIRE(stalled->send_raw(&h, 3));  // three bytes of a header, then nothing
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(stalled->closed_by_peer(5000));
  CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
  require_served(*other);
}

TEST_CASE("a session idle past the idle timeout is closed unless it holds a lease") {
  TestDaemon d({"--idle-timeout-ms", "300", "--read-lease-ttl-ms", "60000"});
  REQUIRE(d.process.start());
  auto idle = d.client();
  auto holder = d.client();
  const auto keys = commit_pages(*holder, 21, 2);
  REQUIRE(code_of(holder->lookup(keys)) == Code::kOk);  // a read lease, held
  REQUIRE(idle->closed_by_peer(5000));
  std::this_thread::sleep_for(700ms);  // past two idle periods: the lease keeps it open
  require_served(*holder);
}

TEST_CASE("a tenant's sessions are capped; other tenants are served and a closed session frees its place") {
  TestDaemon d({"--max-sessions-per-tenant", "2"});
  REQUIRE(d.process.start());
  auto a1 = d.client("m", "a");
  auto a2 = std::make_unique<RawClient>(d.socket);
  REQUIRE(code_of(a2->hello("a", "x", "m")) == Code::kOk);
  RawClient a3(d.socket);
  const wire::Response* r = a3.hello("a", "x", "m");
  REQUIRE(code_of(r) == Code::kExhausted);
  REQUIRE(r->message()->str().find("tenant 'a' has 2 sessions open") != std::string::npos);
  auto b = d.client("m", "b");
  require_served(*b);
  a2.reset();  // closes: tenant a has one session again
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    RawClient again(d.socket);
    admitted = code_of(again.hello("a", "x", "m")) == Code::kOk;
    if (!admitted) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(admitted);
  require_served(*a1);
}

TEST_CASE("a tenant's share bounds what its reserves may hold; another tenant's pages are never its victims") {
  TestDaemon d({"--tenant", "a:x", "--tenant", "b:y", "--tenant-share", "a=0.1"});  // ~30 of ~300 slabs
  REQUIRE(d.process.start());
  auto a = d.client("m", "a", "x");
  auto b = d.client("m", "b", "y");
  const auto b_keys = commit_pages(*b, 40, 8);
  const wire::Response* r = a->reserve(wire::Key(), test_keys(41, 200));
  REQUIRE(code_of(r) == Code::kExhausted);
  REQUIRE(r->message()->str().find("the tenant's share is") != std::string::npos);
  for (uint64_t chain = 50; chain < 90; ++chain) commit_pages(*a, chain, 1);  // past its share: its own go
  r = a->lookup(test_keys(50, 1));  // its oldest page made room
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 0);
  r = b->lookup(b_keys);
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 8);
}

TEST_CASE("a reader session may only read: its fd is read-only, writes are refused, and a tenant gets only its roles") {
  TestDaemon d({"--tenant", "w:x", "--tenant", "r:y", "--tenant-roles", "r=reader"});
  REQUIRE(d.process.start());
  auto writer = d.client("m", "w", "x");
  const auto keys = commit_pages(*writer, 60, 2);
  RawClient reader(d.socket);
  const wire::Response* h = reader.hello("w", "x", "m", true, wire::Role::Reader);  // w may read too
  REQUIRE(code_of(h) == Code::kOk);
  REQUIRE(h->body_as_HelloResponse()->read_only());
  REQUIRE(reader.received_fd() >= 0);
  REQUIRE((::fcntl(reader.received_fd(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  const wire::Response* r = reader.reserve(wire::Key(), test_keys(61, 1));
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  REQUIRE(r->message()->str().find("is a reader") != std::string::npos);
  REQUIRE(code_of(reader.remove(keys)) == Code::kPermissionDenied);
  r = reader.lookup(keys);
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_LookupResponse()->pages()->size() == 2);
  RawClient only_reader(d.socket);
  r = only_reader.hello("r", "y", "m", true, wire::Role::Writer);
  REQUIRE(code_of(r) == Code::kPermissionDenied);
  REQUIRE(r->message()->str().find("tenant 'r' may not take the role writer") != std::string::npos);
  RawClient as_reader(d.socket);
  REQUIRE(code_of(as_reader.hello("r", "y", "m", true, wire::Role::Reader)) == Code::kOk);
  REQUIRE((::fcntl(as_reader.received_fd(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  RawClient as_writer(d.socket);  // a writer's fd stays read-write
  REQUIRE(code_of(as_writer.hello("w", "x", "m", true)) == Code::kOk);
  REQUIRE((::fcntl(as_writer.received_fd(), F_GETFL) & O_ACCMODE) == O_RDWR);
}
