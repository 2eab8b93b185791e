// Fabric model: the shipped profiles load, validation names the bad profile and field, and the
// projection of counted operations follows its equation.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <string>

#include "fabric/fabric_model.h"

using cxlkv::fabric::Hop;
using cxlkv::fabric::LinkProfile;
using cxlkv::fabric::OpCounts;
using cxlkv::fabric::Pattern;
using Catch::Approx;

namespace {
const std::string kProfiles = std::string(CXLKV_EMULATION_DIR) + "/fabric/profiles.toml";

const char* kGoodGpu = R"(
[gpu.g]
hbm_gb = { value = 80, source = "s" }
hbm_gbps = { value = 3350, source = "s" }
bf16_tflops = { value = 989, source = "s" }
fp8_tflops = { value = 1979, source = "s" }
)";
}  // namespace

TEST_CASE("the shipped profiles file loads and holds the default profiles", "[fabric]") {
  auto p = cxlkv::fabric::load_profiles(kProfiles);
  REQUIRE(p.ok());
  for (const char* gpu : {"h100-80g", "h200-141g", "h20-96g"}) CHECK(p->gpu(gpu).ok());
  for (const char* link : {"cxl-type3-ddr5", "rdma-400g", "pcie5-h100", "ddr5-local"}) {
    CHECK(p->link(link).ok());
  }
  CHECK(p->link("pcie5-h100")->bandwidth_gbps == 55.0);
  CHECK(p->link("pcie5-h100")->gather_gbps == 37.0);
  CHECK(p->link("cxl-type3-ddr5")->line_bytes == 64.0);
}

TEST_CASE("a missing field is an error naming the profile and the field", "[fabric]") {
  const std::string text = std::string(kGoodGpu) + R"(
[rdma.nic]
bandwidth_gbps = { value = 46, source = "s" }
latency_ns = { value = 2500, source = "s" }
)";
  auto p = cxlkv::fabric::parse_profiles(text, "test.toml");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().find("rdma.nic") != std::string::npos);
  CHECK(p.error().find("message_rate_mps") != std::string::npos);
}

TEST_CASE("a negative number is an error naming the profile, the field and the value", "[fabric]") {
  const std::string text = std::string(kGoodGpu) + R"(
[cxl.dev]
bandwidth_gbps = { value = -30, source = "s" }
latency_ns = { value = 300, source = "s" }
line_bytes = { value = 64, source = "s" }
)";
  auto p = cxlkv::fabric::parse_profiles(text, "test.toml");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().find("cxl.dev") != std::string::npos);
  CHECK(p.error().find("bandwidth_gbps") != std::string::npos);
  CHECK(p.error().find("-30") != std::string::npos);
}

TEST_CASE("a number without its source is rejected", "[fabric]") {
  const std::string text = R"(
[gpu.g]
hbm_gb = { value = 80 }
hbm_gbps = { value = 3350, source = "s" }
bf16_tflops = { value = 989, source = "s" }
fp8_tflops = { value = 1979, source = "s" }
)";
  auto p = cxlkv::fabric::parse_profiles(text, "test.toml");
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().find("gpu.g") != std::string::npos);
  CHECK(p.error().find("source") != std::string::npos);
}

TEST_CASE("an unknown profile name is an error listing the known ones", "[fabric]") {
  auto p = cxlkv::fabric::load_profiles(kProfiles);
  REQUIRE(p.ok());
  auto g = p->gpu("b200");
  REQUIRE_FALSE(g.ok());
  CHECK(g.error().find("b200") != std::string::npos);
  CHECK(g.error().find("h200-141g") != std::string::npos);
}

TEST_CASE("projection: bytes over rate plus round trips times latency", "[fabric]") {
  LinkProfile link;
  link.bandwidth_gbps = 50;
  link.gather_gbps = 25;
  link.latency_ns = 1000;
  OpCounts ops;
  ops.bytes = 50e9;
  ops.round_trips = 3;
  CHECK(cxlkv::fabric::project_seconds(link, ops) == Approx(1.0 + 3e-6));
  ops.pattern = Pattern::kGather;
  CHECK(cxlkv::fabric::project_seconds(link, ops) == Approx(2.0 + 3e-6));
}

TEST_CASE("projection: cache lines and message rate can set the time", "[fabric]") {
  LinkProfile cxl;
  cxl.bandwidth_gbps = 64;
  cxl.latency_ns = 300;
  cxl.line_bytes = 64;
  OpCounts ops;
  ops.bytes = 656e6;           // 1e6 entries of 656 B ...
  ops.lines = 11e6;            // ... touch 11 lines each = 704 B on the wire
  CHECK(cxlkv::fabric::project_seconds(cxl, ops) == Approx(704e6 / 64e9));
  LinkProfile nic;
  nic.bandwidth_gbps = 50;
  nic.message_rate_mps = 1;    // 1e6 messages/s
  OpCounts small;
  small.bytes = 1e6;
  small.messages = 1e6;
  CHECK(cxlkv::fabric::project_seconds(nic, small) == Approx(1.0));
}

TEST_CASE("a path runs at its slowest hop and adds the hops' latencies", "[fabric]") {
  LinkProfile pcie;
  pcie.bandwidth_gbps = 55;
  pcie.gather_gbps = 37;
  pcie.latency_ns = 1000;
  LinkProfile cxl;
  cxl.bandwidth_gbps = 30;
  cxl.latency_ns = 300;
  const std::vector<Hop> one{{pcie, 1}, {cxl, 1}};
  const std::vector<Hop> two{{pcie, 1}, {cxl, 2}};
  CHECK(cxlkv::fabric::path_rate_bytes_per_s(one, Pattern::kGather) == Approx(30e9));
  CHECK(cxlkv::fabric::path_rate_bytes_per_s(two, Pattern::kGather) == Approx(37e9));
  CHECK(cxlkv::fabric::path_rate_bytes_per_s(two, Pattern::kBulk) == Approx(55e9));
  CHECK(cxlkv::fabric::path_latency_s(two) == Approx(1.3e-6));
}
