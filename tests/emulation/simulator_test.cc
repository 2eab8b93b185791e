// Decode-stage simulator: the seed papers' figures stay within the bars' tolerances on the
// shipped scenarios, the designs behave monotonically where physics says they must, and bad
// scenarios and kernel files are rejected with messages that name the bad value.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <string>

#include "designs.h"
#include "fabric/fabric_model.h"
#include "reproduce.h"
#include "scenario.h"

using namespace cxlkv::sim;
using Catch::Approx;

namespace {
const std::string kDir = CXLKV_EMULATION_DIR;

Environment env_for(const std::string& scenario, std::optional<KernelRates> kernels = std::nullopt) {
  auto p = cxlkv::fabric::load_profiles(kDir + "/fabric/profiles.toml");
  REQUIRE(p.ok());
  auto s = load_scenario(kDir + "/sim/scenarios/" + scenario + ".toml");
  REQUIRE(s.ok());
  auto e = make_environment(s.value(), p.value(), kernels);
  REQUIRE(e.ok());
  return e.value();
}

const FigureCheck& find(const Reproduction& r, const std::string& metric, double context) {
  for (const FigureCheck& c : r.checks) {
    if (c.figure.metric == metric && c.figure.context == context) return c;
  }
  FAIL("no figure " << metric << " at " << context);
  return r.checks.front();
}
}  // namespace

TEST_CASE("ESS: +69.4 % at 32K and +123 % at 128K are reproduced within +-10 % of the gain", "[sim][ess]") {
  const Reproduction r = reproduce(env_for("ess"));
  const FigureCheck& g32 = find(r, "throughput_gain", 32768);
  const FigureCheck& g128 = find(r, "throughput_gain", 131072);
  CHECK(std::fabs(g32.model - 0.694) <= 0.10 * 0.694);
  CHECK(std::fabs(g128.model - 1.23) <= 0.10 * 1.23);
  CHECK(g128.model > g32.model);  // the gain grows with context: the baseline's batch shrinks 4x
  CHECK(r.all_within);
}

TEST_CASE("ESS: the baseline's HBM admits the published ~52 requests of 32K", "[sim][ess]") {
  const Environment env = env_for("ess");
  const DesignPoint base = evaluate(env, DesignId::kHbm, 32768);
  CHECK(base.batch == 52);
  CHECK(base.throughput_tps == Approx(9647).epsilon(0.02));
  CHECK(evaluate(env, DesignId::kHbm, 131072).batch == 13);  // 4x the context, 1/4 the batch
}

TEST_CASE("ESS: the LRU hit rate lies in the published 0.8-0.95 regime", "[sim][ess]") {
  const Environment env = env_for("ess");
  for (double ctx : {32768.0, 65536.0, 131072.0}) {
    const DesignPoint p = evaluate(env, DesignId::kEss, ctx);
    CHECK(p.hit_rate >= 0.8);
    CHECK(p.hit_rate <= 0.95);
  }
}

TEST_CASE("SAC: 2.1x throughput, 9.7x TTFT and 1.8x TBT are reproduced within +-15 %", "[sim][sac]") {
  const Reproduction r = reproduce(env_for("sac"));
  CHECK(std::fabs(find(r, "throughput_ratio", 131072).model - 2.1) <= 0.15 * 2.1);
  CHECK(std::fabs(find(r, "ttft_ratio", 131072).model - 9.7) <= 0.15 * 9.7);
  CHECK(std::fabs(find(r, "tbt_ratio", 131072).model - 1.8) <= 0.15 * 1.8);
  CHECK(r.all_within);
}

TEST_CASE("calibration refits the constants to the values the scenario files hold", "[sim][calibrate]") {
  for (const char* name : {"ess", "sac"}) {
    Environment env = env_for(name);
    for (const Fit& f : calibrate(&env)) {
      INFO(name << ": " << f.key << " file " << f.before << " fitted " << f.after);
      CHECK(f.converged);
      CHECK(f.after == Approx(f.before).epsilon(0.02));
    }
  }
}

TEST_CASE("the TTFT of an RDMA bulk fetch grows with the context", "[sim][ttft]") {
  const Environment env = env_for("default");
  double last = 0;
  for (double ctx : {16384.0, 32768.0, 65536.0, 131072.0}) {
    const DesignPoint p = evaluate(env, DesignId::kRdmaBulk, ctx);
    CHECK(p.ttft.total_s > last);
    last = p.ttft.total_s;
  }
  const double t32 = evaluate(env, DesignId::kRdmaBulk, 32768).ttft.arrival_s;
  const double t128 = evaluate(env, DesignId::kRdmaBulk, 131072).ttft.arrival_s;
  CHECK(t128 / t32 == Approx(4.0).epsilon(0.05));  // the whole prefix arrives: linear in length
}

