// Region create/format/open over the four backends (region.h).
#include "region.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <numa.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>

#include "cacheline.h"
#include "host_generations.h"
#include "sizes.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace cxlkv::cxl {

uint64_t region_header_checksum(const RegionHeader& header) {
  return XXH64(&header, offsetof(RegionHeader, checksum), 0);
}

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kShm: return "shm";
    case Backend::kFile: return "file";
    case Backend::kDevdax: return "devdax";
    case Backend::kNuma: return "numa";
  }
  return "?";
}

Result<Backend> parse_backend(const std::string& name) {
  if (name == "shm") return Backend::kShm;
  if (name == "file") return Backend::kFile;
  if (name == "devdax") return Backend::kDevdax;
  if (name == "numa") return Backend::kNuma;
  return Status(Code::kInvalidArgument, fmt::format("backend '{}' is not one of shm, file, devdax, numa", name));
}

// How the range was mapped, so it is unmapped the same way.
struct Region::Mapping {
  pmem2_map* pmem_map = nullptr;  // file, devdax
  pmem2_source* pmem_source = nullptr;
  pmem2_config* pmem_config = nullptr;
  void* mmap_base = nullptr;  // shm, numa: the whole reservation
  size_t mmap_bytes = 0;

  ~Mapping() {
    if (pmem_map) pmem2_map_delete(&pmem_map);
    if (pmem_source) pmem2_source_delete(&pmem_source);
    if (pmem_config) pmem2_config_delete(&pmem_config);
    if (mmap_base) munmap(mmap_base, mmap_bytes);
  }
};

namespace {

bool uses_pmem2(Backend b) { return b == Backend::kFile || b == Backend::kDevdax; }

// A file on hugetlbfs is mapped with plain mmap: libpmem2 is for pmem and dax, and the kernel
// backs such a mapping with huge pages by itself.
// The page size of the hugetlbfs mount fd lies on; 0 when it lies elsewhere.
uint64_t hugetlbfs_page_bytes(int fd) {
  constexpr long kHugetlbfsMagic = 0x958458f6;
  struct statfs fs {};
  return fstatfs(fd, &fs) == 0 && fs.f_type == kHugetlbfsMagic ? uint64_t(fs.f_bsize) : 0;
}
bool on_hugetlbfs(int fd) { return hugetlbfs_page_bytes(fd) != 0; }
bool uses_shm(Backend b) { return b == Backend::kShm || b == Backend::kNuma; }

// A device-DAX character device's size and mapping alignment, from its sysfs folder. Such a
// device is mapped with plain mmap, not libpmem2: libpmem2 (PMDK 1.12) asks libndctl for the
// namespace of a dax device and dereferences NULL when the device is not backed by an NVDIMM
// namespace, which is the case of every CXL RAM region (pmem/pmdk issue 6160).
struct DaxGeometry {
  uint64_t size = 0;
  uint64_t align = 0;
};
Result<DaxGeometry> dax_geometry(const std::string& name, dev_t rdev) {
  auto read_u64 = [&](const char* attr) -> Result<uint64_t> {
    const std::string path = fmt::format("/sys/dev/char/{}:{}/{}", major(rdev), minor(rdev), attr);
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) return io_error(fmt::format("region {}: open {}", name, path));
    unsigned long long v = 0;
    const int n = std::fscanf(f, "%llu", &v);
    std::fclose(f);
    if (n != 1) return Status(Code::kIoError, fmt::format("region {}: {} holds no number", name, path));
    return uint64_t{v};
  };
  auto size = read_u64("size");
  if (!size) return size.status();
  auto align = read_u64("align");  // absent on kernels before 5.10: assume 2 MiB
  return DaxGeometry{*size, align ? *align : kHugePageBytes};
}

Status check_shm_name(const std::string& name) {
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() > 255)
    return Status(Code::kInvalidArgument, fmt::format("shm region name '{}' must look like /name", name));
  return Status::ok();
}

