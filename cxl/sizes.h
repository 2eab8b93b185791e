// Sizes every floor of cxlkv agrees on, as shifts with the resulting size beside them. Words as in
// STYLE.md: an OS page is 4 KiB, a huge page 2 MiB, a page 64 tokens. Constants only (no code, no
// CUDA types), so cxl/, allocator/, client/ and the CUDA kernels include it alike; nothing here may
// depend on the build variant or on the machine it runs on.
#pragma once

#include <cstdint>

namespace cxlkv::cxl {

inline constexpr unsigned kOsPageShift = 12;     // 4 KiB: the kernel's page, mmap and sizing unit
inline constexpr unsigned kHugePageShift = 21;   // 2 MiB: THP / dax huge faults, mapping alignment
inline constexpr unsigned kPageTokensShift = 6;  // 64 tokens: a page of every preset layout
inline constexpr unsigned kCacheLineShift = 6;   // 64 B: a CPU cache line, the flush unit

inline constexpr uint64_t kOsPageBytes = uint64_t{1} << kOsPageShift;
inline constexpr uint64_t kHugePageBytes = uint64_t{1} << kHugePageShift;
inline constexpr uint32_t kPageTokens = uint32_t{1} << kPageTokensShift;
inline constexpr uint64_t kCacheLineBytes = uint64_t{1} << kCacheLineShift;

}  // namespace cxlkv::cxl
