// Partitions added and removed while the daemon serves (pool/online_partitions.h), against the
// real daemon through libcxlkv, AdminClient and cxlkv-admin: a reload serves the partition and
// tenant new in the configuration file; removing that partition into another while its tenant
// writes moves every committed page, and each prefix written before, during and after the
// removal reads back byte-exact; a read lease of the removed partition fails as expired.
#include <catch2/catch_test_macros.hpp>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <stop_token>
#include <thread>
#include <vector>

#include "cxlkv/admin.h"
#include "cxlkv/client.h"
#include "eventually.h"
#include "http_get.h"
#include "poold_process.h"
#include "prefix_io.h"
#include "temp_region.h"

using namespace cxlkv;
using namespace std::chrono_literals;
using testing::PooldProcess;

namespace {

const char* kLayout = "custom:name=online,layers=4,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";

// The daemon's [region] ("main") serves tenant a; tenant ops is the admin. The test appends a
// partition b and its tenant b to the file and asks for a reload.
constexpr const char* kTenants = R"([[tenant]]
name = "a"
token = "ta"

[[tenant]]
name = "ops"
token = "to"
roles = ["admin"]
)";

struct Online {
  std::string config_path = testing::unique_name("online") + ".toml";
  cxl::RegionSpec b{cxl::Backend::kShm, testing::unique_name("online-b", true), -1, 0};
  testing::RegionCleanup b_cleanup{b};
  uint16_t metrics_port = *testing::free_tcp_port();
  std::unique_ptr<PooldProcess> d;

  Online() {
    write_config(kTenants);
    testing::PooldOptions o;
    o.layout = kLayout;
    o.size = "64MiB";
    o.extra = {"--config", config_path, "--metrics-port", std::to_string(metrics_port)};
    auto p = PooldProcess::start(o);
    INFO(p.status().to_string());
    REQUIRE(p.is_ok());
    d = std::move(*p);
  }
  ~Online() { std::remove(config_path.c_str()); }

  void write_config(const std::string& text) const {
    std::ofstream f(config_path, std::ios::trunc);
    f << text;
  }
  // The file with partition b (64 MiB, as main: room for every page the tests write, so nothing
  // is evicted) and tenant b bound to it added.
  void add_b() const {
    write_config(std::string(kTenants) + "\n[[partition]]\nname = \"b\"\nbackend = \"shm\"\npath = \"" + b.path +
                 "\"\nsize = \"64MiB\"\n\n[[tenant]]\nname = \"b\"\ntoken = \"tb\"\npartition = \"b\"\n");
  }
  ClientOptions options(const std::string& tenant, const std::string& token) const {
    ClientOptions o;
    o.endpoint = d->unix_endpoint();
    o.tenant = tenant;
    o.token = token;
    o.model = "m";
    return o;
  }
  std::unique_ptr<Client> client(const std::string& tenant, const std::string& token) const {
    auto c = Client::connect(options(tenant, token));
    INFO(c.status().to_string());
    REQUIRE(c.is_ok());
    return std::move(*c);
  }
  std::unique_ptr<AdminClient> admin() const {
    auto a = AdminClient::connect(options("ops", "to"));
    INFO(a.status().to_string());
    REQUIRE(a.is_ok());
    return std::move(*a);
  }
};

std::vector<PageKey> prefix(Client& c, uint32_t pages, int32_t salt) {
  std::vector<int32_t> tokens(size_t{pages} * 64);
  std::iota(tokens.begin(), tokens.end(), salt * 100000);
  return c.page_keys(tokens);
}

// The whole prefix found, and every entry of every stream and layer as its writer wrote it.
Status read_back(Client& c, const std::vector<PageKey>& keys) {
  auto lease = c.lookup(keys);
  if (!lease) return lease.status();
  if (lease->pages() != keys.size())
    return Status(Code::kNotFound, fmt::format("{} of {} pages found", lease->pages(), keys.size()));
  std::vector<int32_t> every(size_t(lease->prefix_tokens()));
  std::iota(every.begin(), every.end(), 0);
  for (int s = 0; s < c.layout().stream_count(); ++s) {
    const uint32_t entry = c.layout().stream(s).entry_bytes;
    std::vector<uint8_t> all(every.size() * entry);
    for (uint32_t l = 0; l < c.layout().layers(); ++l) {
      if (Status st = lease->fetch_pages(s, l, 0, lease->pages(), all.data()); !st) return st;
      if (Status st = testing::verify_rows(keys, 64, s, l, entry, every.data(), int(every.size()), all.data(), 0); !st)
        return st;
    }
  }
  return lease->release();
}

