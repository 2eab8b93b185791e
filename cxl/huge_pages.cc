#include "huge_pages.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "sizes.h"

namespace cxlkv::cxl {
namespace {

constexpr const char* kShmemThpPath = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

// The bracketed choice of a sysfs setting such as "always within_size [advise] never deny force".
std::string selected_choice(const std::string& line) {
  const auto open = line.find('['), close = line.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return line;
  return line.substr(open + 1, close - open - 1);
}

// "2M", "1G", "2048k" (hugetlbfs' pagesize= option) in bytes; 0 if unreadable.
uint64_t parse_page_size(const std::string& text) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) value = value * 10 + uint64_t(text[i] - '0');
  if (i == 0) return 0;
  const char unit = i < text.size() ? char(text[i] | 0x20) : 'b';
  return unit == 'k' ? value << 10 : unit == 'm' ? value << 20 : unit == 'g' ? value << 30 : value;
}

// The system's default huge page size (Hugepagesize in /proc/meminfo), 2 MiB if unreadable.
uint64_t default_huge_page_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key) {
    if (key == "Hugepagesize:" && in >> kib) return kib << 10;
    in.ignore(1 << 10, '\n');
  }
  return kHugePageBytes;
}

// Free pages of a size that no mapping has reserved yet (free_hugepages counts reserved ones).
uint64_t free_huge_pages(uint64_t page_bytes) {
  auto read = [&](const char* what) {
    std::ifstream in(fmt::format("/sys/kernel/mm/hugepages/hugepages-{}kB/{}", page_bytes >> 10, what));
    uint64_t n = 0;
    return in >> n ? n : 0;
  };
  const uint64_t free = read("free_hugepages"), reserved = read("resv_hugepages");
  return free > reserved ? free - reserved : 0;
}

std::string page_size_text(uint64_t bytes) {
  return bytes >= (1ull << 30) ? fmt::format("{} GiB", bytes >> 30) : fmt::format("{} MiB", bytes >> 20);
}

// What to do for huge pages on a machine that offers none for shared memory.
std::string shm_advice(uint64_t size) {
  return fmt::format("for 2 MiB pages: mount -o remount,huge=advise /dev/shm (transparent huge pages for shared "
                     "memory), or mount hugetlbfs (mount -t hugetlbfs none /dev/hugepages) and reserve {} pages (echo "
                     "N > /proc/sys/vm/nr_hugepages)",
                     (size + kHugePageBytes - 1) / kHugePageBytes);
}

}  // namespace

const char* huge_page_policy_name(HugePagePolicy policy) {
  switch (policy) {
    case HugePagePolicy::kAuto: return "auto";
    case HugePagePolicy::kRequire: return "require";
    case HugePagePolicy::kOff: return "off";
  }
  return "?";
}

Result<HugePagePolicy> parse_huge_page_policy(const std::string& name) {
  if (name == "auto") return HugePagePolicy::kAuto;
  if (name == "require") return HugePagePolicy::kRequire;
  if (name == "off") return HugePagePolicy::kOff;
  return Status(Code::kInvalidArgument, fmt::format("huge pages '{}': not one of auto, require, off", name));
}

bool HugePageSupport::shmem_thp_usable() const {
  if (shmem_thp == "force") return true;
  if (shmem_thp == "deny") return false;
  return shm_mount_huge == "advise" || shm_mount_huge == "always" || shm_mount_huge == "within_size";
}

std::string HugePageSupport::describe() const {
  std::string out = fmt::format("shmem THP: /dev/shm huge={} (shmem_enabled '{}')", shm_mount_huge,
                                shmem_thp.empty() ? "absent" : shmem_thp);
  if (hugetlbfs.empty()) return out + "; no hugetlbfs mount";
  for (const HugetlbMount& m : hugetlbfs)
    out += fmt::format("; hugetlbfs {} ({} pages, {} free)", m.path, page_size_text(m.page_bytes), m.free_pages);
  return out;
}

HugePageSupport probe_huge_pages() {
  HugePageSupport s;
  if (std::ifstream in(kShmemThpPath); in) {
    std::string line;
    std::getline(in, line);
    s.shmem_thp = selected_choice(line);
  }
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, path, type, options;
    if (!(fields >> device >> path >> type >> options)) continue;
    if (path == "/dev/shm" && type == "tmpfs") {  // the last such line is the mount in use
      s.shm_mount_huge = "never";
      std::istringstream opts(options);
      for (std::string opt; std::getline(opts, opt, ',');)
        if (opt.rfind("huge=", 0) == 0) s.shm_mount_huge = opt.substr(5);
      continue;
    }
    if (type != "hugetlbfs") continue;
    uint64_t page_bytes = 0;
    std::istringstream opts(options);
    for (std::string opt; std::getline(opts, opt, ',');)
      if (opt.rfind("pagesize=", 0) == 0) page_bytes = parse_page_size(opt.substr(9));
    if (page_bytes == 0) page_bytes = default_huge_page_bytes();
    s.hugetlbfs.push_back({path, page_bytes, free_huge_pages(page_bytes), ::access(path.c_str(), W_OK) == 0});
  }
  return s;
}