Status check_numa_node(int node) {
  if (numa_available() < 0) return Status(Code::kUnavailable, "numa backend: this kernel has no NUMA support");
  if (node < 0 || node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, node))
    return Status(Code::kNotFound, fmt::format("numa backend: node {} does not exist (nodes 0..{})", node, numa_max_node()));
  long long free_bytes = 0;
  if (numa_node_size64(node, &free_bytes) <= 0)
    return Status(Code::kNotFound, fmt::format("numa backend: node {} has no memory", node));
  return Status::ok();
}

// Opens (or creates) the backing and returns its fd; read-only opens never create.
Result<int> open_backing(const RegionSpec& spec, bool create, OpenMode mode = OpenMode::kReadWrite) {
  const bool ro = mode == OpenMode::kReadOnly;
  const int flags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (create && !ro ? O_CREAT | O_EXCL : 0);
  int fd = -1;
  if (uses_shm(spec.backend)) {
    if (Status st = check_shm_name(spec.path); !st) return st;
    if (spec.backend == Backend::kNuma && !ro)  // a reader binds nothing (OpenMode)
      if (Status st = check_numa_node(spec.numa_node); !st) return st;
    fd = shm_open(spec.path.c_str(), flags, 0600);
  } else {
    if (spec.path.empty()) return Status(Code::kInvalidArgument, fmt::format("{} backend needs a path", backend_name(spec.backend)));
    fd = ::open(spec.path.c_str(), flags, 0600);
  }
  if (fd < 0) {
    const Code code = errno == EEXIST ? Code::kAlreadyExists : errno == ENOENT ? Code::kNotFound : Code::kIoError;
    return Status(code, fmt::format("region {}:{}: {}{}", backend_name(spec.backend), spec.path, ro ? "open read-only: " : "",
                                    std::strerror(errno)));
  }
  return fd;
}

uint64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

Region::Region(RegionSpec spec, OpenMode mode, int fd, uint8_t* base, uint64_t size, std::unique_ptr<Mapping> mapping)
    : spec_(std::move(spec)), mode_(mode), fd_(fd), base_(base), size_(size), mapping_(std::move(mapping)) {}

Region::~Region() {
  mapping_.reset();
  if (fd_ >= 0) ::close(fd_);
}

std::string Region::describe() const {
  if (spec_.backend == Backend::kNuma) return fmt::format("numa:{}@node{}", spec_.path, spec_.numa_node);
  return fmt::format("{}:{}", backend_name(spec_.backend), spec_.path);
}

bool Region::populate() const {
  const int advice = read_only() ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;
  if (::madvise(base_, size_, advice) != 0) return false;
  // One load per 2 MiB as well: in a virtual machine the first access of a process to each huge
  // page still costs a few microseconds after the populate (measured on the dev VM: 4.7 ms for
  // 1.6 GiB), which a decode worker's first request would otherwise pay.
  uint8_t sum = 0;
  for (uint64_t off = 0; off < size_; off += kHugePageBytes) sum ^= reinterpret_cast<const volatile uint8_t*>(base_)[off];
  asm volatile("" : : "r"(sum));
  return true;
}

