// A daemon for one integration test: a fresh shm region name, a socket path with the test's pid,
// the small test layout, and cleanup of the daemon (killed), its socket and its region at the end.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <string>
#include <vector>

#include "raw_client.h"
#include "poold_process.h"
#include "temp_region.h"

namespace cxlkv::testing {

// 4 layers, 64-token pages, latent 656 B sparse + indexer 132 B bulk: ~200 KB pages.
inline constexpr const char* kTestLayout =
    "custom:name=t,layers=4,page_tokens=64,stream=latent/656/656/sparse,stream=indexer/132/132/bulk";

struct TestDaemon {
  cxl::RegionSpec spec;
  std::string socket;
  RegionCleanup cleanup;
  PooldProcess process;

  // Starts cxlkv-poold over a new region of `size` with `extra` flags after the defaults.
  explicit TestDaemon(std::vector<std::string> extra = {}, const std::string& size = "64MiB")
      : spec(make_spec()), socket(unique_name("sock")), cleanup{spec},
        process(args(spec, socket, size, std::move(extra)), socket) {}

  static std::vector<std::string> args(const cxl::RegionSpec& spec, const std::string& socket,
                                       const std::string& size, std::vector<std::string> extra) {
    std::vector<std::string> a = {"--backend", "shm",  "--path",         spec.path, "--size",     size,
                                  "--layout",  kTestLayout, "--socket", socket,    "--metrics-port", "0",
                                  "--log-level", "warn", "--huge-pages", "off"};  // the region stays at spec
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static cxl::RegionSpec make_spec() {
    cxl::RegionSpec s;
    s.backend = cxl::Backend::kShm;
    s.path = unique_name("region", true);
    return s;
  }
  // A connected client that has said Hello as (tenant, model).
  std::unique_ptr<RawClient> client(const std::string& model = "m", const std::string& tenant = "t",
                                    const std::string& token = "x") {
    auto c = std::make_unique<RawClient>(socket);
    REQUIRE(c->connected());
    REQUIRE(code_of(c->hello(tenant, token, model)) == Code::kOk);
    return c;
  }
};

// The StatsResponse of a client's Stats call (fails the test if there is none).
inline const wire::StatsResponse* stats_of(RawClient& c) {
  const wire::Response* r = c.stats();
  REQUIRE(code_of(r) == Code::kOk);
  REQUIRE(r->body_as_StatsResponse() != nullptr);
  return r->body_as_StatsResponse();
}

}  // namespace cxlkv::testing
