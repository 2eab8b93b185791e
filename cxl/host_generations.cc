// HostGenerations: the host's shared record of slab generations made safe to read (rule 2).
#include "host_generations.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "cacheline.h"

namespace cxlkv::cxl {

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "the record is shared between processes: its words must be lock-free (address-free) atomics");

namespace {

// Maps the shared record, or says why not. The object must be this user's, private to it, and
// exactly `bytes` long (a zero-length one was just created, by us or by a process racing us: both
// size it the same).
uint64_t* map_shared_record(const std::string& name, size_t bytes, std::string& why) {
  const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    why = fmt::format("{}: {}", name, std::strerror(errno));
    return nullptr;
  }
  auto fail = [&](std::string reason) -> uint64_t* {
    why = fmt::format("{}: {}", name, reason);
    ::close(fd);
    return nullptr;
  };
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(std::strerror(errno));
  // Another user's object under our name could be written to make us skip an invalidation.
  if (st.st_uid != geteuid()) return fail(fmt::format("owned by uid {}, not {}", st.st_uid, geteuid()));
  if ((st.st_mode & 077) != 0) return fail(fmt::format("mode {:o} lets other users write it", st.st_mode & 0777));
  if (st.st_size == 0 && ftruncate(fd, static_cast<off_t>(bytes)) != 0) return fail(fmt::format("ftruncate: {}", std::strerror(errno)));
  if (fstat(fd, &st) != 0) return fail(std::strerror(errno));
  if (static_cast<uint64_t>(st.st_size) != bytes)
    return fail(fmt::format("{} bytes, expected {} (8 per slab)", st.st_size, bytes));
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    why = fmt::format("{}: mmap: {}", name, std::strerror(errno));
    return nullptr;
  }
  return static_cast<uint64_t*>(p);
}

}  // namespace

std::string HostGenerations::record_name(const uint8_t (&uuid)[16]) {
  std::string hex;
  for (uint8_t b : uuid) hex += fmt::format("{:02x}", b);
  return fmt::format("/cxlkv-gen-{}-u{}", hex, geteuid());
}

void HostGenerations::remove(const uint8_t (&uuid)[16]) { shm_unlink(record_name(uuid).c_str()); }

std::unique_ptr<HostGenerations> HostGenerations::open(const uint8_t (&uuid)[16], uint32_t slab_count,
                                                      FirstGeneration first) {
  const size_t bytes = size_t{slab_count} * sizeof(uint64_t);
  std::string why;
  if (slab_count > 0)
    if (uint64_t* shared = map_shared_record(record_name(uuid), bytes, why))
      return std::unique_ptr<HostGenerations>(new HostGenerations(shared, slab_count, first, true, ""));
  if (slab_count == 0) why = "no slabs";
  return std::unique_ptr<HostGenerations>(new HostGenerations(new uint64_t[slab_count](), slab_count, first, false, why));
}

HostGenerations::HostGenerations(uint64_t* entries, uint32_t slab_count, FirstGeneration first, bool shared,
                                 std::string why)
    : entries_(entries), slab_count_(slab_count), first_(first), shared_(shared), why_(std::move(why)) {}

HostGenerations::~HostGenerations() {
  if (shared_) munmap(entries_, size_t{slab_count_} * sizeof(uint64_t));
  else delete[] entries_;
}

uint64_t HostGenerations::recorded(uint32_t slab) const {
  return std::atomic_ref<uint64_t>(entries_[slab]).load(std::memory_order_acquire);
}

// Raises the record to `generation`, never lowers it (a process reading an old lease must not
// undo a newer process's record).
void HostGenerations::record(uint32_t slab, uint64_t generation) {
  std::atomic_ref<uint64_t> entry(entries_[slab]);
  uint64_t current = entry.load(std::memory_order_relaxed);
  while (current < generation && !entry.compare_exchange_weak(current, generation, std::memory_order_release)) {
  }
}

bool HostGenerations::before_read(uint32_t slab, uint64_t generation, const void* addr, size_t len) {
  const uint64_t seen = recorded(slab);
  if (seen == generation) return false;
  if (seen == 0 && generation <= 1 && first_ == FirstGeneration::kTrusted) {  // nothing older to be cached
    record(slab, generation);
    return false;
  }
  // Recorded only once the lines are gone: a process that finds the record reads safely.
  invalidate(addr, len);
  record(slab, generation);
  return true;
}

bool HostGenerations::before_write(uint32_t slab, uint64_t generation, const void* addr, size_t len) {
  const uint64_t seen = recorded(slab);
  if (seen == 0 || seen >= generation) return false;
  invalidate(addr, len);
  return true;
}

}  // namespace cxlkv::cxl