// Maps the whole backing of fd. Takes ownership of fd (closed on failure).
Result<std::unique_ptr<Region>> Region::map_fd(const RegionSpec& spec, int fd, OpenMode mode) {
  const bool ro = mode == OpenMode::kReadOnly;
  auto fail = [&](Status st) -> Result<std::unique_ptr<Region>> { ::close(fd); return st; };
  const std::string name = fmt::format("{}:{}", backend_name(spec.backend), spec.path);
  auto mapping = std::make_unique<Mapping>();
  uint8_t* base = nullptr;
  uint64_t size = 0;
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(io_error("region " + name + ": fstat"));
  const bool devdax = S_ISCHR(st.st_mode);
  const bool pmem2 = uses_pmem2(spec.backend) && !devdax && !on_hugetlbfs(fd);
  uint64_t align = std::max(kHugePageBytes, hugetlbfs_page_bytes(fd));  // a 1 GiB page mount maps 1 GiB-aligned
  if (devdax) {
    auto dax = dax_geometry(name, st.st_rdev);
    if (!dax) return fail(dax.status());
    size = dax->size;
    align = std::max(dax->align, kHugePageBytes);
  }
  if (pmem2) {
    if (pmem2_config_new(&mapping->pmem_config) != 0 ||
        pmem2_config_set_required_store_granularity(mapping->pmem_config, PMEM2_GRANULARITY_PAGE) != 0 ||
        (ro && pmem2_config_set_protection(mapping->pmem_config, PMEM2_PROT_READ) != 0) ||
        pmem2_source_from_fd(&mapping->pmem_source, fd) != 0)
      return fail(Status(Code::kIoError, fmt::format("region {}: libpmem2: {}", name, pmem2_errormsg())));
    size_t bytes = 0;
    if (pmem2_source_size(mapping->pmem_source, &bytes) != 0)
      return fail(Status(Code::kIoError, fmt::format("region {}: libpmem2 size: {}", name, pmem2_errormsg())));
    if (bytes < kRegionHeaderBytes)
      return fail(Status(Code::kCorrupt, fmt::format("region {}: {} bytes, smaller than the {}-byte header (truncated?)", name, bytes, kRegionHeaderBytes)));
    if (pmem2_map_new(&mapping->pmem_map, mapping->pmem_config, mapping->pmem_source) != 0)
      return fail(Status(Code::kIoError, fmt::format("region {}: libpmem2 map: {}", name, pmem2_errormsg())));
    base = static_cast<uint8_t*>(pmem2_map_get_address(mapping->pmem_map));
    size = pmem2_map_get_size(mapping->pmem_map);
  } else {
    if (!devdax) size = static_cast<uint64_t>(st.st_size);
    if (size < kRegionHeaderBytes)
      return fail(Status(Code::kCorrupt, fmt::format("region {}: {} bytes, smaller than the {}-byte header (truncated?)", name, size, kRegionHeaderBytes)));
    // Reserve one alignment unit more (2 MiB, or a dax device's larger align) and place the
    // mapping on that boundary so THP, dax huge faults and the GPU's large translations can back it.
    const size_t reserve = size + align;
    void* r = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return fail(io_error("region " + name + ": reserve address space"));
    mapping->mmap_base = r;
    mapping->mmap_bytes = reserve;
    auto aligned = (reinterpret_cast<uintptr_t>(r) + align - 1) & ~(align - 1);
    void* m = mmap(reinterpret_cast<void*>(aligned), size, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) return fail(io_error(fmt::format("region {}: mmap {} B{}", name, size, ro ? " read-only" : "")));
    madvise(m, size, MADV_HUGEPAGE);  // advice only: takes effect where shmem THP is 'advise'
    if (spec.backend == Backend::kNuma && !ro) {
      if (Status s = check_numa_node(spec.numa_node); !s) return fail(s);
      numa_tonode_memory(m, size, spec.numa_node);
    }
    base = static_cast<uint8_t*>(m);
  }
  return std::unique_ptr<Region>(new Region(spec, mode, fd, base, size, std::move(mapping)));
}

Result<std::unique_ptr<Region>> Region::create(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages) {
  if (spec.backend == Backend::kDevdax)
    return Status(Code::kInvalidArgument, fmt::format("region devdax:{}: a device is not created; use format", spec.path));
  if (spec.size < kRegionHeaderBytes * 2 || spec.size % kOsPageBytes != 0)
    return Status(Code::kInvalidArgument, fmt::format("region size {} must be a multiple of 4096 and at least 8192", spec.size));
  if (Status st = layout.validate(); !st) return st;
  return make(spec, layout, slab_pages, RegionKind::kData, nullptr);
}

