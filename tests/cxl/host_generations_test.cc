// Coherence rule 2 on first sight: the host's record of slab generations decides, by counted
// invalidations, when a reader must drop a slab's lines; it is shared by processes of the host,
// refuses an object it cannot trust, and goes with its region.
#include <catch2/catch_test_macros.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "cacheline.h"
#include "host_generations.h"
#include "cxlkv/layout.h"
#include "temp_region.h"

using namespace cxlkv;
using cxl::HostGenerations;

namespace {

struct Uuid {
  uint8_t bytes[16];
  Uuid() { REQUIRE(getrandom(bytes, sizeof bytes, 0) == sizeof bytes); }
  ~Uuid() { HostGenerations::remove(bytes); }
};

bool record_exists(const Uuid& uuid) {
  const int fd = shm_open(HostGenerations::record_name(uuid.bytes).c_str(), O_RDONLY, 0);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

// The cache lines invalidate() dropped during f().
template <typename F>
uint64_t lines_invalidated(F&& f) {
  cxl::reset_primitive_counts();
  f();
  return cxl::primitive_counts().invalidate_lines;
}

constexpr size_t kSlabBytes = 64 * 16;
alignas(64) uint8_t g_slab[kSlabBytes];

}  // namespace

TEST_CASE("a reader invalidates a slab unless the host made its generation safe or it is the slab's first") {
  Uuid uuid;
  auto record = HostGenerations::open(uuid.bytes, 8);
  REQUIRE(record->shared());
  CHECK(record->why().empty());
  CHECK(record->recorded(3) == 0);

  // The first generation of a slab: nothing older of it can be cached.
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_read(3, 1, g_slab, kSlabBytes)); }) == 0);
  CHECK(record->recorded(3) == 1);
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_read(3, 1, g_slab, kSlabBytes)); }) == 0);

  // Reused: every line of the slab goes, once.
  CHECK(lines_invalidated([&] { CHECK(record->before_read(3, 2, g_slab, kSlabBytes)); }) == kSlabBytes / 64);
  CHECK(record->recorded(3) == 2);
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_read(3, 2, g_slab, kSlabBytes)); }) == 0);

  // First sight of a later generation (no process of this host read the slab before): invalidated.
  CHECK(record->recorded(5) == 0);
  CHECK(lines_invalidated([&] { CHECK(record->before_read(5, 7, g_slab, kSlabBytes)); }) == kSlabBytes / 64);
  CHECK(record->recorded(5) == 7);

  // An old lease's generation after a newer one: invalidated, and the record is not lowered.
  CHECK(lines_invalidated([&] { CHECK(record->before_read(5, 6, g_slab, kSlabBytes)); }) == kSlabBytes / 64);
  CHECK(record->recorded(5) == 7);
}

TEST_CASE("where first generations are not trusted (a devdax device), a first sight of any generation invalidates") {
  Uuid uuid;
  auto record = HostGenerations::open(uuid.bytes, 4, cxl::FirstGeneration::kInvalidated);
  CHECK(lines_invalidated([&] { CHECK(record->before_read(0, 1, g_slab, kSlabBytes)); }) == kSlabBytes / 64);
  CHECK(record->recorded(0) == 1);
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_read(0, 1, g_slab, kSlabBytes)); }) == 0);
}

TEST_CASE("a writer invalidates only where the host's readers recorded an older generation, and records nothing") {
  Uuid uuid;
  auto record = HostGenerations::open(uuid.bytes, 4);
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_write(0, 4, g_slab, kSlabBytes)); }) == 0);
  CHECK(record->recorded(0) == 0);
  record->before_read(0, 4, g_slab, kSlabBytes);
  CHECK(lines_invalidated([&] { CHECK_FALSE(record->before_write(0, 4, g_slab, kSlabBytes)); }) == 0);
  CHECK(lines_invalidated([&] { CHECK(record->before_write(0, 5, g_slab, kSlabBytes)); }) == kSlabBytes / 64);
  CHECK(record->recorded(0) == 4);
}

TEST_CASE("the record is the host's: another process finds what this one made safe") {
  Uuid uuid;
  auto record = HostGenerations::open(uuid.bytes, 4);
  REQUIRE(record->shared());
  record->before_read(2, 9, g_slab, kSlabBytes);  // made safe here

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A fresh process: slab 2 at 9 needs nothing; slab 1 at 3 is first sight and is invalidated.
    auto mine = HostGenerations::open(uuid.bytes, 4);
    cxl::reset_primitive_counts();
    const bool second = mine->before_read(2, 9, g_slab, kSlabBytes);
    const uint64_t after_second = cxl::primitive_counts().invalidate_lines;
    const bool first_sight = mine->before_read(1, 3, g_slab, kSlabBytes);
    _exit(mine->shared() && !second && after_second == 0 && first_sight ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(record->recorded(1) == 3);  // the child's record, seen here
}

TEST_CASE("a record of the wrong size or open to other users is not trusted: a private one is used") {
  Uuid uuid;
  const std::string name = HostGenerations::record_name(uuid.bytes);
  CHECK(name.find("/cxlkv-gen-") == 0);
  // Puts an object of `size` bytes and `mode` where the record goes, then opens the record.
  auto open_over = [&](off_t size, mode_t mode) {
    const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, size) == 0);
    REQUIRE(fchmod(fd, mode) == 0);
    ::close(fd);
    return HostGenerations::open(uuid.bytes, 8);
  };

  SECTION("wrong size") {
    auto record = open_over(24, 0600);
    CHECK_FALSE(record->shared());
    CHECK(record->why().find("24 bytes, expected 64") != std::string::npos);
    // Still safe: first sight of a reused slab invalidates.
    CHECK(record->before_read(1, 2, g_slab, kSlabBytes));
  }
  SECTION("writable by other users") {
    auto record = open_over(64, 0666);
    CHECK_FALSE(record->shared());
    CHECK(record->why().find("mode 666") != std::string::npos);
  }
}

TEST_CASE("removing a region removes this user's record of it") {
  auto spec = testing::temp_spec(cxl::Backend::kShm, 64 << 20);
  testing::RegionCleanup cleanup{spec};
  auto layout = Layout::parse("deepseek-v3.2");
  REQUIRE(layout);
  auto region = cxl::Region::create(spec, *layout, 1);
  REQUIRE(region);
  Uuid uuid;
  std::memcpy(uuid.bytes, (*region)->header().uuid, sizeof uuid.bytes);
  auto record = HostGenerations::open(uuid.bytes, 2);
  REQUIRE(record->shared());
  REQUIRE(record_exists(uuid));
  region->reset();
  REQUIRE(cxl::Region::remove(spec));
  CHECK_FALSE(record_exists(uuid));
}
