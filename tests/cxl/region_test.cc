// Regions over every backend this machine runs: create, reopen, share between processes, and
// refuse damaged headers without writing a byte.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "region.h"
#include "temp_region.h"

using namespace cxlkv;
using namespace cxlkv::cxl;

namespace {

constexpr uint64_t kSize = 8ull << 20;  // 8 MiB

Layout dsv32() { return *Layout::parse("deepseek-v3.2"); }

// Creates the region; devdax gets a file stand-in that exists beforehand, as a device would.
std::unique_ptr<Region> make_region(const RegionSpec& spec) {
  if (spec.backend == Backend::kDevdax) {
    int fd = ::open(spec.path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, static_cast<off_t>(spec.size)) == 0);
    ::close(fd);
    auto r = Region::format(spec, dsv32(), 1);
    REQUIRE(r.is_ok());
    return std::move(*r);
  }
  auto r = Region::create(spec, dsv32(), 1);
  INFO(r.status().to_string());
  REQUIRE(r.is_ok());
  return std::move(*r);
}

std::vector<uint8_t> snapshot(const Region& r) { return {r.base(), r.base() + r.size()}; }

}  // namespace

TEST_CASE("a region is created, written and reopened with its bytes on every backend") {
  const Backend backend = GENERATE(Backend::kShm, Backend::kFile, Backend::kDevdax, Backend::kNuma);
  CAPTURE(backend_name(backend));
  auto spec = testing::temp_spec(backend, kSize);
  testing::RegionCleanup cleanup{spec};
  {
    auto region = make_region(spec);
    CHECK(region->size() == kSize);
    CHECK(region->header().region_bytes == kSize);
    CHECK(region->layout() == dsv32());
    CHECK(region->slab_pages() == 1);
    std::memcpy(region->base() + kSize - 16, "tail-of-region!", 16);
  }
  auto expected = dsv32();
  auto reopened = Region::open(spec, &expected);
  INFO(reopened.status().to_string());
  REQUIRE(reopened.is_ok());
  CHECK(std::memcmp((*reopened)->base() + kSize - 16, "tail-of-region!", 16) == 0);
}

TEST_CASE("creating a region that exists is an error and leaves it as it was") {
  auto spec = testing::temp_spec(Backend::kShm, kSize);
  testing::RegionCleanup cleanup{spec};
  auto first = make_region(spec);
  std::memcpy(first->base() + 8192, "keep", 4);
  auto second = Region::create(spec, dsv32(), 1);
  REQUIRE_FALSE(second.is_ok());
  CHECK(second.status().code() == Code::kAlreadyExists);
  CHECK(std::memcmp(first->base() + 8192, "keep", 4) == 0);
}

TEST_CASE("opening a region that does not exist, or a bad name, is a clear error") {
  RegionSpec spec;
  spec.backend = Backend::kShm;
  spec.path = "/cxlkv-test-does-not-exist";
  auto r = Region::open(spec);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kNotFound);
  spec.path = "no-leading-slash";
  CHECK(Region::open(spec).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a numa node that does not exist is a clear error") {
  auto spec = testing::temp_spec(Backend::kNuma, kSize);
  spec.numa_node = 4095;
  testing::RegionCleanup cleanup{spec};
  auto r = Region::create(spec, dsv32(), 1);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("4095") != std::string::npos);
}

TEST_CASE("a damaged header is refused with the problem named, and nothing is written") {
  auto spec = testing::temp_spec(Backend::kFile, kSize);
  testing::RegionCleanup cleanup{spec};
  auto region = make_region(spec);
  auto* h = reinterpret_cast<RegionHeader*>(region->base());

  struct Damage {
    const char* name;
    void (*apply)(RegionHeader*);
    Code code;
    const char* says;
  };
  const Damage damages[] = {
      {"magic", [](RegionHeader* x) { x->magic[0] = 'X'; }, Code::kCorrupt, "magic"},
      {"version", [](RegionHeader* x) { x->format_version = 9; x->checksum = region_header_checksum(*x); }, Code::kCorrupt, "version 9"},
      {"checksum", [](RegionHeader* x) { x->uuid[3] ^= 1; }, Code::kCorrupt, "checksum"},
      {"size", [](RegionHeader* x) { x->region_bytes *= 2; x->checksum = region_header_checksum(*x); }, Code::kCorrupt, "bytes"},
      {"layout", [](RegionHeader* x) { x->layout.layers = 0; x->checksum = region_header_checksum(*x); }, Code::kCorrupt, "layers"},
      // A region of format 1 kept its page records where clients map them: refused, the way out named.
      {"format 1", [](RegionHeader* x) { x->format_version = 1; x->checksum = region_header_checksum(*x); }, Code::kMismatch,
       "format version 1, which kept the page records where clients map them; this build reads version 2 only. Its "
       "cached pages cannot be carried over: start the daemon with --format"},
      {"kind", [](RegionHeader* x) { x->kind = RegionKind::kMetadata; x->checksum = region_header_checksum(*x); },
       Code::kMismatch, "a metadata region, opened as a data region"},
  };
  for (const auto& d : damages) {
    CAPTURE(d.name);
    const RegionHeader good = *h;
    d.apply(h);
    const auto before = snapshot(*region);
    auto r = Region::open(spec);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == d.code);
    CHECK(r.status().message().find(d.says) != std::string::npos);
    CHECK(r.status().message().find(spec.path) != std::string::npos);
    CHECK(snapshot(*region) == before);  // open wrote nothing
    *h = good;
  }
  REQUIRE(Region::open(spec).is_ok());
}