Result<std::unique_ptr<Region>> Region::make(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages,
                                             RegionKind kind, const uint8_t* paired_uuid) {
  auto fd = open_backing(spec, /*create=*/true);
  if (!fd) return fd.status();
  if (ftruncate(*fd, static_cast<off_t>(spec.size)) != 0) {
    Status st = io_error(fmt::format("region {}:{}: size to {} bytes", backend_name(spec.backend), spec.path, spec.size));
    ::close(*fd);
    (void)remove_backing(spec);
    return st;
  }
  auto region = map_fd(spec, *fd);
  if (!region) { (void)remove_backing(spec); return region.status(); }
  if (Status st = (*region)->write_header(layout, slab_pages, kind, paired_uuid); !st) {
    region->reset();
    (void)remove_backing(spec);
    return st;
  }
  return region;
}

Result<std::unique_ptr<Region>> Region::format(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages) {
  if (Status st = layout.validate(); !st) return st;
  auto fd = open_backing(spec, /*create=*/false);
  if (!fd) return fd.status();
  auto region = map_fd(spec, *fd);
  if (!region) return region.status();
  if (Status st = (*region)->write_header(layout, slab_pages); !st) return st;
  return region;
}

Result<std::unique_ptr<Region>> Region::open(const RegionSpec& spec, const Layout* expected, OpenMode mode) {
  auto fd = open_backing(spec, /*create=*/false, mode);
  if (!fd) return fd.status();
  auto region = map_fd(spec, *fd, mode);
  if (!region) return region.status();
  if (Status st = (*region)->check_header(expected); !st) return st;
  return region;
}

Result<std::unique_ptr<Region>> Region::from_fd(int fd, const std::string& name, const Layout* expected, OpenMode mode) {
  struct stat st {};
  if (fstat(fd, &st) != 0) { ::close(fd); return io_error("region " + name + ": fstat"); }
  RegionSpec spec;
  // Named after what it is: a dax device, a file on hugetlbfs (where a daemon may have placed a
  // shm region for its huge pages), else shared memory.
  spec.backend = S_ISCHR(st.st_mode) ? Backend::kDevdax : on_hugetlbfs(fd) ? Backend::kFile : Backend::kShm;
  spec.path = name;
  auto region = map_fd(spec, fd, mode);
  if (!region) return region.status();
  if (Status s = (*region)->check_header(expected); !s) return s;
  return region;
}

Result<int> Region::open_read_only_fd() const {
  return open_backing(spec_, /*create=*/false, OpenMode::kReadOnly);
}

Result<int> Region::open_writer_fd() const { return open_backing(spec_, /*create=*/false, OpenMode::kReadWrite); }

// The uuid in the header of the region at `spec`, if it has a readable one.
static bool read_uuid(const RegionSpec& spec, uint8_t (&uuid)[16]) {
  auto fd = open_backing(spec, /*create=*/false, OpenMode::kReadOnly);
  if (!fd) return false;
  RegionHeader h {};
  const bool ok = ::pread(*fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) &&
                  std::memcmp(h.magic, kRegionMagic, sizeof h.magic) == 0 && region_header_checksum(h) == h.checksum;
  ::close(*fd);
  if (ok) std::memcpy(uuid, h.uuid, sizeof uuid);
  return ok;
}

Status Region::remove(const RegionSpec& spec) {
  if (Status st = remove_backing(spec); !st) return st;
  auto metadata = metadata_spec_for(spec);
  if (!metadata) return Status::ok();
  const Status st = remove_metadata(*metadata);
  return st.code() == Code::kAlreadyExists ? Status::ok() : st;  // not ours: left alone
}

Status Region::remove_metadata(const RegionSpec& spec) {
  if (spec.backend == Backend::kDevdax) return Status::ok();
  auto fd = open_backing(spec, /*create=*/false, OpenMode::kReadOnly);
  if (!fd) return fd.status().code() == Code::kNotFound ? Status::ok() : fd.status();
  RegionHeader h {};
  const bool ours = ::pread(*fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) &&
                    std::memcmp(h.magic, kRegionMagic, sizeof h.magic) == 0 && h.kind == RegionKind::kMetadata;
  const bool held = ours && flock(*fd, LOCK_EX | LOCK_NB) != 0;
  ::close(*fd);
  const std::string name = fmt::format("{}:{}", backend_name(spec.backend), spec.path);
  if (!ours)
    return Status(Code::kAlreadyExists, fmt::format("{} exists and is not a cxlkv metadata region: left as it is (remove "
                                                    "it, or name another metadata region)", name));
  if (held) return Status(Code::kBusy, fmt::format("metadata region {} is held by a serving daemon", name));
  return remove_backing(spec);
}