TEST_CASE("our TTFT grows with the prefix only through its indexer and first step", "[sim][ttft]") {
  const Environment env = env_for("default");
  const ModelShape m = deepseek_v32();
  const DesignPoint a = evaluate(env, DesignId::kOurs, 32768);
  const DesignPoint b = evaluate(env, DesignId::kOurs, 131072);
  // Arrival is the indexer only: 132 B per token and layer, not 788.
  const double indexer_rate = m.indexer_bytes(131072 - 32768) / (b.ttft.arrival_s - a.ttft.arrival_s);
  CHECK(indexer_rate > 40e9);  // bulk rate of the CXL path, not a latent-sized transfer
  // What remains after arrival is the first step: its cold top-k fetch does not depend on length.
  const double cold_a = a.ttft.first_step_s - a.step.total_s;
  const double cold_b = b.ttft.first_step_s - b.step.total_s;
  CHECK(cold_a == Approx(cold_b).epsilon(1e-9));
  // And the whole TTFT stays several times below the bulk fetch's at 128K.
  CHECK(evaluate(env, DesignId::kRdmaBulk, 131072).ttft.total_s > 2 * b.ttft.total_s);
}

TEST_CASE("offloading the latent admits a larger batch than keeping it in HBM", "[sim][footprint]") {
  const Environment env = env_for("default");
  for (double ctx : {32768.0, 65536.0, 131072.0}) {
    const int hbm = evaluate(env, DesignId::kHbm, ctx).batch_cap;
    CHECK(evaluate(env, DesignId::kRdmaBulk, ctx).batch_cap == hbm);
    CHECK(evaluate(env, DesignId::kEss, ctx).batch_cap > hbm);
    CHECK(evaluate(env, DesignId::kSac, ctx).batch_cap > hbm);
    CHECK(evaluate(env, DesignId::kOurs, ctx).batch_cap > hbm);
  }
}

TEST_CASE("a higher measured gather rate from --kernels never slows our design", "[sim][kernels]") {
  const Environment base = env_for("default");
  KernelRates fast;
  fast.origin = "test";
  fast.gather_gbps = 50.1;
  fast.bulk_h2d_gbps = 55.0;
  const Environment faster = env_for("default", fast);
  CHECK(faster.gather_note.find("50.1") != std::string::npos);
  for (double ctx : {32768.0, 131072.0}) {
    CHECK(evaluate(faster, DesignId::kOurs, ctx).throughput_tps >=
          evaluate(base, DesignId::kOurs, ctx).throughput_tps);
  }
}

TEST_CASE("a hot buffer of one top-k hits at the step overlap, larger ones more", "[sim][hit]") {
  CHECK(hot_buffer_hit_rate(0, 0.8, 0.7) == 0.0);
  CHECK(hot_buffer_hit_rate(1, 0.8, 0.7) == Approx(0.8));
  CHECK(hot_buffer_hit_rate(4, 0.8, 0.7) > hot_buffer_hit_rate(2, 0.8, 0.7));
  CHECK(hot_buffer_hit_rate(1e9, 0.8, 0.7) == Approx(0.8 + 0.2 * 0.7));
}

TEST_CASE("a scenario missing an assumption is rejected naming it", "[sim][scenario]") {
  auto s = parse_scenario("name = \"x\"\n[assumptions]\ngpu = { value = \"h200-141g\", why = \"w\" }\n", "x.toml");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().find("x.toml") != std::string::npos);
  CHECK(s.error().find("missing assumption") != std::string::npos);
}

TEST_CASE("an assumption without a why, or out of range, is rejected naming it", "[sim][scenario]") {
  auto no_why = parse_scenario("name = \"x\"\n[assumptions]\ngpu = { value = \"h200-141g\" }\n", "x.toml");
  REQUIRE_FALSE(no_why.ok());
  CHECK(no_why.error().find("'gpu' has no 'why'") != std::string::npos);
  auto bad = parse_scenario("name = \"x\"\n[assumptions]\nhbm_efficiency = { value = 1.5, why = \"w\" }\n", "x.toml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("hbm_efficiency") != std::string::npos);
  CHECK(bad.error().find("1.5") != std::string::npos);
}

TEST_CASE("a kernels file without a positive gather rate is rejected naming the field", "[sim][kernels]") {
  auto k = parse_kernel_rates(R"({"bulk_h2d_gbps": 55.0})", "k.json");
  REQUIRE_FALSE(k.ok());
  CHECK(k.error().find("gather_gbps") != std::string::npos);
  auto neg = parse_kernel_rates(R"({"gather_gbps": -1})", "k.json");
  REQUIRE_FALSE(neg.ok());
  auto good = parse_kernel_rates(R"({"gather_gbps": 50.1, "device": "H100"})", "k.json");
  REQUIRE(good.ok());
  CHECK(good->device == "H100");
}
