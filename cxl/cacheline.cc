// x86-64 implementation of the cache-line primitives (cacheline.h). The flush instruction is
// chosen once from CPUID: CLWB over CLFLUSHOPT over CLFLUSH, as famfs does.
#include "cacheline.h"

#include <cpuid.h>
#include <cstring>
#include <immintrin.h>

namespace cxlkv::cxl {
namespace {

struct Counters {
  std::atomic<uint64_t> flush_calls{0}, flush_lines{0}, fence_calls{0}, persist_calls{0};
  std::atomic<uint64_t> invalidate_calls{0}, invalidate_lines{0}, nt_copy_calls{0}, nt_copy_bytes{0};
};
Counters g_counts;

void bump(std::atomic<uint64_t>& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

FlushKind detect_flush_kind() {
  unsigned a, b, c, d;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    if (b & (1u << 24)) return FlushKind::kClwb;
    if (b & (1u << 23)) return FlushKind::kClflushopt;
  }
  return FlushKind::kClflush;
}
const FlushKind g_flush_kind = detect_flush_kind();

__attribute__((target("clwb"))) void clwb_range(uintptr_t p, uintptr_t end) {
  for (; p < end; p += kCacheLine) _mm_clwb(reinterpret_cast<void*>(p));
}
__attribute__((target("clflushopt"))) void clflushopt_range(uintptr_t p, uintptr_t end) {
  for (; p < end; p += kCacheLine) _mm_clflushopt(reinterpret_cast<void*>(p));
}
void clflush_range(uintptr_t p, uintptr_t end) {
  for (; p < end; p += kCacheLine) _mm_clflush(reinterpret_cast<void*>(p));
}

// [first line, end of last line) covering [addr, addr+len).
void line_span(const void* addr, size_t len, uintptr_t* first, uintptr_t* end) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  *first = a & ~(kCacheLine - 1);
  *end = (a + len + kCacheLine - 1) & ~(kCacheLine - 1);
}

}  // namespace

FlushKind flush_kind() { return g_flush_kind; }

const char* flush_kind_name(FlushKind kind) {
  switch (kind) {
    case FlushKind::kClwb: return "clwb";
    case FlushKind::kClflushopt: return "clflushopt";
    case FlushKind::kClflush: return "clflush";
  }
  return "?";
}

void flush(const void* addr, size_t len) {
  if (len == 0) return;
  uintptr_t p, end;
  line_span(addr, len, &p, &end);
  bump(g_counts.flush_calls);
  bump(g_counts.flush_lines, (end - p) / kCacheLine);
  switch (g_flush_kind) {
    case FlushKind::kClwb: clwb_range(p, end); break;
    case FlushKind::kClflushopt: clflushopt_range(p, end); break;
    case FlushKind::kClflush: clflush_range(p, end); break;
  }
}

void fence() {
  bump(g_counts.fence_calls);
  _mm_sfence();
}

void persist(const void* addr, size_t len) {
  bump(g_counts.persist_calls);
  flush(addr, len);
  fence();
}

void invalidate(const void* addr, size_t len) {
  if (len == 0) return;
  uintptr_t p, end;
  line_span(addr, len, &p, &end);
  bump(g_counts.invalidate_calls);
  bump(g_counts.invalidate_lines, (end - p) / kCacheLine);
  if (g_flush_kind == FlushKind::kClflush) clflush_range(p, end);
  else clflushopt_range(p, end);  // CLWB may leave the line valid: not an invalidation.
  _mm_mfence();
}

void nt_copy(void* dst, const void* src, size_t len) {
  bump(g_counts.nt_copy_calls);
  bump(g_counts.nt_copy_bytes, len);
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  // Head: ordinary stores up to a 16-byte boundary, flushed like any other store.
  const size_t head = std::min(len, (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15);
  if (head) {
    std::memcpy(d, s, head);
    flush(d, head);
    d += head; s += head; len -= head;
  }
  size_t i = 0;
  for (; i + 64 <= len; i += 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 32));
    __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 48), e);
  }
  for (; i + 16 <= len; i += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
  if (i < len) {
    std::memcpy(d + i, s + i, len - i);
    flush(d + i, len - i);
  }
  fence();
}

PrimitiveCounts primitive_counts() {
  auto ld = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  PrimitiveCounts out;
  out.flush_calls = ld(g_counts.flush_calls);
  out.flush_lines = ld(g_counts.flush_lines);
  out.fence_calls = ld(g_counts.fence_calls);
  out.persist_calls = ld(g_counts.persist_calls);
  out.invalidate_calls = ld(g_counts.invalidate_calls);
  out.invalidate_lines = ld(g_counts.invalidate_lines);
  out.nt_copy_calls = ld(g_counts.nt_copy_calls);
  out.nt_copy_bytes = ld(g_counts.nt_copy_bytes);
  return out;
}

void reset_primitive_counts() {
  for (auto* c : {&g_counts.flush_calls, &g_counts.flush_lines, &g_counts.fence_calls, &g_counts.persist_calls,
                  &g_counts.invalidate_calls, &g_counts.invalidate_lines, &g_counts.nt_copy_calls,
                  &g_counts.nt_copy_bytes})
    c->store(0, std::memory_order_relaxed);
}

}  // namespace cxlkv::cxl
