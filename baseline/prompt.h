// The synthetic prompt the baseline tools name a prefix by: token ids in [0, 129280) from a
// seed, the same convention as scripts/demo's prefill program, so cxlkv-bulk-fetch finds what
// the demo wrote. Also the prompt cxlkv-bench writes. Pure function, no state.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace cxlkv::baseline {

inline std::vector<int32_t> synthetic_prompt(uint32_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> vocab(0, 129279);
  std::vector<int32_t> t(tokens);
  for (auto& x : t) x = vocab(rng);
  return t;
}

}  // namespace cxlkv::baseline