// Asks until the removal has ended (its copy runs in steps on the daemon); the last answer.
Result<PartitionRemoval> remove_until_done(AdminClient& admin, const std::string& name, const std::string& into) {
  auto r = admin.remove_partition(name, into);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (r && !r->removed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    r = admin.remove_partition(name, into);
  }
  return r;
}

// Runs cxlkv-admin ($CXLKV_ADMIN) with `args`; its exit code and output.
std::pair<int, std::string> admin_tool(const Online& o, const std::string& args) {
  const char* tool = std::getenv("CXLKV_ADMIN");
  REQUIRE(tool != nullptr);
  std::string out;
  std::FILE* pipe = ::popen(fmt::format("{} --endpoint {} --tenant ops --token to --json {} 2>&1", tool,
                                        o.d->unix_endpoint(), args).c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int rc = ::pclose(pipe);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

}  // namespace

TEST_CASE("a partition added by reload, then removed into another while its tenant writes: no prefix loses a page") {
  Online o;
  auto a = o.client("a", "ta");
  std::vector<std::vector<PageKey>> of_a;
  for (int32_t salt = 1; salt <= 4; ++salt) {
    of_a.push_back(prefix(*a, 8, salt));
    REQUIRE(testing::write_prefix(*a, of_a.back()).is_ok());
  }
  // Tenant b is not configured yet.
  CHECK(Client::connect(o.options("b", "tb")).status().code() == Code::kPermissionDenied);

  o.add_b();
  auto admin = o.admin();
  auto reloaded = admin->reload();
  REQUIRE(reloaded.is_ok());
  CHECK(reloaded->partitions_added == std::vector<std::string>{"b"});
  CHECK(reloaded->tenants_added == std::vector<std::string>{"b"});
  CHECK(reloaded->not_applied.empty());
  auto parts = admin->partitions();
  REQUIRE(parts.is_ok());
  REQUIRE(parts->size() == 2);
  CHECK((*parts)[1].name == "b");
  CHECK((*parts)[1].tenants == std::vector<std::string>{"b"});
  // A second reload finds nothing new.
  CHECK(admin->reload()->partitions_added.empty());

  // Tenant b writes into its partition (handed b's region, not main's).
  auto b = o.client("b", "tb");
  std::vector<std::vector<PageKey>> of_b;
  for (int32_t salt = 100; salt < 106; ++salt) {
    of_b.push_back(prefix(*b, 8, salt));
    REQUIRE(testing::write_prefix(*b, of_b.back()).is_ok());
  }
  CHECK((*admin->partitions())[1].pages_committed == 48);
  CHECK((*admin->partitions())[0].pages_committed == 32);
  auto held = b->lookup(of_b[0]);  // a read lease of b, kept across the removal
  REQUIRE(held.is_ok());
  REQUIRE(held->pages() == 8);

  // Another client of tenant b writes while the partition is removed: refused while b drains, it
  // connects again once its session is closed and writes into main. It writes until told to
  // stop, at most 16 prefixes (room for all in main); a jthread, joined on any way out.
  std::vector<std::vector<PageKey>> during;  // the writer's until it is joined
  std::atomic<int> written{0}, failed{0};
  std::jthread writer([&o, &during, &written, &failed](std::stop_token stop) {
    // No test macro here (they are the main thread's): a failure shows as prefixes not written.
    std::unique_ptr<Client> w;
    if (auto first = Client::connect(o.options("b", "tb")); first.is_ok()) w = std::move(*first);
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    for (int32_t salt = 200; w && salt < 216 && !stop.stop_requested() && std::chrono::steady_clock::now() < give_up;) {
      auto keys = prefix(*w, 8, salt);
      if (testing::write_prefix(*w, keys).is_ok()) {
        during.push_back(std::move(keys));
        ++salt, ++written;
        std::this_thread::sleep_for(30ms);  // a pace that spans the removal
        continue;
      }
      ++failed;
      std::this_thread::sleep_for(20ms);  // draining (busy), or its session was closed: connect again
      if (auto again = Client::connect(o.options("b", "tb")); again.is_ok()) w = std::move(*again);
    }
  });
  REQUIRE(testing::eventually([&] { return written >= 1; }, 10s));
  auto [rc, out] = admin_tool(o, "remove-partition b --into main --wait-s 20");
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find("\"removed\":true") != std::string::npos);
  CHECK(out.find("\"tenants_moved\":[\"b\"]") != std::string::npos);
  CHECK(out.find("\"write_leases\":0") != std::string::npos);
  const int before_end = written;
  CHECK(testing::eventually([&] { return written >= before_end + 2 || written == 16; }, 10s));  // now into main
  writer.request_stop();
  writer.join();
  CHECK(during.size() >= 3);  // (how many of its attempts met the drain or a closed session is reported below)

  // The lease taken in b fails as expired: its partition announced another epoch before it closed.
  CHECK(held->check_reuse().code() == Code::kExpired);
  std::vector<int32_t> idx = {0, 5, 100};
  std::vector<uint8_t> rows(idx.size() * 656);
  CHECK(held->gather_topk(0, 1, idx.data(), int(idx.size()), rows.data()).code() == Code::kExpired);
  // b's old session is closed: its next request fails, and nothing crashes.
  CHECK_FALSE(b->lookup(of_b[1]).is_ok());

  // Every prefix of b, written before and during the removal, is in main now, byte-exact.
  auto b2 = o.client("b", "tb");
  of_b.insert(of_b.end(), during.begin(), during.end());
  size_t read = 0, lost = 0;
  for (const auto& keys : of_b) {
    Status st = read_back(*b2, keys);
    INFO(st.to_string());
    CHECK(st.is_ok());
    (st.is_ok() ? read : lost)++;
  }
  for (const auto& keys : of_a) CHECK(read_back(*a, keys).is_ok());
  WARN("prefixes of the removed partition's tenant: written " << of_b.size() << " (" << during.size()
       << " by the writer beside the removal, " << failed << " of its attempts refused or cut off), read " << read
       << ", lost " << lost);
  CHECK(lost == 0);
  CHECK(admin->stats()->evictions == 0);  // no page made room for another: a loss would be the move's
  // b writes into main from now on, and main holds all: a's 32 pages and b's.
  of_b.push_back(prefix(*b2, 8, 300));
  REQUIRE(testing::write_prefix(*b2, of_b.back()).is_ok());
  CHECK(read_back(*b2, of_b.back()).is_ok());
  parts = admin->partitions();
  REQUIRE(parts->size() == 1);
  CHECK((*parts)[0].name == "main");
  CHECK((*parts)[0].pages_committed == 32 + 8 * of_b.size());
  CHECK((*parts)[0].tenants == std::vector<std::string>{"a", "ops", "b"});
  CHECK(testing::http_get(o.metrics_port, "/metrics").find("partition=\"b\"") == std::string::npos);
  // A reload with b still in the file does not serve it again in this run, and says so.
  auto again = admin->reload();
  REQUIRE(again.is_ok());
  CHECK(again->partitions_added.empty());
  REQUIRE(again->not_applied.size() == 1);
  CHECK(again->not_applied[0].find("'b' was removed") != std::string::npos);
}

