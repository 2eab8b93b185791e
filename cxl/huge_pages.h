// Huge pages for a region: what this machine offers (transparent huge pages for shared memory,
// hugetlbfs mounts with free pages) and where a region goes under the daemon's policy. A worker
// maps the whole pool at connect; with 4 KiB pages that costs one page-table entry per 4 KiB of
// pool (seconds for tens of GiB), with 2 MiB pages one per 2 MiB. The daemon calls place_region
// before it opens or creates its region and logs the result; its --help shows the probe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cxlkv/status.h"
#include "region.h"

namespace cxlkv::cxl {

// auto: huge pages where the machine offers them, else 4 KiB pages with a warning saying how to
// get them; require: refuse to start without them; off: 4 KiB pages.
enum class HugePagePolicy : uint8_t { kAuto, kRequire, kOff };
const char* huge_page_policy_name(HugePagePolicy policy);
Result<HugePagePolicy> parse_huge_page_policy(const std::string& name);

struct HugetlbMount {
  std::string path;         // mount point, e.g. /dev/hugepages
  uint64_t page_bytes = 0;  // its page size (the pagesize= option, else the default size)
  uint64_t free_pages = 0;  // free pages of that size in the system pool, less those reserved
  bool writable = true;     // this process may create files there
};

struct HugePageSupport {
  // The huge= option of the tmpfs mounted on /dev/shm, where POSIX shared memory objects live
  // ("never" when absent; "always", "within_size", "advise"): it, not shmem_enabled, decides
  // whether their pages are huge.
  std::string shm_mount_huge = "never";
  // The kernel's setting in /sys/kernel/mm/transparent_hugepage/shmem_enabled; only its
  // "force" and "deny" override a mount's huge= option. Empty where the file is absent.
  std::string shmem_thp;
  std::vector<HugetlbMount> hugetlbfs;
  // Whether a shared-memory object mapped with MADV_HUGEPAGE (as Region maps) gets 2 MiB pages.
  bool shmem_thp_usable() const;
  // "shmem THP: /dev/shm huge=never (shmem_enabled 'never'); hugetlbfs /dev/hugepages (2 MiB
  // pages, 0 free)": for logs and --help.
  std::string describe() const;
};

// Reads this machine's settings (/sys/kernel/mm/..., /proc/self/mounts). Never fails: what it
// cannot read is reported as absent.
HugePageSupport probe_huge_pages();

// Where a region lives and what pages back it.
struct RegionPlacement {
  RegionSpec spec;       // the requested spec, or a shm region moved onto hugetlbfs (backend file)
  std::string pages;     // "2 MiB pages (hugetlbfs /dev/hugepages)", "4 KiB pages", ...
  std::string advice;    // how to get huge pages, where the placement has none; else empty
  bool huge = false;
  bool moved = false;    // a new shm region placed on hugetlbfs (not yet created there)
};

// Places a region under `policy`. A shm region that exists (in /dev/shm, or as `name` on a
// hugetlbfs mount) stays where it is, whatever the policy; a new one goes to shared memory where
// shmem THP is usable, else onto a writable 2 MiB hugetlbfs mount with enough free pages (its
// size rounded up to whole pages), else stays in shared memory on 4 KiB pages. numa regions take THP only (a hugetlbfs file would not
// be bound to the node). file regions have huge pages only on hugetlbfs; devdax devices map at
// their alignment. `exists` answers whether a path exists (shm names are asked as /dev/shm/...).
// Fails (kUnavailable) under kRequire where the region would get no huge pages, naming what the
// machine lacks and how to provide it.
Result<RegionPlacement> place_region(const RegionSpec& requested, HugePagePolicy policy, const HugePageSupport& support,
                                     const std::function<bool(const std::string&)>& exists);

}  // namespace cxlkv::cxl
