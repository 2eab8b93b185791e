// Page keys: the 32-byte names of cached pages, chained over a prefix like SGLang HiCache's
// (each key hashes its parent's key, so equal keys mean equal prefixes, not just equal pages).
// Pure functions with no state; prefill and decode workers call them to name what they write or
// look up. The namespace id is the one the daemon scopes keys by (docs/protocol.md, Sessions).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cxlkv {

inline constexpr size_t kPageKeyBytes = 32;

// An opaque page key, byte-identical to the wire's `Key` struct.
struct PageKey {
  std::array<uint8_t, kPageKeyBytes> bytes{};  // all zero = the parent of a prefix's first page

  bool is_zero() const { return *this == PageKey{}; }
  // 64 lower-case hex digits.
  std::string hex() const;
  bool operator==(const PageKey&) const = default;
};
static_assert(sizeof(PageKey) == kPageKeyBytes);

// The namespace id of (tenant, model): XXH64 of tenant + '\0' + model, seed 0 (protocol v1).
uint64_t namespace_id(std::string_view tenant, std::string_view model);

// The key of one page, key format version 1: SHA-256 over, in order,
//   [0,32)        the parent key (32 zero bytes for the first page of a prefix)
//   [32,40)       the namespace id, uint64 little-endian
//   [40,40+4n)    the page's n token ids, each int32 little-endian (n = page_tokens, 64)
// Deterministic across hosts and processes; nothing else goes into the digest.
PageKey page_key(const PageKey& parent, uint64_t namespace_id, std::span<const int32_t> tokens);

// Keys of the whole pages of `tokens` (a trailing partial page gets no key), chained from
// `parent`: keys[0] = page_key(parent, ns, page 0), keys[i] = page_key(keys[i-1], ns, page i).
std::vector<PageKey> page_keys(std::span<const int32_t> tokens, uint32_t page_tokens, uint64_t namespace_id,
                               const PageKey& parent = PageKey{});

}  // namespace cxlkv
