// Lookup latency of the real daemon over its Unix socket: a 2048-key prefix (a 128K-token
// request), all cached, looked up and released in a loop. Prints p50/p99 beside the floor: the
// round trip of a Stats request on the same connection. The bar: 2048-key lookup p50 <= 200 us.
// Usage: CXLKV_POOLD=build/pool/cxlkv-poold cxlkv-bench-poold-lookup [iterations]
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "raw_client.h"
#include "poold_process.h"
#include "temp_region.h"

using namespace cxlkv;
using namespace cxlkv::testing;
using Clock = std::chrono::steady_clock;

namespace {

double percentile(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 2000;
  constexpr int kKeys = 2048;
  if (PooldProcess::binary().empty()) {
    std::fprintf(stderr, "set CXLKV_POOLD to the cxlkv-poold binary\n");
    return 2;
  }
  cxl::RegionSpec spec;
  spec.path = unique_name("bench", true);
  RegionCleanup cleanup{spec};
  const std::string socket = unique_name("bench.sock");
  PooldProcess d({"--path", spec.path, "--size", "64MiB", "--socket", socket, "--metrics-port", "0", "--layout",
                  "custom:name=b,layers=1,page_tokens=64,stream=latent/64/64/sparse", "--log-level", "warn",
                  "--huge-pages", "off"},
                 socket);
  if (!d.start()) {
    std::fprintf(stderr, "cxlkv-poold did not start:\n%s", d.log().c_str());
    return 1;
  }
  RawClient c(socket);
  c.hello("bench", "x", "m");
  const auto keys = test_keys(1, kKeys);
  const wire::Response* r = c.reserve(wire::Key(), keys);
  if (code_of(r) != Code::kOk || code_of(c.commit(r->body_as_ReserveResponse()->lease(),
                                                   std::vector<uint64_t>(kKeys, 0))) != Code::kOk) {
    std::fprintf(stderr, "could not commit %d pages\n", kKeys);
    return 1;
  }
  // The lookup request is built once; the daemon parses and answers it every time.
  flatbuffers::FlatBufferBuilder lookup_fbb;
  lookup_fbb.Finish(wire::CreateRequest(lookup_fbb, 1, wire::RequestBody::LookupRequest,
                                        wire::CreateLookupRequestDirect(lookup_fbb, &keys).Union()));
  std::vector<double> lookup_us, stats_us;
  for (int i = 0; i < iterations + 100; ++i) {
    const auto t0 = Clock::now();
    c.send(lookup_fbb);
    r = c.receive();
    const auto t1 = Clock::now();
    if (code_of(r) != Code::kOk || r->body_as_LookupResponse()->pages()->size() != kKeys) {
      std::fprintf(stderr, "lookup %d failed\n", i);
      return 1;
    }
    c.release(r->body_as_LookupResponse()->lease());
    const auto t2 = Clock::now();
    c.stats();
    const auto t3 = Clock::now();
    if (i < 100) continue;  // warm-up
    lookup_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    stats_us.push_back(std::chrono::duration<double, std::micro>(t3 - t2).count());
  }
  std::printf("lookup of %d cached keys over the Unix socket, %d iterations:\n", kKeys, iterations);
  std::printf("  lookup   p50 %8.1f us   p99 %8.1f us   (bar: p50 <= 200 us)\n", percentile(lookup_us, 0.5),
              percentile(lookup_us, 0.99));
  std::printf("  floor    p50 %8.1f us   p99 %8.1f us   (Stats round trip, same connection)\n",
              percentile(stats_us, 0.5), percentile(stats_us, 0.99));
  return 0;
}
