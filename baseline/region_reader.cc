// Read-only region mapping with header and geometry checks (see region_reader.h).
#include "region_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <xxhash.h>

#include "slab_allocator.h"

namespace cxlkv::baseline {
namespace {

// Size of a devdax device from sysfs (/sys/dev/char/MAJ:MIN/size).
Result<uint64_t> devdax_size(int fd, const std::string& name) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return io_error("region " + name + ": fstat");
  const std::string path = fmt::format("/sys/dev/char/{}:{}/size", major(st.st_rdev), minor(st.st_rdev));
  std::ifstream in(path);
  uint64_t bytes = 0;
  if (!(in >> bytes) || bytes == 0) return Status(Code::kIoError, fmt::format("region {}: cannot read its size from {}", name, path));
  return bytes;
}

}  // namespace

Result<std::unique_ptr<RegionReader>> RegionReader::open(const cxl::RegionSpec& spec) {
  std::unique_ptr<RegionReader> r(new RegionReader());
  r->name_ = fmt::format("{}:{}", cxl::backend_name(spec.backend), spec.path);
  const bool shm = spec.backend == cxl::Backend::kShm || spec.backend == cxl::Backend::kNuma;
  r->fd_ = shm ? shm_open(spec.path.c_str(), O_RDONLY | O_CLOEXEC, 0) : ::open(spec.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r->fd_ < 0) {
    const Code code = errno == ENOENT ? Code::kNotFound : Code::kIoError;
    return Status(code, fmt::format("region {}: open read-only: {}", r->name_, std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(r->fd_, &st) != 0) return io_error("region " + r->name_ + ": fstat");
  uint64_t bytes = uint64_t(st.st_size);
  if (S_ISCHR(st.st_mode)) {
    auto b = devdax_size(r->fd_, r->name_);
    if (!b) return b.status();
    bytes = *b;
  }
  if (bytes < cxl::kRegionHeaderBytes * 2)
    return Status(Code::kCorrupt, fmt::format("region {}: {} bytes, smaller than a region header", r->name_, bytes));
  void* m = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, r->fd_, 0);
  if (m == MAP_FAILED) return io_error(fmt::format("region {}: mmap {} B read-only", r->name_, bytes));
  r->base_ = static_cast<uint8_t*>(m);
  r->mapped_ = bytes;
  r->size_ = bytes;
  if (Status s = r->check(); !s) return s;
  return r;
}

RegionReader::~RegionReader() {
  if (base_ != nullptr) munmap(base_, mapped_);
  if (fd_ >= 0) ::close(fd_);
}

Status RegionReader::check() {
  const cxl::RegionHeader& h = header();
  if (std::memcmp(h.magic, cxl::kRegionMagic, sizeof h.magic) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: bad magic (not a cxlkv region)", name_));
  if (h.format_version != cxl::kRegionFormatVersion)
    return Status(Code::kCorrupt, fmt::format("region {}: format version {}, this build reads {}", name_, h.format_version,
                                              cxl::kRegionFormatVersion));
  if (cxl::region_header_checksum(h) != h.checksum)
    return Status(Code::kCorrupt, fmt::format("region {}: header checksum {:#x} does not hold", name_, h.checksum));
  if (h.region_bytes > mapped_)
    return Status(Code::kCorrupt, fmt::format("region {}: header says {} B, the backing has {} B", name_, h.region_bytes, mapped_));
  size_ = h.region_bytes;
  const auto* a = reinterpret_cast<const AllocatorHeader*>(base_ + h.data_offset);
  if (h.data_offset + sizeof(AllocatorHeader) > size_ || std::memcmp(a->magic, kAllocatorMagic, sizeof a->magic) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator area not formatted", name_));
  if (XXH64(a, offsetof(AllocatorHeader, checksum), 0) != a->checksum)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator header checksum {:#x} does not hold", name_, a->checksum));
  const SlabGeometry want = SlabGeometry::plan(size_, h.data_offset, Layout(h.layout), h.slab_pages);
  if (std::memcmp(&want, &a->geometry, sizeof want) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator geometry ({} slabs) is not what its size and layout give ({})",
                                              name_, a->geometry.slab_count, want.slab_count));
  geometry_ = a->geometry;
  return Status::ok();
}

}  // namespace cxlkv::baseline
