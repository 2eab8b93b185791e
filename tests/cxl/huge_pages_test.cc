// Where a region goes under each huge-page policy, for machines with and without transparent huge
// pages for shared memory (/dev/shm's huge= option, shmem_enabled's force and deny) and hugetlbfs pages (the machine is described to place_region, so every case runs anywhere), and
// what the probe reads on this machine.
#include <catch2/catch_test_macros.hpp>

#include <set>
#include <string>

#include "huge_pages.h"
#include "sizes.h"

using namespace cxlkv;
using namespace cxlkv::cxl;

namespace {

constexpr uint64_t kSize = (1664ull << 20) + 4096;  // not a whole number of 2 MiB pages

// shm_huge: /dev/shm's huge= option; shmem_enabled stays "never" (it rules only with force/deny).
HugePageSupport machine(const std::string& shm_huge, uint64_t free_pages, bool mounted = true) {
  HugePageSupport s;
  s.shm_mount_huge = shm_huge;
  s.shmem_thp = "never";
  if (mounted) s.hugetlbfs.push_back({"/dev/hugepages", kHugePageBytes, free_pages});
  return s;
}

RegionSpec shm() { return RegionSpec{Backend::kShm, "/cxlkv-pool", -1, kSize}; }

// Paths that exist on the described machine.
struct Paths {
  std::set<std::string> present;
  bool operator()(const std::string& p) const { return present.count(p) != 0; }
};

}  // namespace

TEST_CASE("policy names parse, and a wrong one is refused naming it") {
  CHECK(*parse_huge_page_policy("auto") == HugePagePolicy::kAuto);
  CHECK(*parse_huge_page_policy("require") == HugePagePolicy::kRequire);
  CHECK(*parse_huge_page_policy("off") == HugePagePolicy::kOff);
  auto bad = parse_huge_page_policy("yes");
  REQUIRE(!bad.is_ok());
  CHECK(bad.status().message().find("'yes'") != std::string::npos);
}

TEST_CASE("shared memory's THP: /dev/shm's huge= option decides, shmem_enabled's force and deny override it") {
  CHECK(machine("advise", 0).shmem_thp_usable());
  CHECK(machine("within_size", 0).shmem_thp_usable());
  CHECK(!machine("never", 0).shmem_thp_usable());
  HugePageSupport forced = machine("never", 0);
  forced.shmem_thp = "force";
  CHECK(forced.shmem_thp_usable());
  HugePageSupport denied = machine("always", 0);
  denied.shmem_thp = "deny";
  CHECK(!denied.shmem_thp_usable());
  // shmem_enabled 'advise' alone does not reach /dev/shm's files (it rules internal shm mounts).
  HugePageSupport internal_only = machine("never", 0);
  internal_only.shmem_thp = "advise";
  CHECK(!internal_only.shmem_thp_usable());
}

TEST_CASE("a new shm region takes shared memory's THP where it is on, else hugetlbfs pages, else 4 KiB") {
  Paths none;
  SECTION("/dev/shm huge=advise: stays in shared memory, huge") {
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("advise", 0), none);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kShm);
    CHECK(p->spec.path == "/cxlkv-pool");
    CHECK(p->huge);
    CHECK(p->advice.empty());
  }
  SECTION("THP never, enough free hugetlbfs pages: a file on the mount, its size whole pages") {
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("never", 833), none);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kFile);
    CHECK(p->spec.path == "/dev/hugepages/cxlkv-pool");
    CHECK(p->spec.size == 833 * kHugePageBytes);
    CHECK(p->huge);
    CHECK(p->pages.find("hugetlbfs /dev/hugepages") != std::string::npos);
  }
  SECTION("a new region on hugetlbfs is marked moved (the daemon may fall back if its create fails)") {
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("never", 833), none);
    REQUIRE(p.is_ok());
    CHECK(p->moved);
    CHECK(!place_region(shm(), HugePagePolicy::kAuto, machine("advise", 833), none)->moved);
  }
  SECTION("mounts that cannot take it are passed over: 1 GiB pages, not writable") {
    HugePageSupport gigantic = machine("never", 0, false);
    gigantic.hugetlbfs.push_back({"/mnt/huge1g", 1ull << 30, 100});
    CHECK(!place_region(shm(), HugePagePolicy::kAuto, gigantic, none)->huge);
    HugePageSupport read_only = machine("never", 5000);
    read_only.hugetlbfs[0].writable = false;
    CHECK(!place_region(shm(), HugePagePolicy::kAuto, read_only, none)->huge);
    read_only.hugetlbfs.push_back({"/mnt/huge2", kHugePageBytes, 5000});
    auto second = place_region(shm(), HugePagePolicy::kAuto, read_only, none);
    REQUIRE(second.is_ok());
    CHECK(second->spec.path == "/mnt/huge2/cxlkv-pool");
  }
  SECTION("THP never, too few free pages: 4 KiB pages and advice naming both ways") {
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("never", 832), none);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kShm);
    CHECK(!p->huge);
    CHECK(p->advice.find("huge=advise /dev/shm") != std::string::npos);
    CHECK(p->advice.find("833 pages") != std::string::npos);
  }
  SECTION("require on that machine: refused, naming what it lacks") {
    auto p = place_region(shm(), HugePagePolicy::kRequire, machine("never", 10), none);
    REQUIRE(!p.is_ok());
    CHECK(p.status().code() == Code::kUnavailable);
    CHECK(p.status().message().find("/dev/shm huge=never") != std::string::npos);
    CHECK(p.status().message().find("10 free") != std::string::npos);
  }
  SECTION("off: shared memory, 4 KiB pages, even where huge pages are offered") {
    auto p = place_region(shm(), HugePagePolicy::kOff, machine("advise", 1000), none);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kShm);
    CHECK(!p->huge);
  }
}

