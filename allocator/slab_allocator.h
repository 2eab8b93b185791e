// SlabAllocator: carves a region into fixed-size slabs (E pages of one prefix, all layers and
// streams) and hands them out in O(1). The durable state is one 8-byte word per slab (state and
// generation) in the region's metadata region, which only the daemon maps, with a published copy
// in the data region for readers' reuse checks (slab_geometry.h); the free stack is rebuilt from
// the metadata's words when the allocator opens, so a process killed at any instant leaves every
// slab free or in use, exactly once, whatever a client stored into its mapping. One process
// allocates from a region at a time (the daemon): open() takes an exclusive flock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "cxlkv/status.h"
#include "region.h"
#include "slab_geometry.h"

namespace cxlkv {

inline constexpr char kAllocatorMagic[8] = {'C', 'X', 'L', 'K', 'V', 'A', 'L', '1'};
inline constexpr uint32_t kAllocatorFormatVersion = 1;

// Allocator header, version 1, at data_offset of the metadata region (authoritative) and of the
// data region (the copy clients read); the next 4 KiB are reserved for it:
//   [0,8) magic "CXLKVAL1"   [8,12) format_version   [12,16) reserved
//   [16,112) geometry (SlabGeometry, 96 B: the fields in declaration order, no padding)
//   [112,120) checksum: XXH64 (seed 0) of bytes [0,112)
struct AllocatorHeader {
  char magic[8];
  uint32_t format_version;
  uint32_t reserved;
  SlabGeometry geometry;
  uint64_t checksum;
};
static_assert(sizeof(SlabGeometry) == 96);
static_assert(sizeof(AllocatorHeader) == 120, "AllocatorHeader is an on-media format");

// Slab state word: generation << 8 | state. The generation counts allocations of the slab, so a
// reader can tell a reused slab from the one it read before (DESIGN.md coherence rule 2).
enum class SlabState : uint8_t { kFree = 0, kInUse = 1 };
inline uint64_t slab_word(uint64_t generation, SlabState state) { return generation << 8 | uint8_t(state); }
inline SlabState word_state(uint64_t word) { return SlabState(word & 0xff); }
inline uint64_t word_generation(uint64_t word) { return word >> 8; }

struct SlabStats {
  uint32_t total = 0;
  uint32_t free = 0;
  uint32_t in_use = 0;  // invariant: free + in_use == total
};

class SlabAllocator {
 public:
  // Writes the allocator areas of a freshly formatted data region and its metadata region
  // (cxl::Region::create_metadata): every slab free, generation 0, every record FREE. The headers
  // are written last, so a format cut short is rejected by open().
  static Status format(cxl::Region& data, cxl::Region& metadata);
  // Reads the published geometry of a data region without taking the allocator (clients, tools).
  // Checks the header.
  static Result<SlabGeometry> read_geometry(const cxl::Region& data);
  // Takes the allocator: checks the metadata region's header (the geometry the daemon trusts),
  // locks, rewrites the data region's published header and slab words from the metadata region,
  // and rebuilds the free stack.
  static Result<std::unique_ptr<SlabAllocator>> open(cxl::Region& data, cxl::Region& metadata);

  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // Returns a free slab, now in use with a new generation; kExhausted when none is free.
  Result<uint32_t> allocate();
  // Returns a slab to the free stack; freeing a free slab or one past the end is an error.
  Status free(uint32_t slab);

  // Announces a new serving epoch (the daemon, at start, after recovery): writes it to the
  // region's epoch word, then adds one to the slab-free count so readers re-check (slab_geometry.h).
  void announce_epoch(uint64_t epoch);

  SlabStats stats() const;
  const SlabGeometry& geometry() const { return geometry_; }
  bool in_use(uint32_t slab) const { return word_state(state_word(slab)) == SlabState::kInUse; }
  uint64_t generation(uint32_t slab) const { return word_generation(state_word(slab)); }
  uint8_t* slab_address(uint32_t slab) const { return region_.base() + geometry_.slab_offset(slab); }
  // In the metadata region: no client maps it.
  uint8_t* page_record(uint32_t slab, uint32_t position) const {
    return metadata_.base() + geometry_.record_offset(geometry_.page_slot(slab, position));
  }
  cxl::Region& region() const { return region_; }
  cxl::Region& metadata() const { return metadata_; }

 private:
  SlabAllocator(cxl::Region& data, cxl::Region& metadata, const SlabGeometry& geometry);
  uint64_t state_word(uint32_t slab) const { return words_[slab].load(std::memory_order_acquire); }
  void store_word(uint32_t slab, uint64_t word);

  cxl::Region& region_;    // data
  cxl::Region& metadata_;
  SlabGeometry geometry_;
  std::atomic<uint64_t>* words_;      // in the metadata region: the truth
  std::atomic<uint64_t>* published_;  // in the data region: the copy readers check

  // Free stack (volatile, rebuilt on open)
  mutable std::mutex mu_;
  std::vector<uint32_t> free_stack_;
};

}  // namespace cxlkv
