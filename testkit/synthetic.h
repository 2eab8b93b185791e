// The synthetic data contract between processes: the prompt (token ids from a seed) that names a
// prefix, and each entry's bytes (from page key, stream, layer, token), so a decode process checks
// every byte a prefill process wrote without talking to it or holding a copy. Used by the demos,
// cxlkv-bulk-fetch, cxlkv-bench, the testbed programs, tests and benchmarks. Pure functions; never
// change an output: a writer and a reader built apart must agree byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cxlkv/page_key.h"

namespace cxlkv::testing {

// The synthetic prompt: `tokens` token ids in [0, 129280) (DeepSeek-V3's vocabulary), drawn by
// std::mt19937(seed). The prefill and decode demos, cxlkv-bulk-fetch, cxlkv-bench and the testbed
// worker (pages x 64 tokens) all name their prefixes by it.
inline std::vector<int32_t> synthetic_prompt(uint32_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> vocab(0, 129279);
  std::vector<int32_t> t(tokens);
  for (auto& x : t) x = vocab(rng);
  return t;
}

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
