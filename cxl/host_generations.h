// HostGenerations: coherence rule 2 (DESIGN.md) for one region on one host. Owns this host's
// record of the generation of each slab its readers have last made safe to read, kept in the
// host's own shared memory so that every process of the user on the host shares it (a slab is
// invalidated once per host and generation, not once per process), and lost at reboot as the
// caches are. The client's Session calls it for every page a lease names, before any load.
//
// Why first sight counts: caches hold lines by physical address, so a process that has never
// seen a slab may still find lines of an older generation of it in the caches, left by an earlier
// process on the host. Only two cases are safe without an invalidation: the host's record holds
// exactly this generation, or this is the slab's first generation in a region whose memory no
// other host can have cached before it was formatted (FirstGeneration::kTrusted: shm, file and
// numa regions, memory of this host; a devdax device may have been read by other hosts under an
// earlier format, so there the first generation is invalidated too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cxlkv::cxl {

// Whether a slab's first generation may be read without an invalidation (see above).
enum class FirstGeneration : uint8_t { kTrusted, kInvalidated };

class HostGenerations {
 public:
  // This host's record for the region with `uuid` and `slab_count` slabs: the shared-memory
  // object named by record_name(), created owner-only (0600) by whichever process comes first.
  // Where it cannot be opened or has another size, a record private to this process instead
  // (safe, only more invalidations); shared() says which, and why() names the reason.
  static std::unique_ptr<HostGenerations> open(const uint8_t (&uuid)[16], uint32_t slab_count,
                                               FirstGeneration first = FirstGeneration::kTrusted);
  // "/cxlkv-gen-<uuid hex>-u<uid>": one per region (uuid) and user.
  static std::string record_name(const uint8_t (&uuid)[16]);
  // Removes this user's record of the region (when the region itself is removed); no error if absent.
  static void remove(const uint8_t (&uuid)[16]);

  ~HostGenerations();
  HostGenerations(const HostGenerations&) = delete;
  HostGenerations& operator=(const HostGenerations&) = delete;

  // A reader is about to load slab `slab` (its bytes at [addr, addr + len)) at `generation`:
  // invalidates those lines unless this host already made that generation safe, or it is the
  // slab's first and first generations are trusted; then records it. Returns whether it invalidated. slab < slab_count().
  bool before_read(uint32_t slab, uint64_t generation, const void* addr, size_t len);
  // A writer is about to store into the slab at `generation` (non-temporal stores or stores +
  // flush, rule 1): invalidates only where this host recorded an older generation, which its
  // readers may still hold lines of. Records nothing: readers here check for themselves.
  bool before_write(uint32_t slab, uint64_t generation, const void* addr, size_t len);

  // The generation recorded for `slab` (0: none).
  uint64_t recorded(uint32_t slab) const;
  uint32_t slab_count() const { return slab_count_; }
  bool shared() const { return shared_; }
  const std::string& why() const { return why_; }

 private:
  HostGenerations(uint64_t* entries, uint32_t slab_count, FirstGeneration first, bool shared, std::string why);
  void record(uint32_t slab, uint64_t generation);

  uint64_t* entries_;  // slab_count_ words, read and written with atomic_ref
  uint32_t slab_count_;
  FirstGeneration first_;
  bool shared_;        // a shared-memory object (munmap at the end) or this process's (delete[])
  std::string why_;    // why the record is private, or empty
};

}  // namespace cxlkv::cxl
