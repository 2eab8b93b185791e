// Cache-line primitives for memory shared without hardware coherence (DESIGN.md, "Sharing CXL
// memory across hosts"). This is the only place in cxlkv that issues CLWB/CLFLUSHOPT/CLFLUSH,
// fences or non-temporal stores; every other folder calls these named functions. One exception,
// written down: the prefetch hints in include/cxlkv/read_lease.h are not coherence instructions
// (they order, flush and invalidate nothing) and stay inline there for the hot gather path.
// Writers: nt_copy() or stores + flush(), then fence() before publishing (commit).
// Readers of a possibly stale generation: invalidate() the lines, then load.
// Each primitive is counted (relaxed atomics) so tests can assert the protocol was followed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sizes.h"

namespace cxlkv::cxl {

inline constexpr size_t kCacheLine = kCacheLineBytes;  // sizes.h

// Which flush instruction this CPU gives us, best first.
enum class FlushKind : uint8_t { kClwb, kClflushopt, kClflush };
FlushKind flush_kind();
const char* flush_kind_name(FlushKind kind);

// Writes back the lines covering [addr, addr+len) towards memory; lines may stay cached.
// No ordering: call fence() before publishing.
void flush(const void* addr, size_t len);
// Orders every earlier store and flush before later stores (SFENCE).
void fence();
// flush() + fence(): the bytes are in memory before anything stored after this returns.
void persist(const void* addr, size_t len);
// Drops the lines covering [addr, addr+len) from this CPU's caches (CLFLUSHOPT/CLFLUSH, never
// CLWB, which may keep the line), then a full fence, so later loads go to memory.
void invalidate(const void* addr, size_t len);
// Copies len bytes with non-temporal stores (bypassing the cache) and fences; dst need not be
// aligned (unaligned head and tail bytes are stored and flushed).
void nt_copy(void* dst, const void* src, size_t len);

// Calls and cache lines seen by each primitive since the last reset, over all threads.
struct PrimitiveCounts {
  uint64_t flush_calls = 0, flush_lines = 0;
  uint64_t fence_calls = 0;
  uint64_t persist_calls = 0;
  uint64_t invalidate_calls = 0, invalidate_lines = 0;
  uint64_t nt_copy_calls = 0, nt_copy_bytes = 0;
};
PrimitiveCounts primitive_counts();
void reset_primitive_counts();

}  // namespace cxlkv::cxl