TEST_CASE("opening with another layout is a mismatch that names both layouts") {
  auto spec = testing::temp_spec(Backend::kShm, kSize);
  testing::RegionCleanup cleanup{spec};
  auto region = make_region(spec);
  auto gqa = *Layout::parse("gqa-8x128");
  auto r = Region::open(spec, &gqa);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kMismatch);
  CHECK(r.status().message().find("gqa-8x128") != std::string::npos);
  CHECK(r.status().message().find("deepseek-v3.2") != std::string::npos);
}

TEST_CASE("a truncated region file is refused") {
  auto spec = testing::temp_spec(Backend::kFile, kSize);
  testing::RegionCleanup cleanup{spec};
  make_region(spec).reset();
  SECTION("shorter than the header says") {
    REQUIRE(truncate(spec.path.c_str(), kSize / 2) == 0);
    auto r = Region::open(spec);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("truncated") != std::string::npos);
  }
  SECTION("shorter than the header itself") {
    REQUIRE(truncate(spec.path.c_str(), 100) == 0);
    auto r = Region::open(spec);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK(r.status().message().find("truncated") != std::string::npos);
  }
  SECTION("empty") {
    REQUIRE(truncate(spec.path.c_str(), 0) == 0);
    CHECK_FALSE(Region::open(spec).is_ok());
  }
}

TEST_CASE("two processes mapping one region see each other's writes") {
  const Backend backend = GENERATE(Backend::kShm, Backend::kFile);
  CAPTURE(backend_name(backend));
  auto spec = testing::temp_spec(backend, kSize);
  testing::RegionCleanup cleanup{spec};
  auto region = make_region(spec);
  std::memcpy(region->base() + 65536, "from-parent", 12);

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto r = Region::open(spec);
    if (!r.is_ok()) _exit(2);
    if (std::memcmp((*r)->base() + 65536, "from-parent", 12) != 0) _exit(3);
    std::memcpy((*r)->base() + 131072, "from-child", 11);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(std::memcmp(region->base() + 131072, "from-child", 11) == 0);
}

TEST_CASE("a region opened from a passed fd is the same memory") {
  auto spec = testing::temp_spec(Backend::kShm, kSize);
  testing::RegionCleanup cleanup{spec};
  auto region = make_region(spec);
  const int fd = dup(region->fd());
  auto other = Region::from_fd(fd, spec.path, nullptr);
  REQUIRE(other.is_ok());
  std::memcpy(region->base() + 4096 * 3, "same", 4);
  CHECK(std::memcmp((*other)->base() + 4096 * 3, "same", 4) == 0);
}

TEST_CASE("a region opened read-only maps the same bytes on every backend and faults on a store") {
  const Backend backend = GENERATE(Backend::kShm, Backend::kFile, Backend::kDevdax, Backend::kNuma);
  CAPTURE(backend_name(backend));
  auto spec = testing::temp_spec(backend, kSize);
  testing::RegionCleanup cleanup{spec};
  auto region = make_region(spec);
  std::memcpy(region->base() + 65536, "written-before", 15);
  std::memcpy(region->base() + kSize - 16, "tail-of-region!", 16);

  auto expected = dsv32();
  auto ro = Region::open(spec, &expected, OpenMode::kReadOnly);
  INFO(ro.status().to_string());
  REQUIRE(ro.is_ok());
  CHECK((*ro)->read_only());
  CHECK_FALSE(region->read_only());
  CHECK((*ro)->size() == kSize);
  CHECK((*ro)->layout() == dsv32());
  (*ro)->populate();  // false on kernels before 5.14; the bytes are the same either way
  CHECK(snapshot(**ro) == snapshot(*region));
  std::memcpy(region->base() + 131072, "written-after", 14);
  CHECK(std::memcmp((*ro)->base() + 131072, "written-after", 14) == 0);

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The kernel's own answer to the store, not a handler's (Catch2 and ASan install their own).
    signal(SIGSEGV, SIG_DFL);
    *reinterpret_cast<volatile uint8_t*>((*ro)->base() + 65536) = 'X';
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
  CHECK(std::memcmp(region->base() + 65536, "written-before", 15) == 0);
}

TEST_CASE("a read-only open refuses a damaged header, another layout or a truncated file as a read-write open does") {
  auto spec = testing::temp_spec(Backend::kFile, kSize);
  testing::RegionCleanup cleanup{spec};
  // Both opens must fail with the same code and the same message: one header check.
  auto same_refusal = [&](const Layout* expected) {
    auto rw = Region::open(spec, expected, OpenMode::kReadWrite);
    auto ro = Region::open(spec, expected, OpenMode::kReadOnly);
    REQUIRE_FALSE(rw.is_ok());
    REQUIRE_FALSE(ro.is_ok());
    CHECK(ro.status().code() == rw.status().code());
    CHECK(ro.status().message() == rw.status().message());
    CHECK(ro.status().message().find(spec.path) != std::string::npos);
    return ro.status();
  };
  {
    auto region = make_region(spec);
    auto* h = reinterpret_cast<RegionHeader*>(region->base());
    const RegionHeader good = *h;
    h->magic[0] = 'X';
    CHECK(same_refusal(nullptr).message().find("magic") != std::string::npos);
    *h = good;
    h->layout.layers = 0;
    h->checksum = region_header_checksum(*h);
    CHECK(same_refusal(nullptr).message().find("layers") != std::string::npos);
    *h = good;
    auto gqa = *Layout::parse("gqa-8x128");
    CHECK(same_refusal(&gqa).code() == Code::kMismatch);
  }
  SECTION("shorter than the header says") {
    REQUIRE(truncate(spec.path.c_str(), kSize / 2) == 0);
    CHECK(same_refusal(nullptr).message().find("truncated") != std::string::npos);
  }
  SECTION("shorter than the header itself") {
    REQUIRE(truncate(spec.path.c_str(), 100) == 0);
    CHECK(same_refusal(nullptr).code() == Code::kCorrupt);
  }
}
