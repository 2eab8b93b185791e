// libcxlkv against the real daemon (CXLKV_POOLD): prefill and decode in separate processes,
// many writers at once, namespaces, index checks on a real lease, release, both transports,
// reads that detect reuse, and coherence rule 2 counted across sessions and processes.
#include <catch2/catch_test_macros.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "cxlkv/admin.h"
#include "cxlkv/client.h"
#include "cxlkv/cxlkv.h"
#include "cacheline.h"
#include "poold_process.h"
#include "prefix_io.h"
#include "temp_region.h"
#include "tls_files.h"

using namespace cxlkv;
using testing::PooldProcess;

namespace {

// The deepseek-v3.2 streams over 3 layers, one with a padded stride: small regions, real shapes.
const char* kLayout = "custom:name=dsv32-3l,layers=3,page_tokens=64,stream=latent/656/704/sparse,stream=indexer/132/132/bulk";

std::unique_ptr<PooldProcess> start_daemon(uint32_t slab_pages = 1, bool tcp = false,
                                          std::vector<std::string> extra = {}) {
  testing::PooldOptions o;
  o.extra = std::move(extra);
  o.layout = kLayout;
  o.slab_pages = slab_pages;
  o.size = "256MiB";
  o.tcp = tcp;
  o.tenants = {"acme:s3cret", "other:pw"};
  auto p = PooldProcess::start(o);
  INFO(p.status().to_string());
  REQUIRE(p.is_ok());
  return std::move(*p);
}

ClientOptions options(const std::string& endpoint, const std::string& tenant = "acme", const std::string& model = "dsv32") {
  ClientOptions o;
  o.endpoint = endpoint;
  o.tenant = tenant;
  o.token = tenant == "acme" ? "s3cret" : "pw";
  o.model = model;
  return o;
}

std::unique_ptr<Client> connect_ok(const ClientOptions& o) {
  auto c = Client::connect(o);
  INFO(c.status().to_string());
  REQUIRE(c.is_ok());
  return std::move(*c);
}

std::vector<int32_t> tokens(uint32_t pages, int32_t salt) {
  std::vector<int32_t> t(size_t{pages} * 64);
  std::iota(t.begin(), t.end(), salt * 100000);
  return t;
}

// Looks the keys up and gathers random rows (with -1) of every stream and layer; checks them.
Status decode_and_verify(Client& c, const std::vector<PageKey>& keys, uint32_t expect_pages, int k = 512) {
  auto lease = c.lookup(keys);
  if (!lease) return lease.status();
  if (lease->pages() != expect_pages)
    return Status(Code::kNotFound, fmt::format("lookup found {} pages, expected {}", lease->pages(), expect_pages));
  std::mt19937 rng{uint32_t(getpid())};
  std::uniform_int_distribution<int32_t> pick(-1, int32_t(lease->prefix_tokens()) - 1);
  std::vector<int32_t> idx(k);
  for (int s = 0; s < c.layout().stream_count(); ++s)
    for (uint32_t l = 0; l < c.layout().layers(); ++l) {
      for (auto& i : idx) i = pick(rng);
      const uint32_t bytes = c.layout().stream(s).entry_bytes;
      std::vector<uint8_t> dst(size_t(k) * bytes, 0xC3);
      if (Status st = lease->gather_topk(s, l, idx.data(), k, dst.data()); !st) return st;
      if (Status st = testing::verify_rows(keys, 64, s, l, bytes, idx.data(), k, dst.data(), 0xC3); !st) return st;
    }
  return lease->release();
}

// Runs fn in a child process; returns its exit code (0 = fn returned ok).
template <typename Fn>
pid_t spawn(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    Status st = fn();
    if (!st) fmt::print(stderr, "child {}: {}\n", getpid(), st.to_string());
    _exit(st.is_ok() ? 0 : 1);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("a prefix written by a prefill process is gathered byte-exact by a separate decode process") {
  auto daemon = start_daemon(8);
  const std::string ep = daemon->unix_endpoint();
  pid_t prefill = spawn([&]() -> Status {
    auto c = Client::connect(options(ep));
    if (!c) return c.status();
    auto n = testing::write_prefix(**c, (*c)->page_keys(tokens(20, 1)));
    if (!n) return n.status();
    return *n == 20 ? Status::ok() : Status(Code::kCorrupt, fmt::format("committed {} pages, expected 20", *n));
  });
  REQUIRE(wait_exit(prefill) == 0);
  pid_t decode = spawn([&]() -> Status {
    auto c = Client::connect(options(ep));
    if (!c) return c.status();
    if (!(*c)->info().mapped_by_fd) return Status(Code::kMismatch, "expected the region mapped by the daemon's fd");
    return decode_and_verify(**c, (*c)->page_keys(tokens(20, 1)), 20);
  });
  CHECK(wait_exit(decode) == 0);
}

TEST_CASE("several processes write private and shared prefixes at once and all read both back") {
  auto daemon = start_daemon(1);
  const std::string ep = daemon->unix_endpoint();
  std::vector<pid_t> kids;
  for (int w = 0; w < 4; ++w)
    kids.push_back(spawn([&, w]() -> Status {
      auto c = Client::connect(options(ep));
      if (!c) return c.status();
      Client& client = **c;
      const auto mine = client.page_keys(tokens(6, 10 + w));
      const auto shared = client.page_keys(tokens(8, 99));
      if (auto n = testing::write_prefix(client, mine); !n) return n.status();
      if (auto n = testing::write_prefix(client, shared); !n) return n.status();  // some pages flagged, others ours
      if (Status st = decode_and_verify(client, mine, 6); !st) return st;
      // Another writer may still hold part of the shared prefix in flight: wait for it whole.
      for (int tries = 0; tries < 500; ++tries) {
        auto lease = client.lookup(shared);
        if (!lease) return lease.status();
        if (lease->pages() == 8) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return decode_and_verify(client, shared, 8);
    }));
  for (pid_t k : kids) CHECK(wait_exit(k) == 0);
  auto c = connect_ok(options(ep));
  auto stats = c->stats();
  REQUIRE(stats.is_ok());
  CHECK(stats->pages_committed == 4 * 6 + 8);
}

TEST_CASE("another namespace sees none of a committed prefix") {
  auto daemon = start_daemon();
  auto writer = connect_ok(options(daemon->unix_endpoint(), "acme", "dsv32"));
  const auto t = tokens(4, 3);
  const auto keys = writer->page_keys(t);
  REQUIRE(testing::write_prefix(*writer, keys).is_ok());
  auto same = writer->lookup(keys);
  REQUIRE(same.is_ok());
  CHECK(same->pages() == 4);
  for (auto [tenant, model] : {std::pair{"acme", "llama"}, std::pair{"other", "dsv32"}}) {
    auto reader = connect_ok(options(daemon->unix_endpoint(), tenant, model));
    CHECK(reader->info().namespace_id != writer->info().namespace_id);
    auto own = reader->lookup(reader->page_keys(t));  // its own keys for the same tokens
    REQUIRE(own.is_ok());
    CHECK(own->pages() == 0);
    CHECK(own->id() == 0);
    auto foreign = reader->lookup(keys);  // the writer's keys, from another namespace
    REQUIRE(foreign.is_ok());
    CHECK(foreign->pages() == 0);
  }
}

TEST_CASE("a wrong token is refused at connect") {
  auto daemon = start_daemon();
  auto o = options(daemon->unix_endpoint());
  o.token = "wrong";
  auto c = Client::connect(o);
  CHECK(c.status().code() == Code::kPermissionDenied);
}

TEST_CASE("a connect that the far end never completes fails after io_timeout_ms, naming the timeout") {
  // Listeners with a backlog of 0 that never accept: once the queue holds one connection, a TCP
  // SYN is dropped and a Unix connect waits, as with a hung or overloaded daemon.
  std::vector<int> fds;
  auto listener = [&](int family) -> std::string {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    fds.push_back(fd);
    std::string endpoint;
    if (family == AF_INET) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      socklen_t len = sizeof a;
      REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
      endpoint = "tcp:127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    } else {
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      const std::string path = "/tmp/cxlkv-test-backlog-" + std::to_string(::getpid()) + ".sock";
      ::unlink(path.c_str());
      std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
      REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      endpoint = "unix:" + path;
    }
    REQUIRE(::listen(fd, 0) == 0);
    for (int i = 0; i < 3; ++i) {  // fill the queue without blocking
      const int c = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      fds.push_back(c);
      if (family == AF_INET) {
        sockaddr_in a{};
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        ::connect(c, reinterpret_cast<sockaddr*>(&a), len);
      } else {
        sockaddr_un a{};
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        ::connect(c, reinterpret_cast<sockaddr*>(&a), len);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return endpoint;
  };
  for (int family : {AF_INET, AF_UNIX}) {
    auto o = options(listener(family));
    CAPTURE(o.endpoint);
    o.io_timeout_ms = 300;
    const auto t0 = std::chrono::steady_clock::now();
    auto c = Client::connect(o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE_FALSE(c.is_ok());
    CHECK(c.status().code() == Code::kUnavailable);
    CHECK(c.status().message().find("connect timed out after 300 ms") != std::string::npos);
    CHECK(s < 5.0);
  }
  for (int fd : fds) ::close(fd);
  ::unlink(("/tmp/cxlkv-test-backlog-" + std::to_string(::getpid()) + ".sock").c_str());
}

TEST_CASE("indices past the leased prefix are rejected on a real lease and nothing is read") {
  auto daemon = start_daemon();
  auto c = connect_ok(options(daemon->unix_endpoint()));
  const auto keys = c->page_keys(tokens(3, 4));
  REQUIRE(testing::write_prefix(*c, keys).is_ok());
  auto missing = c->page_keys(tokens(5, 4));  // 3 cached pages, then 2 never written
  auto lease = c->lookup(missing);
  REQUIRE(lease.is_ok());
  REQUIRE(lease->pages() == 3);
  std::vector<int32_t> idx = {0, 191, 192};
  std::vector<uint8_t> dst(idx.size() * 656, 0x11);
  const Status st = lease->gather_topk(0, 0, idx.data(), 3, dst.data());
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("indices[2] = 192") != std::string::npos);
  CHECK(dst == std::vector<uint8_t>(dst.size(), 0x11));
  idx[2] = -1;
  CHECK(lease->gather_topk(0, 0, idx.data(), 3, dst.data()).is_ok());
}

TEST_CASE("release unpins the prefix, destroying a lease releases it, and a released lease renews no more") {
  auto daemon = start_daemon();
  auto c = connect_ok(options(daemon->unix_endpoint()));
  const auto keys = c->page_keys(tokens(2, 5));
  REQUIRE(testing::write_prefix(*c, keys).is_ok());
  auto leases = [&] { return c->stats()->read_leases; };
  const uint64_t base = leases();
  {
    auto lease = c->lookup(keys);
    REQUIRE(lease.is_ok());
    CHECK(leases() == base + 1);
    auto ttl = lease->renew();
    CHECK(ttl.is_ok());
    CHECK(lease->release().is_ok());
    CHECK(leases() == base);
    CHECK(lease->renew().status().code() == Code::kNotFound);
    CHECK(lease->pages() == 0);
  }
  {
    auto lease = c->lookup(keys);
    REQUIRE(lease.is_ok());
    CHECK(leases() == base + 1);
  }  // destructor releases
  CHECK(leases() == base);
  // An unpinned committed prefix can be removed; a pinned one is skipped.
  auto pinned = c->lookup(keys);
  REQUIRE(pinned.is_ok());
  auto removed = c->remove(keys);
  REQUIRE(removed.is_ok());
  CHECK(*removed == 0);
  REQUIRE(pinned->release().is_ok());
  removed = c->remove(keys);
  REQUIRE(removed.is_ok());
  CHECK(*removed == 2);
}

TEST_CASE("an aborted or dropped write lease publishes nothing") {
  auto daemon = start_daemon();
  auto c = connect_ok(options(daemon->unix_endpoint()));
  const auto keys = c->page_keys(tokens(2, 6));
  {
    auto lease = c->reserve(PageKey{}, keys);
    REQUIRE(lease.is_ok());
    CHECK(c->abort(*lease).is_ok());
    CHECK(c->commit(*lease).status().code() == Code::kInvalidArgument);
  }
  {
    auto lease = c->reserve(PageKey{}, keys);
    REQUIRE(lease.is_ok());
    // A commit with runs missing is refused by the client before anything is sent.
    CHECK(c->commit(*lease).status().code() == Code::kInvalidArgument);
  }  // dropped: aborted
  auto lease = c->lookup(keys);
  REQUIRE(lease.is_ok());
  CHECK(lease->pages() == 0);
  CHECK(c->stats()->write_leases == 0);
}

TEST_CASE("a TCP client maps the region by path and reads what a Unix client wrote") {
  auto daemon = start_daemon(1, /*tcp=*/true);
  auto writer = connect_ok(options(daemon->unix_endpoint()));
  const auto keys = writer->page_keys(tokens(5, 7));
  REQUIRE(testing::write_prefix(*writer, keys).is_ok());
  auto reader = connect_ok(options(daemon->tcp_endpoint()));
  CHECK_FALSE(reader->info().mapped_by_fd);
  const Status st = decode_and_verify(*reader, keys, 5);
  INFO(st.to_string());
  CHECK(st.is_ok());
}

TEST_CASE("over TLS a client checks the daemon's certificate; a plain or untrusting client is refused") {
  auto daemon = start_daemon(1, /*tcp=*/true,
                             {"--tls-certificate", testing::tls_file("server.pem"), "--tls-private-key",
                              testing::tls_file("server.key")});
  const std::string port = daemon->tcp_endpoint().substr(daemon->tcp_endpoint().rfind(':') + 1);
  auto over_tls = [&](const std::string& host, const std::string& ca) {
    ClientOptions o = options("tls:" + host + ":" + port);
    o.tls_ca_file = ca;
    o.io_timeout_ms = 3000;
    return o;
  };
  // Written over TLS, read over the Unix socket, and the other way round: byte-exact both ways.
  auto tls_writer = connect_ok(over_tls("127.0.0.1", testing::tls_file("ca.pem")));
  CHECK_FALSE(tls_writer->info().mapped_by_fd);
  const auto keys = tls_writer->page_keys(tokens(4, 21));
  REQUIRE(testing::write_prefix(*tls_writer, keys).is_ok());
  auto local = connect_ok(options(daemon->unix_endpoint()));
  Status st = decode_and_verify(*local, keys, 4);
  INFO(st.to_string());
  CHECK(st.is_ok());
  const auto local_keys = local->page_keys(tokens(3, 22));
  REQUIRE(testing::write_prefix(*local, local_keys).is_ok());
  auto tls_reader = connect_ok(over_tls("localhost", testing::tls_file("ca.pem")));  // the DNS name
  st = decode_and_verify(*tls_reader, local_keys, 3);
  INFO(st.to_string());
  CHECK(st.is_ok());

  // A CA that did not sign the daemon's certificate: refused at connect, named.
  auto untrusting = Client::connect(over_tls("127.0.0.1", testing::tls_file("other-ca.pem")));
  REQUIRE_FALSE(untrusting.is_ok());
  CHECK(untrusting.status().code() == Code::kPermissionDenied);
  CHECK(untrusting.status().message().find("not trusted") != std::string::npos);
  // A certificate for other names: "127.1" reaches 127.0.0.1 but is a name the certificate lacks.
  auto misnamed = Client::connect(over_tls("127.1", testing::tls_file("ca.pem")));
  REQUIRE_FALSE(misnamed.is_ok());
  CHECK(misnamed.status().code() == Code::kPermissionDenied);
  CHECK(misnamed.status().message().find("mismatch") != std::string::npos);
  // A CA file that does not exist.
  auto no_ca = Client::connect(over_tls("127.0.0.1", testing::tls_file("absent.pem")));
  REQUIRE_FALSE(no_ca.is_ok());
  CHECK(no_ca.status().message().find("absent.pem") != std::string::npos);
  // Plain TCP to the TLS listener: the daemon never reads its Hello (or token) as a frame.
  ClientOptions plain = options(daemon->tcp_endpoint());
  plain.io_timeout_ms = 3000;
  auto refused = Client::connect(plain);
  REQUIRE_FALSE(refused.is_ok());
  // The C API carries the CA file too.
  const std::string ep = "tls:127.0.0.1:" + port, ca = testing::tls_file("ca.pem");
  cxlkv_options co{ep.c_str(), "acme", "s3cret", "dsv32", 1, nullptr, 3000, 1, ca.c_str()};
  cxlkv_client* c = nullptr;
  REQUIRE(cxlkv_connect(&co, &c) == CXLKV_OK);
  cxlkv_read_lease* r = nullptr;
  REQUIRE(cxlkv_lookup(c, reinterpret_cast<const cxlkv_page_key*>(keys.data()), keys.size(), &r) == CXLKV_OK);
  CHECK(cxlkv_read_lease_pages(r) == 4);
  CHECK(cxlkv_release(r) == CXLKV_OK);
  cxlkv_read_lease_free(r);
  cxlkv_disconnect(c);
  // The daemon kept serving everyone through the refused handshakes.
  CHECK(local->stats().is_ok());
  CHECK(tls_writer->stats().is_ok());
}

TEST_CASE("a TLS client whose daemon closed the connection gets errors, not SIGPIPE") {
  auto daemon = start_daemon(1, /*tcp=*/true,
                             {"--tls-certificate", testing::tls_file("server.pem"), "--tls-private-key",
                              testing::tls_file("server.key"), "--idle-timeout-ms", "200"});
  ClientOptions o = options("tls:" + daemon->tcp_endpoint().substr(4));
  o.tls_ca_file = testing::tls_file("ca.pem");
  auto c = connect_ok(o);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // idle with no lease: closed
  // The default SIGPIPE action ends the process: this test's own survival is the check. A lookup
  // of 2,048 keys is 64 KiB, several TLS records: the records after the daemon's reset hit EPIPE.
  std::signal(SIGPIPE, SIG_DFL);
  const auto keys = c->page_keys(tokens(2048, 23));
  auto first = c->lookup(keys);
  REQUIRE_FALSE(first.is_ok());
  INFO(first.status().to_string());
  CHECK((first.status().code() == Code::kIoError || first.status().code() == Code::kUnavailable));
  // The session reconnects nowhere: later calls fail too, and still no signal.
  for (int i = 0; i < 3; ++i) CHECK_FALSE(c->lookup(keys).is_ok());
}

TEST_CASE("a TLS client of a plain TCP listener fails at connect and says so") {
  auto daemon = start_daemon(1, /*tcp=*/true);
  ClientOptions o = options("tls:" + daemon->tcp_endpoint().substr(4));
  o.tls_ca_file = testing::tls_file("ca.pem");
  o.io_timeout_ms = 3000;
  auto c = Client::connect(o);
  REQUIRE_FALSE(c.is_ok());
  INFO(c.status().to_string());
  CHECK(c.status().message().find("TLS") != std::string::npos);
}

TEST_CASE("the C API writes, looks up and gathers like the C++ one") {
  auto daemon = start_daemon();
  const std::string ep = daemon->unix_endpoint();
  cxlkv_options o{ep.c_str(), "acme", "s3cret", "dsv32", 1, nullptr, 0, 0, nullptr};
  cxlkv_client* c = nullptr;
  REQUIRE(cxlkv_connect(&o, &c) == CXLKV_OK);
  const auto t = tokens(2, 8);
  cxlkv_page_key keys[2];
  REQUIRE(cxlkv_page_keys(c, t.data(), t.size(), nullptr, keys, 2) == 2);
  cxlkv_write_lease* w = nullptr;
  REQUIRE(cxlkv_reserve(c, nullptr, keys, 2, &w) == CXLKV_OK);
  const int latent = cxlkv_stream_index(c, "latent");
  std::vector<PageKey> cpp_keys(2);
  std::memcpy(cpp_keys.data(), keys, sizeof keys);
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < 2; ++p)
    for (int s = 0; s < 2; ++s)
      for (uint32_t l = 0; l < cxlkv_layers(c); ++l) {
        testing::fill_run(run, cpp_keys[p], s, l, 64, cxlkv_entry_bytes(c, s));
        REQUIRE(cxlkv_write_entries(w, p, s, l, run.data(), 64) == CXLKV_OK);
      }
  uint32_t committed = 0;
  REQUIRE(cxlkv_commit(c, w, &committed) == CXLKV_OK);
  CHECK(committed == 2);
  cxlkv_write_lease_free(w);
  cxlkv_read_lease* r = nullptr;
  REQUIRE(cxlkv_lookup(c, keys, 2, &r) == CXLKV_OK);
  CHECK(cxlkv_read_lease_pages(r) == 2);
  int32_t idx[3] = {5, -1, 127};
  std::vector<uint8_t> dst(3 * 656, 0);
  REQUIRE(cxlkv_gather_topk(r, latent, 2, idx, 3, dst.data()) == CXLKV_OK);
  CHECK(testing::verify_rows(cpp_keys, 64, latent, 2, 656, idx, 3, dst.data(), 0).is_ok());
  idx[1] = 128;
  CHECK(cxlkv_gather_topk(r, latent, 2, idx, 3, dst.data()) == CXLKV_INVALID_ARGUMENT);
  CHECK(std::string(cxlkv_last_error()).find("indices[1] = 128") != std::string::npos);
  CHECK(cxlkv_release(r) == CXLKV_OK);
  cxlkv_read_lease_free(r);
  cxlkv_disconnect(c);
}

TEST_CASE("the C API answers NULL handles and pointers with invalid argument and changes nothing") {
  auto daemon = start_daemon();
  const std::string ep = daemon->unix_endpoint();
  cxlkv_options o{ep.c_str(), "acme", "s3cret", "dsv32", 1, nullptr, 0, 0, nullptr};
  cxlkv_client* c = nullptr;
  REQUIRE(cxlkv_connect(&o, &c) == CXLKV_OK);
  const int32_t idx[1] = {0};
  uint8_t dst[1024] = {};
  cxlkv_read_lease* r = nullptr;
  CHECK(cxlkv_gather_topk(nullptr, 0, 0, idx, 1, dst) == CXLKV_INVALID_ARGUMENT);
  CHECK(std::string(cxlkv_last_error()).find("cxlkv_gather_topk: lease is NULL") != std::string::npos);
  CHECK(cxlkv_lookup(c, nullptr, 4, &r) == CXLKV_INVALID_ARGUMENT);
  CHECK(r == nullptr);
  CHECK(cxlkv_lookup(nullptr, nullptr, 0, &r) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_reserve(c, nullptr, nullptr, 3, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_fetch_pages(nullptr, 0, 0, 0, 1, dst) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_read_lease_check_reuse(nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_renew(nullptr, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_release(nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_commit(c, nullptr, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_abort(nullptr, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_write_entries(nullptr, 0, 0, 0, dst, 1) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_remove(c, nullptr, 2, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_get_stats(c, nullptr) == CXLKV_INVALID_ARGUMENT);
  CHECK(cxlkv_page_keys(nullptr, idx, 1, nullptr, nullptr, 0) == 0);
  CHECK(cxlkv_stream_index(nullptr, "latent") == -1);
  CHECK(cxlkv_stream_name(c, 99) == nullptr);
  CHECK(cxlkv_layers(nullptr) == 0);
  cxlkv_read_lease_free(nullptr);
  cxlkv_write_lease_free(nullptr);
  // The session is untouched and serves on.
  cxlkv_stats stats{};
  CHECK(cxlkv_get_stats(c, &stats) == CXLKV_OK);
  CHECK(stats.slabs_total > 0);
  CHECK(cxlkv_stream_count(c) == 2);
  CHECK(std::string(cxlkv_stream_name(c, 0)) == "latent");
  cxlkv_disconnect(c);
  cxlkv_disconnect(nullptr);
}

TEST_CASE("a read whose lease ran out fails with expired once its slabs are freed or reused, never with their bytes") {
  testing::PooldOptions o;
  o.layout = kLayout;
  o.size = "256MiB";
  o.tenants = {"acme:s3cret"};
  o.extra = {"--read-lease-ttl-ms", "300"};
  auto d = PooldProcess::start(o);
  REQUIRE(d.is_ok());
  auto c = connect_ok(options((*d)->unix_endpoint()));
  const auto keys = c->page_keys(tokens(4, 71));
  const auto other = c->page_keys(tokens(2, 72));
  REQUIRE(testing::write_prefix(*c, keys).is_ok());
  REQUIRE(testing::write_prefix(*c, other).is_ok());
  auto held = c->lookup(keys);  // this one's TTL will run out
  REQUIRE(held.is_ok());
  REQUIRE(held->pages() == 4);
  auto kept = c->lookup(c->page_keys(tokens(4, 71)));  // renewed below: stays valid
  REQUIRE(kept.is_ok());
  const uint32_t entry = c->layout().stream(0).entry_bytes;
  std::vector<int32_t> idx = {0, 63, 64, 255};
  std::vector<uint8_t> before(idx.size() * entry), after(idx.size() * entry);
  REQUIRE(held->gather_topk(0, 1, idx.data(), int(idx.size()), before.data()).is_ok());
  // Another prefix's slabs freed: this lease's pages are still its own, the read checks and succeeds.
  REQUIRE(c->remove(other).value() == 2);
  REQUIRE(held->gather_topk(0, 1, idx.data(), int(idx.size()), after.data()).is_ok());
  REQUIRE(after == before);
  // Past the TTL the pins go; removing the prefix frees its slabs, and a new prefix reuses them.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(kept->renew().is_ok());  // kept's own pins stay
  }
  REQUIRE(kept->release().is_ok());
  REQUIRE(c->remove(keys).value() == 4);
  Status st = held->gather_topk(0, 1, idx.data(), int(idx.size()), after.data());
  REQUIRE(st.code() == Code::kExpired);
  REQUIRE(st.message().find("was freed or reused while this lease read it") != std::string::npos);
  REQUIRE(testing::write_prefix(*c, c->page_keys(tokens(6, 73))).is_ok());  // the slabs hold other pages now
  std::vector<uint8_t> run(size_t{64} * entry);
  REQUIRE(held->gather_topk(0, 1, idx.data(), int(idx.size()), after.data()).code() == Code::kExpired);
  REQUIRE(held->fetch_pages(0, 1, 0, 1, run.data()).code() == Code::kExpired);
}

TEST_CASE("a read-only client gathers what a writer wrote, cannot reserve, and a store through its mapping faults") {
  auto d = start_daemon();
  auto w = connect_ok(options(d->unix_endpoint()));
  const auto keys = w->page_keys(tokens(3, 81));
  REQUIRE(testing::write_prefix(*w, keys).is_ok());
  for (bool by_fd : {true, false}) {
    CAPTURE(by_fd);
    auto o = options(d->unix_endpoint());
    o.read_only = true;
    o.want_fd = by_fd;  // the daemon's O_RDONLY fd, or the region opened read-only by path
    auto r = connect_ok(o);
    REQUIRE(decode_and_verify(*r, keys, 3).is_ok());
    auto reserve = r->reserve(PageKey{}, r->page_keys(tokens(1, 82)));
    REQUIRE(reserve.status().code() == Code::kPermissionDenied);
    auto lease = r->lookup(keys);
    REQUIRE(lease.is_ok());
    uint8_t* target = lease->view().base + lease->placement(0).slab_offset;
    const pid_t child = ::fork();
    if (child == 0) {
      // The kernel's own answer to the store, not a handler's (Catch2 and the sanitizers install
      // their own, which report and exit instead of dying by the signal).
      ::signal(SIGSEGV, SIG_DFL);
      *reinterpret_cast<volatile uint8_t*>(target) = 0x55;  // must fault: the mapping is PROT_READ
      _exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGSEGV);
  }
  REQUIRE(decode_and_verify(*w, keys, 3).is_ok());  // nothing changed
}

TEST_CASE("a lease taken before the daemon restarted is expired: reads, renew and commit say so, never serve bytes") {
  auto d = start_daemon();
  auto c = connect_ok(options(d->unix_endpoint()));
  const auto keys = c->page_keys(tokens(3, 91));
  REQUIRE(testing::write_prefix(*c, keys).is_ok());
  auto held = c->lookup(keys);
  REQUIRE(held.is_ok());
  auto open_write = c->reserve(keys.back(), c->page_keys(tokens(1, 92), keys.back()));
  REQUIRE(open_write.is_ok());
  const std::vector<int32_t> idx{0, 65, 130, -1};
  std::vector<uint8_t> rows(idx.size() * 656, 0x5a);
  REQUIRE(held->gather_topk(0, 1, idx.data(), int(idx.size()), rows.data()).is_ok());

  d->kill9();
  REQUIRE(d->start());  // the same region: its pages recovered, a new epoch announced
  std::vector<uint8_t> after(idx.size() * 656, 0x5a);
  Status st = held->gather_topk(0, 1, idx.data(), int(idx.size()), after.data());
  REQUIRE(st.code() == Code::kExpired);
  CHECK(st.message().find("restarted") != std::string::npos);
  CHECK(held->check_reuse().code() == Code::kExpired);
  std::vector<uint8_t> run(64 * 132);
  CHECK(held->fetch_pages(1, 0, 0, 1, run.data()).code() == Code::kExpired);
  CHECK(held->renew().status().code() == Code::kExpired);
  // The reserve's slot was freed at recovery and may be another writer's now: nothing is written.
  const Placement& pl = open_write->placement(0);
  const PoolView::Stream& latent = c->view().streams[0];
  const uint8_t* slot = c->view().base + pl.slab_offset + latent.offset + uint64_t{pl.position} * 64 * latent.stride;
  const std::vector<uint8_t> slot_before(slot, slot + 64);
  std::vector<uint8_t> stale(64 * 656, 0xc3);
  Status write = open_write->write_entries(0, 0, 0, stale.data(), 64);
  CHECK(write.code() == Code::kExpired);
  CHECK(write.message().find("restarted") != std::string::npos);
  CHECK(std::vector<uint8_t>(slot, slot + 64) == slot_before);
  auto committed = c->commit(*open_write);
  CHECK(committed.status().code() == Code::kExpired);

  // A new session's lookup serves the recovered pages, and its reads pass.
  auto again = connect_ok(options(d->unix_endpoint()));
  auto fresh = again->lookup(keys);
  REQUIRE(fresh.is_ok());
  REQUIRE(fresh->pages() == 3);
  REQUIRE(fresh->gather_topk(0, 1, idx.data(), int(idx.size()), after.data()).is_ok());
  CHECK(after == rows);
  REQUIRE(decode_and_verify(*again, keys, 3).is_ok());
}

TEST_CASE("readers drop a reused slab's lines once per host, first sight included; a slab's first generation costs nothing") {
  auto d = start_daemon();
  auto w = connect_ok(options(d->unix_endpoint()));
  ClientOptions ro = options(d->unix_endpoint());
  ro.read_only = true;
  // The slabs of a lease whose generation is past the first (each slab once: E = 1 here).
  auto reused_slabs = [](const ReadLease& lease) {
    uint64_t n = 0;
    for (const Placement& p : lease.placements()) n += p.generation > 1;
    return n;
  };
  auto invalidations_of_lookup = [&](Client& c, const std::vector<PageKey>& keys, uint64_t* reused = nullptr) {
    cxl::reset_primitive_counts();
    auto lease = c.lookup(keys);
    REQUIRE(lease.is_ok());
    REQUIRE(lease->pages() == keys.size());
    const uint64_t calls = cxl::primitive_counts().invalidate_calls;
    if (reused) *reused = reused_slabs(*lease);
    REQUIRE(lease->release().is_ok());
    return calls;
  };

  // A prefix on slabs' first generation: nothing older of them was ever cached.
  const auto a = w->page_keys(tokens(4, 81));
  REQUIRE(testing::write_prefix(*w, a).is_ok());
  auto r1 = connect_ok(ro);
  CHECK(r1->info().coherence_record.find("/cxlkv-gen-") == 0);
  uint64_t reused = 9;
  CHECK(invalidations_of_lookup(*r1, a, &reused) == 0);
  CHECK(reused == 0);

  // A's slabs freed and reused by B (the allocator hands back the last slabs freed first). The
  // writer drops the lines this host's reader held; the next reader, a fresh session, drops them
  // too (the host's record says generation 1), and after it nobody on the host does.
  REQUIRE(w->remove(a).value() == 4);
  const auto b = w->page_keys(tokens(4, 82));
  cxl::reset_primitive_counts();
  REQUIRE(testing::write_prefix(*w, b).is_ok());
  CHECK(cxl::primitive_counts().invalidate_calls == 4);
  auto r2 = connect_ok(ro);
  CHECK(invalidations_of_lookup(*r2, b, &reused) == 4);
  CHECK(reused == 4);
  CHECK(invalidations_of_lookup(*r2, b) == 0);
  auto r3 = connect_ok(ro);
  CHECK(invalidations_of_lookup(*r3, b) == 0);
  const pid_t child = spawn([&]() -> Status {  // another process of the host: nothing to drop either
    auto c = Client::connect(ro);
    if (!c) return c.status();
    cxl::reset_primitive_counts();
    auto lease = (*c)->lookup(b);
    if (!lease) return lease.status();
    const uint64_t calls = cxl::primitive_counts().invalidate_calls;
    if (calls != 0) return Status(Code::kMismatch, fmt::format("{} invalidations in a second process", calls));
    return decode_and_verify(**c, b, 4);
  });
  CHECK(wait_exit(child) == 0);

  // First sight: C's slabs are freed before any reader here saw them and reused by D; a reader
  // that has no record of them still drops their lines, as a process that read C could have
  // left them in the caches.
  const auto c = w->page_keys(tokens(2, 83));
  REQUIRE(testing::write_prefix(*w, c).is_ok());
  REQUIRE(w->remove(c).value() == 2);
  const auto e = w->page_keys(tokens(2, 84));
  REQUIRE(testing::write_prefix(*w, e).is_ok());
  auto r4 = connect_ok(ro);
  CHECK(invalidations_of_lookup(*r4, e, &reused) == 2);
  CHECK(reused == 2);
  REQUIRE(decode_and_verify(*r4, e, 2).is_ok());
}

TEST_CASE("tenants bound to two partitions each map only their own, write and read there, by fd and by path") {
  const cxl::RegionSpec other_partition{cxl::Backend::kShm, testing::unique_name("part", true), -1, 0};
  testing::RegionCleanup cleanup{other_partition};
  auto daemon = start_daemon(1, /*tcp=*/true, {"--partition", "p2=shm:" + other_partition.path + ":128MiB",
                                               "--tenant-partition", "other=p2"});
  auto acme = connect_ok(options(daemon->unix_endpoint(), "acme"));
  auto other = connect_ok(options(daemon->unix_endpoint(), "other"));
  auto other_tcp = connect_ok(options(daemon->tcp_endpoint(), "other"));  // maps p2 by its path
  CHECK(other->info().region == "shm:" + other_partition.path);
  CHECK(other_tcp->info().region == "shm:" + other_partition.path);
  CHECK(acme->info().region != other->info().region);
  const auto acme_keys = acme->page_keys(tokens(6, 3));
  const auto other_keys = other->page_keys(tokens(6, 3));  // same tokens, another tenant
  REQUIRE(testing::write_prefix(*acme, acme_keys).is_ok());
  REQUIRE(testing::write_prefix(*other, other_keys).is_ok());
  Status st = decode_and_verify(*acme, acme_keys, 6);
  INFO(st.to_string());
  CHECK(st.is_ok());
  st = decode_and_verify(*other_tcp, other_keys, 6);
  INFO(st.to_string());
  CHECK(st.is_ok());
  auto none = other->lookup(acme_keys);  // a's keys are in another partition (and namespace)
  REQUIRE(none.is_ok());
  CHECK(none->pages() == 0);
}

TEST_CASE("an admin session sees every partition, its occupancy and tenants, and the totals; others may not open one") {
  const cxl::RegionSpec other_partition{cxl::Backend::kShm, testing::unique_name("part", true), -1, 0};
  testing::RegionCleanup cleanup{other_partition};
  auto daemon = start_daemon(1, /*tcp=*/false, {"--partition", "p2=shm:" + other_partition.path + ":128MiB",
                                                "--tenant-partition", "other=p2", "--tenant", "ops:adm",
                                                "--tenant-roles", "ops=admin"});
  auto acme = connect_ok(options(daemon->unix_endpoint(), "acme"));
  REQUIRE(testing::write_prefix(*acme, acme->page_keys(tokens(3, 1))).is_ok());
  auto other = connect_ok(options(daemon->unix_endpoint(), "other"));
  REQUIRE(testing::write_prefix(*other, other->page_keys(tokens(5, 2))).is_ok());
  auto held = other->lookup(other->page_keys(tokens(5, 2)));
  REQUIRE(held.is_ok());

  ClientOptions o = options(daemon->unix_endpoint(), "acme");
  o.tenant = "ops";
  o.token = "adm";
  auto admin = AdminClient::connect(o);
  INFO(admin.status().to_string());
  REQUIRE(admin.is_ok());
  auto all = (*admin)->partitions();
  REQUIRE(all.is_ok());
  REQUIRE(all->size() == 2);
  const PartitionStatus& main = (*all)[0];
  const PartitionStatus& p2 = (*all)[1];
  CHECK(main.name == "main");
  CHECK(main.region == acme->info().region);
  CHECK(main.pages_committed == 3);
  CHECK(main.region_bytes == 256ull << 20);
  CHECK(main.tenants == std::vector<std::string>{"acme", "ops"});
  CHECK(p2.name == "p2");
  CHECK(p2.region == "shm:" + other_partition.path);
  CHECK(p2.metadata == "shm:" + other_partition.path + ".meta");  // beside it, where no session is handed it
  CHECK(main.metadata == main.region + ".meta");
  CHECK(p2.pages_committed == 5);
  CHECK(p2.read_leases == 1);
  CHECK(p2.region_bytes == 128ull << 20);
  CHECK(p2.slabs_total < main.slabs_total);
  CHECK(p2.tenants == std::vector<std::string>{"other"});
  auto totals = (*admin)->stats();
  REQUIRE(totals.is_ok());
  CHECK(totals->pages_committed == 8);
  CHECK(totals->slabs_total == main.slabs_total + p2.slabs_total);

  o.tenant = "acme";  // not allowed the admin role
  o.token = "s3cret";
  CHECK(AdminClient::connect(o).status().code() == Code::kPermissionDenied);

  // cxlkv-admin says the same (its JSON), with the token from a file; a wrong token exits 2, saying why.
  const char* tool = std::getenv("CXLKV_ADMIN");
  REQUIRE(tool != nullptr);
  const std::string token_file = testing::unique_name("admin-token");
  {
    std::FILE* f = std::fopen(token_file.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("adm\n", f);
    std::fclose(f);
  }
  auto run = [&](const std::string& args, int* rc) {
    std::string out;
    std::FILE* pipe = ::popen(fmt::format("{} --endpoint {} --tenant ops {} 2>&1", tool, daemon->unix_endpoint(), args).c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    const int st = ::pclose(pipe);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
  };
  int rc = -1;
  const std::string json = run("--token-file " + token_file + " --json partitions", &rc);
  INFO(json);
  CHECK(rc == 0);
  CHECK(json.find("\"name\":\"p2\"") != std::string::npos);
  CHECK(json.find("\"pages_committed\":5") != std::string::npos);
  CHECK(json.find("\"tenants\":[\"other\"]") != std::string::npos);
  const std::string refused = run("--token wrong stats", &rc);
  CHECK(rc == 2);
  CHECK(refused.find("permission denied") != std::string::npos);

  // drain: with a write lease open, --wait-s gives up after its time (exit 3) naming what is open;
  // once it ends, the drain answers at once; reserves are refused until resume.
  auto pending = acme->reserve(PageKey{}, acme->page_keys(tokens(2, 9)));
  REQUIRE(pending.is_ok());
  const std::string waited = run("--token-file " + token_file + " --json drain --wait-s 1", &rc);
  INFO(waited);
  CHECK(rc == 3);
  CHECK(waited.find("1 write lease(s) open") != std::string::npos);
  CHECK(waited.find("\"write_leases\":1") != std::string::npos);
  REQUIRE(acme->abort(*pending).is_ok());
  const std::string drained = run("--token-file " + token_file + " --json drain --wait-s 5", &rc);
  INFO(drained);
  CHECK(rc == 0);
  CHECK(drained.find("\"draining\":true") != std::string::npos);
  CHECK(drained.find("\"write_leases\":0") != std::string::npos);
  auto refused_reserve = acme->reserve(PageKey{}, acme->page_keys(tokens(2, 9)));
  CHECK(refused_reserve.status().code() == Code::kBusy);
  CHECK(acme->lookup(acme->page_keys(tokens(3, 1)))->pages() == 3);  // reads go on
  const std::string resumed = run("--token-file " + token_file + " --json resume", &rc);
  INFO(resumed);
  CHECK(rc == 0);
  CHECK(resumed.find("\"draining\":false") != std::string::npos);
  CHECK(testing::write_prefix(*acme, acme->page_keys(tokens(2, 9))).value() == 2);
  std::remove(token_file.c_str());
}