TEST_CASE("an existing region stays where an earlier start put it") {
  SECTION("on hugetlbfs: opened there even though the machine now has no free pages") {
    Paths on_mount{{"/dev/hugepages/cxlkv-pool"}};
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("never", 0), on_mount);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kFile);
    CHECK(p->spec.path == "/dev/hugepages/cxlkv-pool");
  }
  SECTION("on hugetlbfs, and huge pages now off: still opened there, not made anew in shared memory") {
    Paths on_mount{{"/dev/hugepages/cxlkv-pool"}};
    auto p = place_region(shm(), HugePagePolicy::kOff, machine("never", 0), on_mount);
    REQUIRE(p.is_ok());
    CHECK(p->spec.path == "/dev/hugepages/cxlkv-pool");
    CHECK(!p->moved);  // it exists: nothing to fall back from
  }
  SECTION("in shared memory: stays there, though hugetlbfs pages are free now") {
    Paths in_shm{{"/dev/shm/cxlkv-pool"}};
    auto p = place_region(shm(), HugePagePolicy::kAuto, machine("never", 5000), in_shm);
    REQUIRE(p.is_ok());
    CHECK(p->spec.backend == Backend::kShm);
    CHECK(!p->huge);
    auto strict = place_region(shm(), HugePagePolicy::kRequire, machine("never", 5000), in_shm);
    CHECK(strict.status().code() == Code::kUnavailable);
  }
}

TEST_CASE("numa, file and devdax regions: huge pages only where their backing allows") {
  Paths none;
  RegionSpec numa{Backend::kNuma, "/cxlkv-numa", 1, kSize};
  auto n = place_region(numa, HugePagePolicy::kAuto, machine("never", 5000), none);
  REQUIRE(n.is_ok());
  CHECK(n->spec.backend == Backend::kNuma);  // never moved off its node onto hugetlbfs
  CHECK(!n->huge);
  CHECK(place_region(numa, HugePagePolicy::kAuto, machine("within_size", 0), none)->huge);

  RegionSpec on_mount{Backend::kFile, "/dev/hugepages/pool", -1, kSize};
  auto f = place_region(on_mount, HugePagePolicy::kRequire, machine("never", 0), none);
  REQUIRE(f.is_ok());
  CHECK(f->huge);
  CHECK(f->spec.size % kHugePageBytes == 0);
  RegionSpec elsewhere{Backend::kFile, "/dev/hugepages-not/pool", -1, kSize};
  CHECK(!place_region(elsewhere, HugePagePolicy::kAuto, machine("always", 0), none)->huge);
  CHECK(place_region(elsewhere, HugePagePolicy::kRequire, machine("always", 0), none).status().code() ==
        Code::kUnavailable);

  RegionSpec dax{Backend::kDevdax, "/dev/dax0.0", -1, 0};
  CHECK(place_region(dax, HugePagePolicy::kRequire, machine("never", 0, false), none)->huge);
  RegionSpec nameless{Backend::kShm, "/", -1, kSize};
  CHECK(place_region(nameless, HugePagePolicy::kAuto, machine("never", 0), none).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("the probe reads this machine's settings") {
  const HugePageSupport s = probe_huge_pages();
  // Every Linux kernel with THP has the file; its value is one of the kernel's choices.
  const std::set<std::string> choices{"always", "within_size", "advise", "never", "deny", "force", ""};
  CHECK(choices.count(s.shmem_thp) == 1);
  for (const HugetlbMount& m : s.hugetlbfs) {
    CHECK(m.path.front() == '/');
    CHECK(m.page_bytes > 0);
  }
  CHECK(s.describe().find("shmem THP") == 0);
}
