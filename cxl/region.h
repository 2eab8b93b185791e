// Region: one mapped range of pool memory from a backend (shm, file, devdax, numa) with its
// header. Owns the mapping and the backing fd; the allocator, the daemon and clients call it.
// Opening never formats and never writes: a bad header is an error that names the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cxlkv/layout.h"
#include "cxlkv/status.h"
#include "region_header.h"

namespace cxlkv::cxl {

enum class Backend : uint8_t {
  kShm,     // POSIX shared memory object (default); path is its name, "/cxlkv-pool"
  kFile,    // a file on tmpfs or an fs-dax mount, mapped with libpmem2
  kDevdax,  // /dev/daxX.Y (real CXL or the QEMU testbed), mapped with libpmem2; never created
  kNuma,    // shared memory bound to one (CPU-less, CXL) NUMA node with libnuma; path as for shm
};
const char* backend_name(Backend backend);
Result<Backend> parse_backend(const std::string& name);

struct RegionSpec {
  Backend backend = Backend::kShm;
  std::string path = "/cxlkv-pool";
  int numa_node = -1;  // kNuma only
  uint64_t size = 0;   // create only; devdax takes the device's size
};

class Region {
 public:
  // Makes the backing (not for devdax) and formats it. Fails with kAlreadyExists if it exists.
  static Result<std::unique_ptr<Region>> create(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages);
  // Formats an existing backing (a devdax device, or a region to wipe). Destroys what was there.
  static Result<std::unique_ptr<Region>> format(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages);
  // Maps an existing region and checks its header; with `expected`, its layout must match.
  static Result<std::unique_ptr<Region>> open(const RegionSpec& spec, const Layout* expected = nullptr);
  // Removes the backing (shm object or file); devdax devices are left alone.
  static Status remove(const RegionSpec& spec);

  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  const RegionHeader& header() const { return *reinterpret_cast<const RegionHeader*>(base_); }
  Layout layout() const { return Layout(header().layout); }
  uint32_t slab_pages() const { return header().slab_pages; }
  // First byte after the header.
  uint64_t data_offset() const { return header().data_offset; }
  const RegionSpec& spec() const { return spec_; }
  // The backing's fd: passed to local clients over the Unix socket, or flock()ed.
  int fd() const { return fd_; }
  // "shm:/cxlkv-pool", "devdax:/dev/dax0.0".
  std::string describe() const;

  // Maps an already-open fd of a region (the fd a local client received); checks the header.
  static Result<std::unique_ptr<Region>> from_fd(int fd, const std::string& name, const Layout* expected);

 private:
  struct Mapping;
  Region(RegionSpec spec, int fd, uint8_t* base, uint64_t size, std::unique_ptr<Mapping> mapping);
  static Result<std::unique_ptr<Region>> map_fd(const RegionSpec& spec, int fd);
  Status write_header(const Layout& layout, uint32_t slab_pages);
  Status check_header(const Layout* expected) const;

  // Mapping state
  RegionSpec spec_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::unique_ptr<Mapping> mapping_;
};

}  // namespace cxlkv::cxl
