// Region: one mapped range of pool memory from a backend (shm, file, devdax, numa) with its
// header. Owns the mapping and the backing fd; the allocator, the daemon, clients and the
// baseline's read-only server (OpenMode::kReadOnly) call it. Opening never formats and never
// writes: a bad header is an error that names the problem, the same check in either mode.
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

// How open() maps a region. kReadOnly opens the backing O_RDONLY and maps it PROT_READ: a store
// through base() faults. It never creates, formats or binds memory to a NUMA node (the pages are
// the writer's; a reader of the numa backend maps the shared object as placed).
enum class OpenMode : uint8_t { kReadWrite, kReadOnly };

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
  static Result<std::unique_ptr<Region>> open(const RegionSpec& spec, const Layout* expected = nullptr,
                                              OpenMode mode = OpenMode::kReadWrite);
  // Removes the backing (shm object or file) and its default metadata region (metadata_spec_for);
  // devdax devices are left alone.
  static Status remove(const RegionSpec& spec);

  // The metadata region of a data region (RegionKind::kMetadata): the daemon's page records and
  // authoritative allocator state, in a backing no client is handed or can open (mode 0600, never
  // passed over the socket). Same layout and E as `data`, and `data`'s uuid as its paired uuid,
  // so a metadata region is never opened against another data region.
  // Where it lies unless configured: beside a shm or numa region, the shm object PATH.meta (plain
  // shared memory: the records are small and the daemon's); beside a file, PATH.meta. A devdax
  // region has no default (the records must survive with the device): kInvalidArgument.
  static Result<RegionSpec> metadata_spec_for(const RegionSpec& data);
  // Makes the backing (bytes, rounded up to 4 KiB) and formats it as `data`'s metadata region.
  static Result<std::unique_ptr<Region>> create_metadata(const RegionSpec& spec, const Region& data, uint64_t bytes);
  // Formats an existing backing (a devdax device, or one to wipe) as `data`'s metadata region.
  static Result<std::unique_ptr<Region>> format_metadata(const RegionSpec& spec, const Region& data);
  // Maps `data`'s metadata region and checks its header: kind, layout, E and paired uuid.
  static Result<std::unique_ptr<Region>> open_metadata(const RegionSpec& spec, const Region& data);
  // Removes the shm object or file at `spec` only if it holds a cxlkv metadata region (its magic
  // and kind, of any format version) that no process holds locked (a serving daemon's allocator
  // locks it): anything else there is left as it is and named (kAlreadyExists, kBusy). Nothing
  // there: ok. Devdax devices are never removed.
  static Status remove_metadata(const RegionSpec& spec);
  // Removes the backing (shm object or file) at `spec` alone; devdax devices are left alone.
  static Status remove_backing(const RegionSpec& spec);

  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // The mapping; read-only regions fault on a store through it.
  uint8_t* base() const { return base_; }
  bool read_only() const { return mode_ == OpenMode::kReadOnly; }
  uint64_t size() const { return size_; }
  const RegionHeader& header() const { return *reinterpret_cast<const RegionHeader*>(base_); }
  Layout layout() const { return Layout(header().layout); }
  uint32_t slab_pages() const { return header().slab_pages; }
  RegionKind kind() const { return header().kind; }
  // First byte after the header.
  uint64_t data_offset() const { return header().data_offset; }
  const RegionSpec& spec() const { return spec_; }
  // The backing's fd: passed to local clients over the Unix socket, or flock()ed.
  int fd() const { return fd_; }
  // "shm:/cxlkv-pool", "devdax:/dev/dax0.0".
  std::string describe() const;
  // Faults every OS page of the mapping in now, so the data path takes no page faults:
  // MADV_POPULATE_WRITE, or MADV_POPULATE_READ when read-only. Returns false where the kernel
  // lacks them (before 5.14); the pages then fault in on first touch, as without this call.
  bool populate() const;

  // Maps an already-open fd of a region (the fd a local client received); checks the header.
  // kReadOnly for the O_RDONLY fd a reader session is handed.
  static Result<std::unique_ptr<Region>> from_fd(int fd, const std::string& name, const Layout* expected,
                                                 OpenMode mode = OpenMode::kReadWrite);
  // A new O_RDONLY fd of this region's backing (the daemon hands it to reader sessions: a mapping
  // of it cannot be written). The caller owns it.
  Result<int> open_read_only_fd() const;
  // A new read-write fd of the backing, opened apart from this Region's (its own open file
  // description): what the daemon hands writer sessions, so a client that keeps it holds no lock
  // taken on the daemon's fd (the allocator's flock), and a restarted daemon can take it again.
  Result<int> open_writer_fd() const;

 private:
  struct Mapping;
  Region(RegionSpec spec, OpenMode mode, int fd, uint8_t* base, uint64_t size, std::unique_ptr<Mapping> mapping);
  static Result<std::unique_ptr<Region>> map_fd(const RegionSpec& spec, int fd, OpenMode mode = OpenMode::kReadWrite);
  Status write_header(const Layout& layout, uint32_t slab_pages, RegionKind kind = RegionKind::kData,
                      const uint8_t* paired_uuid = nullptr);
  Status check_header(const Layout* expected, RegionKind kind = RegionKind::kData) const;
  // Makes the backing of spec.size bytes, maps it and writes a header; removes it on failure.
  static Result<std::unique_ptr<Region>> make(const RegionSpec& spec, const Layout& layout, uint32_t slab_pages,
                                              RegionKind kind, const uint8_t* paired_uuid);

  // Mapping state
  RegionSpec spec_;
  OpenMode mode_ = OpenMode::kReadWrite;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::unique_ptr<Mapping> mapping_;
};

}  // namespace cxlkv::cxl
