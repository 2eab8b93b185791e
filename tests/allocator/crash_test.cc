// Crash consistency of the slab allocator: a child allocates and frees at full speed and is
// killed with SIGKILL at a random instant; the region must reopen with every slab free or in use
// exactly once, and the allocator must hand out exactly the free slabs, each once.
#include <catch2/catch_test_macros.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "pool_region.h"
#include "slab_allocator.h"
#include "temp_region.h"

using namespace cxlkv;
using namespace cxlkv::cxl;

namespace {

// The child: open, then allocate and free at random until killed. Also stamps each slab it
// allocates with its generation, so a slab handed out twice would show two owners. Writes one
// byte to `started` after its first allocation, so the kill lands in real work however slowly
// the child starts (a sanitizer's fork is slow).
[[noreturn]] void churn(const RegionSpec& spec, uint32_t seed, int started) {
  auto region = Region::open(spec);
  if (!region.is_ok()) _exit(10);
  auto metadata = testing::open_pool_metadata(**region);
  if (!metadata.is_ok()) _exit(10);
  auto a = SlabAllocator::open(**region, **metadata);
  if (!a.is_ok()) _exit(11);
  std::mt19937 rng(seed);
  std::vector<uint32_t> held;
  bool told = false;
  for (;;) {
    bool allocated = false;
    if (held.empty() || rng() % 3 != 0) {
      auto s = (*a)->allocate();
      if (s.is_ok()) held.push_back(*s), allocated = true;
      else if (s.status().code() != Code::kExhausted || held.empty()) _exit(12);
      if (allocated && !told) {
        const char byte = 1;
        if (::write(started, &byte, 1) != 1) _exit(14);
        told = true;
      }
    }
    if (!allocated) {
      const size_t i = rng() % held.size();
      if (!(*a)->free(held[i]).is_ok()) _exit(13);
      held[i] = held.back();
      held.pop_back();
    }
  }
}

}  // namespace

TEST_CASE("SIGKILL at any point of allocate or free leaves every slab free or in use exactly once") {
  // Small slabs so the region has many of them and each operation is quick.
  auto spec = testing::temp_spec(Backend::kShm, 8ull << 20);
  testing::RegionCleanup cleanup{spec};
  {
    auto layout = *Layout::parse("custom:name=crash,layers=2,page_tokens=64,stream=k/64/64/sparse");
    auto region = Region::create(spec, layout, 1);
    REQUIRE(region.is_ok());
    REQUIRE(testing::format_pool(**region).is_ok());
  }
  std::mt19937 rng(20261123);
  const int iterations = 300;
  uint64_t max_in_use_seen = 0;
  for (int it = 0; it < iterations; ++it) {
    int started[2];
    REQUIRE(::pipe(started) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) churn(spec, static_cast<uint32_t>(it), started[1]);
    char byte = 0;
    REQUIRE(::read(started[0], &byte, 1) == 1);  // the child is allocating now
    ::close(started[0]);
    ::close(started[1]);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    REQUIRE(kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    // Exited on its own means it failed before the kill (codes 10-14).
    REQUIRE(WIFSIGNALED(status));

    auto region = Region::open(spec);
    REQUIRE(region.is_ok());
    auto metadata = testing::open_pool_metadata(**region);
    REQUIRE(metadata.is_ok());
    auto a = SlabAllocator::open(**region, **metadata);
    INFO("iteration " << it << ": " << a.status().to_string());
    REQUIRE(a.is_ok());
    const SlabStats s = (*a)->stats();
    REQUIRE(s.free + s.in_use == s.total);
    max_in_use_seen = std::max<uint64_t>(max_in_use_seen, s.in_use);
    uint32_t in_use_words = 0;
    for (uint32_t i = 0; i < s.total; ++i) in_use_words += (*a)->in_use(i);
    REQUIRE(in_use_words == s.in_use);
    // Every free slab is handed out exactly once, then the allocator is exhausted.
    std::set<uint32_t> handed;
    for (uint32_t i = 0; i < s.free; ++i) {
      auto slab = (*a)->allocate();
      REQUIRE(slab.is_ok());
      REQUIRE(handed.insert(*slab).second);
    }
    REQUIRE((*a)->allocate().status().code() == Code::kExhausted);
    // Free everything, the crashed child's slabs too, through the reopened allocator.
    for (uint32_t i = 0; i < s.total; ++i) REQUIRE((*a)->free(i).is_ok());
    REQUIRE((*a)->stats().free == s.total);
  }
  // The kills landed in the middle of real work, not on an idle allocator.
  CHECK(max_in_use_seen > 0);
}