Status Region::remove_backing(const RegionSpec& spec) {
  // This user's record of the region's slab generations on this host goes with it.
  if (uint8_t uuid[16]; (uses_shm(spec.backend) || spec.backend == Backend::kFile) && read_uuid(spec, uuid))
    HostGenerations::remove(uuid);
  int rc = 0;
  if (uses_shm(spec.backend)) rc = shm_unlink(spec.path.c_str());
  else if (spec.backend == Backend::kFile) rc = ::unlink(spec.path.c_str());
  else return Status::ok();
  if (rc != 0 && errno != ENOENT) return io_error(fmt::format("region {}:{}: remove", backend_name(spec.backend), spec.path));
  return Status::ok();
}

Result<RegionSpec> Region::metadata_spec_for(const RegionSpec& data) {
  RegionSpec meta;
  meta.path = data.path + ".meta";
  switch (data.backend) {
    case Backend::kShm:
    case Backend::kNuma: meta.backend = Backend::kShm; return meta;
    case Backend::kFile: meta.backend = Backend::kFile; return meta;
    case Backend::kDevdax: break;
  }
  return Status(Code::kInvalidArgument,
                fmt::format("region {}:{}: a device region has no default metadata region; name one (metadata = "
                            "\"devdax:/dev/daxN.M\" or \"file:PATH\", a backing no client can open)",
                            backend_name(data.backend), data.path));
}

Result<std::unique_ptr<Region>> Region::create_metadata(const RegionSpec& spec, const Region& data, uint64_t bytes) {
  if (spec.backend == Backend::kDevdax)
    return Status(Code::kInvalidArgument, fmt::format("metadata region devdax:{}: a device is not created; use format", spec.path));
  RegionSpec sized = spec;
  sized.size = std::max<uint64_t>((bytes + kOsPageBytes - 1) / kOsPageBytes * kOsPageBytes, 2 * kRegionHeaderBytes);
  return make(sized, data.layout(), data.slab_pages(), RegionKind::kMetadata, data.header().uuid);
}

Result<std::unique_ptr<Region>> Region::format_metadata(const RegionSpec& spec, const Region& data) {
  auto fd = open_backing(spec, /*create=*/false);
  if (!fd) return fd.status();
  auto region = map_fd(spec, *fd);
  if (!region) return region.status();
  if (Status st = (*region)->write_header(data.layout(), data.slab_pages(), RegionKind::kMetadata, data.header().uuid); !st)
    return st;
  return region;
}

Result<std::unique_ptr<Region>> Region::open_metadata(const RegionSpec& spec, const Region& data) {
  auto fd = open_backing(spec, /*create=*/false);
  if (!fd) return fd.status();
  auto region = map_fd(spec, *fd);
  if (!region) return region.status();
  const Layout layout = data.layout();
  if (Status st = (*region)->check_header(&layout, RegionKind::kMetadata); !st) return st;
  const RegionHeader& h = (*region)->header();
  if (std::memcmp(h.paired_uuid, data.header().uuid, sizeof h.paired_uuid) != 0)
    return Status(Code::kMismatch, fmt::format("metadata region {} belongs to another data region than {} (uuid differs; "
                                               "use --format to wipe and format both)", (*region)->describe(), data.describe()));
  if (h.slab_pages != data.slab_pages())
    return Status(Code::kMismatch, fmt::format("metadata region {}: E = {}, its data region {} has {}", (*region)->describe(),
                                               h.slab_pages, data.describe(), data.slab_pages()));
  return region;
}

