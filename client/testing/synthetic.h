// Synthetic, verifiable cache contents: every entry's bytes follow from (page key, stream,
// layer, token) by a cheap PRNG, so a reader in another process can check each byte it fetched
// without a copy of the data. Used by the demo programs, the integration tests and benchmarks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cxlkv/page_key.h"

namespace cxlkv::testing {

// Seed of one entry: the first 8 bytes of its page's key mixed with (stream, layer, token).
inline uint64_t entry_seed(const PageKey& key, int stream, uint32_t layer, uint32_t token) {
  uint64_t k;
  std::memcpy(&k, key.bytes.data(), sizeof k);
  return k ^ (uint64_t(uint32_t(stream)) << 56) ^ (uint64_t{layer} << 32) ^ token;
}

// Fills `bytes` bytes from a seed (splitmix64, 8 bytes per step).
inline void fill_entry(uint8_t* out, size_t bytes, uint64_t seed) {
  uint64_t x = seed;
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out + i, &z, 8);
  }
  if (i < bytes) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
    std::memcpy(out + i, &z, bytes - i);
  }
}

// A packed run: the page_tokens entries of one (stream, layer) of a page.
inline void fill_run(std::vector<uint8_t>& out, const PageKey& key, int stream, uint32_t layer, uint32_t page_tokens,
                     uint32_t entry_bytes) {
  out.resize(size_t{page_tokens} * entry_bytes);
  for (uint32_t t = 0; t < page_tokens; ++t) fill_entry(out.data() + size_t{t} * entry_bytes, entry_bytes, entry_seed(key, stream, layer, t));
}

// True if `entry` holds what fill_entry wrote for this seed.
inline bool entry_matches(const uint8_t* entry, size_t bytes, uint64_t seed) {
  uint8_t expect[4096];
  if (bytes > sizeof expect) return false;
  fill_entry(expect, bytes, seed);
  return std::memcmp(entry, expect, bytes) == 0;
}

}  // namespace cxlkv::testing
