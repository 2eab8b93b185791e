// SlabAllocator: format, open (rebuild), allocate, free (slab_allocator.h).
#include "slab_allocator.h"

#include <sys/file.h>
#include <xxhash.h>

#include <cstring>
#include <fmt/format.h>

#include "cacheline.h"

namespace cxlkv {
namespace {

uint64_t header_checksum(const AllocatorHeader& h) { return XXH64(&h, offsetof(AllocatorHeader, checksum), 0); }

AllocatorHeader* header_at(const cxl::Region& region) {
  return reinterpret_cast<AllocatorHeader*>(region.base() + region.data_offset());
}

// Writes a fresh allocator header for `g` into `region`, the magic last.
void write_allocator_header(const cxl::Region& region, const SlabGeometry& g) {
  AllocatorHeader* h = header_at(region);
  AllocatorHeader fresh {};
  fresh.format_version = kAllocatorFormatVersion;
  fresh.geometry = g;
  std::memcpy(fresh.magic, kAllocatorMagic, sizeof fresh.magic);
  fresh.checksum = header_checksum(fresh);
  std::memcpy(reinterpret_cast<uint8_t*>(h) + 8, reinterpret_cast<uint8_t*>(&fresh) + 8, sizeof fresh - 8);
  cxl::persist(h, sizeof fresh);
  std::memcpy(h->magic, kAllocatorMagic, sizeof kAllocatorMagic);  // last: the area is now valid
  cxl::persist(h, sizeof h->magic);
}

void zero(uint8_t* p, uint64_t bytes) {
  std::memset(p, 0, bytes);
  cxl::persist(p, bytes);
}

// The allocator header in `holder` (a data region or its metadata region), checked against the
// geometry the data region's size, layout and E give.
Result<SlabGeometry> read_header(const cxl::Region& holder, const cxl::Region& data) {
  const std::string name = holder.describe();
  if (holder.size() < holder.data_offset() + 4096)
    return Status(Code::kCorrupt, fmt::format("region {}: too small for an allocator area", name));
  const AllocatorHeader* h = header_at(holder);
  if (std::memcmp(h->magic, kAllocatorMagic, sizeof kAllocatorMagic) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator area not formatted (bad magic)", name));
  if (h->format_version != kAllocatorFormatVersion)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator format version {}, this build reads {}", name,
                                              h->format_version, kAllocatorFormatVersion));
  if (header_checksum(*h) != h->checksum)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator header checksum {:#x} does not match {:#x}", name,
                                              h->checksum, header_checksum(*h)));
  const SlabGeometry& g = h->geometry;
  // The geometry must be the one the data region's size, layout and E give: anything else is damage.
  const SlabGeometry want = SlabGeometry::plan(data.size(), data.data_offset(), data.layout(), data.slab_pages());
  if (std::memcmp(&g, &want, sizeof g) != 0)
    return Status(Code::kCorrupt, fmt::format("region {}: allocator geometry ({} slabs of {} B) is not what the "
                                              "header's size and layout give ({} slabs of {} B)",
                                              name, g.slab_count, g.slab_bytes, want.slab_count, want.slab_bytes));
  return g;
}

// A data region and a metadata region that belong together, with room for the geometry's records.
Status check_pair(const cxl::Region& data, const cxl::Region& metadata, const SlabGeometry& g) {
  if (data.kind() != cxl::RegionKind::kData || metadata.kind() != cxl::RegionKind::kMetadata ||
      std::memcmp(metadata.header().paired_uuid, data.header().uuid, sizeof data.header().uuid) != 0)
    return Status(Code::kMismatch, fmt::format("region {} is not the metadata region of {}", metadata.describe(),
                                               data.describe()));
  if (metadata.size() < g.metadata_bytes())
    return Status(Code::kInvalidArgument, fmt::format("metadata region {}: {} bytes, the records of {} slabs of {} pages "
                                                      "need {}", metadata.describe(), metadata.size(), g.slab_count,
                                                      g.slab_pages, g.metadata_bytes()));
  return Status::ok();
}

}  // namespace

Status SlabAllocator::format(cxl::Region& data, cxl::Region& metadata) {
  const SlabGeometry g = SlabGeometry::plan(data.size(), data.data_offset(), data.layout(), data.slab_pages());
  if (g.slab_count == 0)
    return Status(Code::kInvalidArgument,
                  fmt::format("region {}: {} bytes hold no slab of {} bytes (layout {}, E = {})", data.describe(),
                              data.size(), g.slab_bytes, data.layout().name(), g.slab_pages));
  if (Status st = check_pair(data, metadata, g); !st) return st;
  // Headers invalid first; then every slab free at generation 0 (both copies), every record FREE.
  zero(reinterpret_cast<uint8_t*>(header_at(metadata)), 4096);
  zero(reinterpret_cast<uint8_t*>(header_at(data)), 4096);
  zero(metadata.base() + g.state_offset, 8ull * g.slab_count);
  zero(data.base() + g.state_offset, 8ull * g.slab_count);
  zero(metadata.base() + g.records_offset, uint64_t{kPageRecordBytes} * g.slab_count * g.slab_pages);
  write_allocator_header(metadata, g);
  write_allocator_header(data, g);
  return Status::ok();
}

Result<SlabGeometry> SlabAllocator::read_geometry(const cxl::Region& data) { return read_header(data, data); }