TEST_CASE("removing a partition waits for its write leases, refuses new reserves meanwhile, and names every bad request") {
  Online o;
  o.add_b();
  auto admin = o.admin();
  REQUIRE(admin->reload().is_ok());
  auto b = o.client("b", "tb");
  const auto first = prefix(*b, 4, 1), open = prefix(*b, 4, 2);
  REQUIRE(testing::write_prefix(*b, first).is_ok());
  auto lease = b->reserve(PageKey{}, open);  // open across the first attempt
  REQUIRE(lease.is_ok());

  auto r = admin->remove_partition("b", "main");
  REQUIRE(r.is_ok());
  CHECK_FALSE(r->removed);
  CHECK(r->write_leases == 1);
  // One removal at a time, from its drain on: main cannot go into b (draining) meanwhile.
  auto other = admin->remove_partition("main", "b");
  CHECK(other.status().code() == Code::kBusy);
  CHECK(other.status().message().find("one removal at a time") != std::string::npos);
  CHECK((*admin->partitions())[1].draining);
  CHECK(testing::http_get(o.metrics_port, "/metrics").find("cxlkv_partition_draining{partition=\"b\"") !=
        std::string::npos);
  auto refused = b->reserve(PageKey{}, prefix(*b, 1, 3));
  REQUIRE(refused.status().code() == Code::kBusy);
  CHECK(refused.status().message().find("partition 'b' is being removed") != std::string::npos);
  CHECK(read_back(*b, first).is_ok());  // reads go on while it drains
  // The open lease commits (its pages are b's), and the removal takes them along.
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < lease->pages(); ++p)
    for (int s = 0; s < b->layout().stream_count(); ++s)
      for (uint32_t l = 0; l < b->layout().layers(); ++l) {
        testing::fill_run(run, open[p], s, l, b->page_tokens(), b->layout().stream(s).entry_bytes);
        REQUIRE(b->write_entries(*lease, p, s, l, run.data(), b->page_tokens()).is_ok());
      }
  REQUIRE(b->commit(*lease).is_ok());
  r = remove_until_done(*admin, "b", "main");
  REQUIRE(r.is_ok());
  CHECK(r->removed);
  CHECK(admin->remove_partition("b", "main")->removed);  // asked again: how it ended
  CHECK(r->pages_copied == 8);
  CHECK(r->sessions_closed == 1);
  auto b2 = o.client("b", "tb");
  CHECK(read_back(*b2, first).is_ok());
  CHECK(read_back(*b2, open).is_ok());

  // Bad requests: each named, nothing changed.
  auto bad = admin->remove_partition("nope", "main");
  CHECK(bad.status().code() == Code::kNotFound);
  CHECK(bad.status().message().find("no partition 'nope' is served (served: main)") != std::string::npos);
  CHECK(admin->remove_partition("main", "main").status().code() == Code::kInvalidArgument);
  CHECK(admin->remove_partition("main", "b").status().code() == Code::kNotFound);  // b is gone
  CHECK(admin->remove_partition("", "main").status().code() == Code::kInvalidArgument);
  auto [rc, out] = admin_tool(o, "remove-partition main");
  CHECK(rc != 0);
  CHECK(out.find("--into") != std::string::npos);
  // Only an admin session may ask (a tenant's session is refused).
  ClientOptions as_b = o.options("b", "tb");
  CHECK(AdminClient::connect(as_b).status().code() == Code::kPermissionDenied);
  // A configuration file that no longer parses: the reload fails naming it, the daemon serves on.
  o.write_config("[[tenant]\nname = ");
  auto broken = admin->reload();
  REQUIRE_FALSE(broken.is_ok());
  CHECK(broken.status().message().find("reload: the configuration") != std::string::npos);
  // A changed token is not applied online: listed, and the old one still works.
  o.write_config(std::string(kTenants).replace(std::string(kTenants).find("\"ta\""), 4, "\"new\""));
  auto changed = admin->reload();
  REQUIRE(changed.is_ok());
  bool named = false;
  for (const std::string& line : changed->not_applied) named = named || line.find("tenant 'a'") != std::string::npos;
  CHECK(named);
  CHECK(Client::connect(o.options("a", "ta")).is_ok());
  CHECK(Client::connect(o.options("a", "new")).status().code() == Code::kPermissionDenied);
}