Status Region::write_header(const Layout& layout, uint32_t slab_pages, RegionKind kind, const uint8_t* paired_uuid) {
  if (slab_pages == 0 || slab_pages > 1024)
    return Status(Code::kInvalidArgument, fmt::format("slab_pages {} must be 1..1024", slab_pages));
  RegionHeader h {};
  if (getrandom(h.uuid, sizeof h.uuid, 0) != sizeof h.uuid) return io_error("region uuid: getrandom");
  h.format_version = kRegionFormatVersion;
  h.header_bytes = kRegionHeaderBytes;
  h.region_bytes = size_;
  h.data_offset = kRegionHeaderBytes;
  h.slab_pages = slab_pages;
  h.format_time_ns = now_ns();
  h.layout = layout.record();
  h.kind = kind;
  if (paired_uuid) std::memcpy(h.paired_uuid, paired_uuid, sizeof h.paired_uuid);
  std::memcpy(h.magic, kRegionMagic, sizeof kRegionMagic);
  h.checksum = region_header_checksum(h);
  // The magic goes last: a format cut short leaves a region that open() rejects.
  auto* dst = reinterpret_cast<RegionHeader*>(base_);
  std::memset(base_, 0, kRegionHeaderBytes);
  persist(base_, kRegionHeaderBytes);
  std::memcpy(reinterpret_cast<uint8_t*>(dst) + sizeof h.magic, reinterpret_cast<const uint8_t*>(&h) + sizeof h.magic,
              sizeof h - sizeof h.magic);
  persist(dst, sizeof h);
  std::memcpy(dst->magic, kRegionMagic, sizeof kRegionMagic);
  persist(dst, sizeof h.magic);
  return Status::ok();
}

Status Region::check_header(const Layout* expected, RegionKind kind) const {
  const std::string name = describe();
  const RegionHeader& h = header();
  if (std::memcmp(h.magic, kRegionMagic, sizeof kRegionMagic) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: bad magic (not a cxlkv region, or never formatted)", name));
  if (h.format_version == 1)
    return Status(Code::kMismatch,
                  fmt::format("region {}: format version 1, which kept the page records where clients map them; this "
                              "build reads version {} only. Its cached pages cannot be carried over: start the daemon "
                              "with --format to wipe and format it (a devdax region also needs a metadata region)",
                              name, kRegionFormatVersion));
  if (h.format_version != kRegionFormatVersion)
    return Status(Code::kCorrupt, fmt::format("region {}: format version {}, this build reads {}", name, h.format_version, kRegionFormatVersion));
  if (region_header_checksum(h) != h.checksum)
    return Status(Code::kCorrupt, fmt::format("region {}: header checksum {:#x} does not match {:#x}", name, h.checksum, region_header_checksum(h)));
  if (h.kind != kind)
    return Status(Code::kMismatch, fmt::format("region {}: a {} region, opened as a {} region", name,
                                               h.kind == RegionKind::kMetadata ? "metadata" : "data",
                                               kind == RegionKind::kMetadata ? "metadata" : "data"));
  if (h.header_bytes != kRegionHeaderBytes || h.data_offset != kRegionHeaderBytes)
    return Status(Code::kCorrupt, fmt::format("region {}: header size {} / data offset {}, expected {}", name, h.header_bytes, h.data_offset, kRegionHeaderBytes));
  if (h.region_bytes != size_)
    return Status(Code::kCorrupt, fmt::format("region {}: header says {} bytes, backing has {} (truncated or resized)", name, h.region_bytes, size_));
  Layout found(h.layout);
  if (Status st = found.validate(); !st) return Status(Code::kCorrupt, fmt::format("region {}: {}", name, st.message()));
  if (expected && !(found == *expected))
    return Status(Code::kMismatch, fmt::format("region {}: layout {} expected, found {}", name, expected->describe(), found.describe()));
  return Status::ok();
}

}  // namespace cxlkv::cxl