Result<std::unique_ptr<SlabAllocator>> SlabAllocator::open(cxl::Region& data, cxl::Region& metadata) {
  auto g = read_header(metadata, data);
  if (!g) return g.status();
  if (Status st = check_pair(data, metadata, *g); !st) return st;
  if (flock(data.fd(), LOCK_EX | LOCK_NB) != 0)
    return Status(Code::kBusy, fmt::format("region {}: its allocator is held by another process", data.describe()));
  // The metadata region too: another daemon configured with the same one must not take or remove it.
  if (flock(metadata.fd(), LOCK_EX | LOCK_NB) != 0) {
    flock(data.fd(), LOCK_UN);
    return Status(Code::kBusy, fmt::format("metadata region {}: held by another process", metadata.describe()));
  }
  std::unique_ptr<SlabAllocator> a(new SlabAllocator(data, metadata, *g));
  // Rebuild the free stack from the state words; a word that is neither state is damage.
  a->free_stack_.reserve(g->slab_count);
  for (uint32_t i = g->slab_count; i-- > 0;) {
    const uint64_t w = a->state_word(i);
    if (word_state(w) == SlabState::kFree) a->free_stack_.push_back(i);
    else if (word_state(w) != SlabState::kInUse)
      return Status(Code::kCorrupt, fmt::format("region {}: slab {} has state word {:#x}", metadata.describe(), i, w));
  }
  // The published copies as the metadata says, whatever a client stored into them.
  if (std::memcmp(header_at(data), header_at(metadata), sizeof(AllocatorHeader)) != 0) {
    std::memcpy(header_at(data), header_at(metadata), sizeof(AllocatorHeader));
    cxl::persist(header_at(data), sizeof(AllocatorHeader));
  }
  std::memcpy(data.base() + g->state_offset, metadata.base() + g->state_offset, 8ull * g->slab_count);
  cxl::persist(data.base() + g->state_offset, 8ull * g->slab_count);
  return a;
}

SlabAllocator::SlabAllocator(cxl::Region& data, cxl::Region& metadata, const SlabGeometry& geometry)
    : region_(data), metadata_(metadata), geometry_(geometry),
      words_(reinterpret_cast<std::atomic<uint64_t>*>(metadata.base() + geometry.state_offset)),
      published_(reinterpret_cast<std::atomic<uint64_t>*>(data.base() + geometry.state_offset)) {
  static_assert(sizeof(std::atomic<uint64_t>) == 8 && std::atomic<uint64_t>::is_always_lock_free);
}

SlabAllocator::~SlabAllocator() {
  flock(metadata_.fd(), LOCK_UN);
  flock(region_.fd(), LOCK_UN);
}

void SlabAllocator::store_word(uint32_t slab, uint64_t word) {
  // One aligned 8-byte store each: a kill leaves the old word or the new one, never a mix. The
  // truth first; the copy readers check follows before the slab is handed out or counted free.
  words_[slab].store(word, std::memory_order_release);
  cxl::persist(&words_[slab], sizeof(uint64_t));
  published_[slab].store(word, std::memory_order_release);
  cxl::persist(&published_[slab], sizeof(uint64_t));
}

Result<uint32_t> SlabAllocator::allocate() {
  std::lock_guard lock(mu_);
  if (free_stack_.empty())
    return Status(Code::kExhausted, fmt::format("region {}: all {} slabs in use", region_.describe(), geometry_.slab_count));
  const uint32_t slab = free_stack_.back();
  store_word(slab, slab_word(word_generation(state_word(slab)) + 1, SlabState::kInUse));
  free_stack_.pop_back();
  return slab;
}

Status SlabAllocator::free(uint32_t slab) {
  std::lock_guard lock(mu_);
  if (slab >= geometry_.slab_count)
    return Status(Code::kInvalidArgument, fmt::format("free slab {}: past the last slab {}", slab, geometry_.slab_count - 1));
  const uint64_t w = state_word(slab);
  if (word_state(w) != SlabState::kInUse)
    return Status(Code::kInvalidArgument, fmt::format("free slab {}: it is already free (generation {})", slab, word_generation(w)));
  store_word(slab, slab_word(word_generation(w), SlabState::kFree));
  // After the word: a reader that sees the old count also sees this slab still in use.
  auto* frees = reinterpret_cast<std::atomic<uint64_t>*>(region_.base() + geometry_.free_counter_offset());
  frees->fetch_add(1, std::memory_order_release);
  cxl::persist(frees, sizeof(uint64_t));
  free_stack_.push_back(slab);
  return Status::ok();
}

void SlabAllocator::announce_epoch(uint64_t epoch) {
  std::lock_guard lock(mu_);
  auto* word = reinterpret_cast<std::atomic<uint64_t>*>(region_.base() + geometry_.epoch_offset());
  word->store(epoch, std::memory_order_release);
  // After the epoch: a reader that sees the new count also sees the new epoch.
  auto* frees = reinterpret_cast<std::atomic<uint64_t>*>(region_.base() + geometry_.free_counter_offset());
  frees->fetch_add(1, std::memory_order_release);
  cxl::persist(frees, 2 * sizeof(uint64_t));  // the count and the epoch after it: one line
}

SlabStats SlabAllocator::stats() const {
  std::lock_guard lock(mu_);
  SlabStats s;
  s.total = geometry_.slab_count;
  s.free = static_cast<uint32_t>(free_stack_.size());
  s.in_use = s.total - s.free;
  return s;
}

}  // namespace cxlkv