Result<RegionPlacement> place_region(const RegionSpec& requested, HugePagePolicy policy, const HugePageSupport& support,
                                     const std::function<bool(const std::string&)>& exists) {
  RegionPlacement p{requested, "4 KiB pages", "", false};
  auto required = [&](const std::string& why) -> Result<RegionPlacement> {
    if (policy == HugePagePolicy::kRequire)
      return Status(Code::kUnavailable, fmt::format("region {}:{}: huge pages required, {} ({})",
                                                    backend_name(requested.backend), requested.path, why,
                                                    support.describe()));
    return p;
  };
  const bool shm_like = requested.backend == Backend::kShm || requested.backend == Backend::kNuma;
  if (shm_like) {
    const size_t first = requested.path.find_first_not_of('/');
    if (first == std::string::npos)
      return Status(Code::kInvalidArgument, fmt::format("region {}:{}: the path names no shared-memory object",
                                                        backend_name(requested.backend), requested.path));
  }
  const std::string name = shm_like ? requested.path.substr(requested.path.find_first_not_of('/')) : std::string();
  const bool in_shm = shm_like && exists("/dev/shm/" + name);
  // A region an earlier start put on hugetlbfs stays there, whatever the policy now: a new one in
  // shared memory would leave it (and its pages) behind.
  if (requested.backend == Backend::kShm && !in_shm)
    for (const HugetlbMount& m : support.hugetlbfs)
      if (exists(m.path + "/" + name)) {
        p.spec.backend = Backend::kFile;
        p.spec.path = m.path + "/" + name;
        p.pages = fmt::format("{} pages (hugetlbfs {}, the region an earlier start made there)", page_size_text(m.page_bytes),
                              m.path);
        p.huge = true;
        return p;
      }
  if (policy == HugePagePolicy::kOff) {
    p.pages = "4 KiB pages (huge pages off)";
    return p;
  }
  switch (requested.backend) {
    case Backend::kDevdax:
      p.pages = "the device's alignment (devdax maps 2 MiB or larger where the device is so aligned)";
      p.huge = true;
      return p;
    case Backend::kFile:
      for (const HugetlbMount& m : support.hugetlbfs)
        if (requested.path.rfind(m.path + "/", 0) == 0) {
          p.pages = fmt::format("{} pages (hugetlbfs {})", page_size_text(m.page_bytes), m.path);
          p.huge = true;
          p.spec.size = (requested.size + m.page_bytes - 1) / m.page_bytes * m.page_bytes;
          return p;
        }
      p.advice = "a file has huge pages only on a hugetlbfs mount: put the region there";
      return required("the file is not on a hugetlbfs mount");
    case Backend::kShm:
    case Backend::kNuma:
      break;
  }
  if (support.shmem_thp_usable()) {
    p.pages = support.shmem_thp == "force" ? std::string("transparent huge pages (shmem_enabled 'force')")
                                           : fmt::format("transparent huge pages (/dev/shm huge={})", support.shm_mount_huge);
    if (in_shm) p.pages += "; pages the region took before that was on stay 4 KiB";
    p.huge = true;
    return p;
  }
  p.advice = shm_advice(requested.size);
  if (in_shm) return required("the region exists in shared memory, whose THP is off");
  if (requested.backend == Backend::kNuma) return required("a numa region takes only shared memory's THP, which is off");
  for (const HugetlbMount& m : support.hugetlbfs) {
    // 2 MiB mounts only: the region is mapped 2 MiB-aligned (a 1 GiB page mount would refuse it).
    const uint64_t pages = (requested.size + m.page_bytes - 1) / m.page_bytes;
    if (m.page_bytes != kHugePageBytes || !m.writable || m.free_pages < pages) continue;
    p.spec.backend = Backend::kFile;
    p.spec.path = m.path + "/" + name;
    p.spec.size = pages * m.page_bytes;
    p.pages = fmt::format("{} pages (hugetlbfs {}, {} of {} free pages)", page_size_text(m.page_bytes), m.path, pages,
                          m.free_pages);
    p.advice.clear();
    p.huge = true;
    p.moved = true;
    return p;
  }
  return required("shared memory's THP is off and no writable 2 MiB hugetlbfs mount has enough free pages");
}

}  // namespace cxlkv::cxl