TEST_CASE("the [region]'s own partition can go too: its tenants, the admin's included, are served from the other") {
  Online o;
  auto a = o.client("a", "ta");
  const auto keys = prefix(*a, 6, 7);
  REQUIRE(testing::write_prefix(*a, keys).is_ok());
  o.add_b();
  auto admin = o.admin();
  REQUIRE(admin->reload().is_ok());
  auto r = remove_until_done(*admin, "main", "b");
  REQUIRE(r.is_ok());
  CHECK(r->removed);
  CHECK(r->pages_copied == 6);
  CHECK(r->tenants_moved == std::vector<std::string>{"a", "ops"});
  // The admin's session is not a partition's: it stays open and sees b alone, with every tenant.
  auto parts = admin->partitions();
  REQUIRE(parts.is_ok());
  REQUIRE(parts->size() == 1);
  CHECK((*parts)[0].name == "b");
  CHECK((*parts)[0].tenants == std::vector<std::string>{"a", "ops", "b"});
  auto a2 = o.client("a", "ta");
  CHECK(read_back(*a2, keys).is_ok());
  const auto more = prefix(*a2, 3, 8);  // keys past the first partition's index are served as before
  REQUIRE(testing::write_prefix(*a2, more).is_ok());
  CHECK(read_back(*a2, more).is_ok());
  CHECK(admin->stats()->pages_committed == 9);  // the same admin session, its partition gone
}
