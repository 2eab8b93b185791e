// The top-k traces (see topk_trace.h).
#include "topk_trace.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>

namespace cxlkv::testing {

TopkTrace::TopkTrace(uint32_t context, uint32_t layers, uint32_t k, double overlap, uint64_t seed)
    : context_(context),
      layers_(layers),
      k_(std::min(k, context)),
      overlap_(std::clamp(overlap, 0.0, 1.0)),
      rng_(seed * 0x9e3779b97f4a7c15ull + 1),
      sets_(size_t{layers} * std::min(k, context)),
      kept_(layers, 0),
      mark_(context, 0) {}

uint64_t TopkTrace::next_random() {
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void TopkTrace::next_step() {
  ++step_;
  uint32_t keep = step_ == 0 ? 0 : uint32_t(std::lround(overlap_ * k_));
  // New tokens come from outside the previous set: a context < 2k leaves only context - k of them.
  if (step_ > 0 && k_ - keep > context_ - k_) keep = k_ - (context_ - k_);
  for (uint32_t l = 0; l < layers_; ++l) {
    int32_t* s = sets_.data() + size_t{l} * k_;
    // Stamp the previous set (none at step 0), pick `keep` of it uniformly into s[0..keep).
    const uint32_t prev = ++stamp_;
    if (step_ > 0) {
      for (uint32_t i = 0; i < k_; ++i) mark_[uint32_t(s[i])] = prev;
      for (uint32_t i = 0; i < keep; ++i) std::swap(s[i], s[i + next_random() % (k_ - i)]);
    }
    // New tokens: neither in the previous set nor picked already this step.
    const uint32_t picked = ++stamp_;
    for (uint32_t i = 0; i < keep; ++i) mark_[uint32_t(s[i])] = picked;
    for (uint32_t i = keep; i < k_; ++i) {
      uint32_t t;
      do t = uint32_t(next_random() % context_);
      while (mark_[t] == prev || mark_[t] == picked);
      mark_[t] = picked;
      s[i] = int32_t(t);
    }
    std::sort(s + keep, s + k_);
    kept_[l] = keep;
  }
}

std::vector<int32_t> unique_random(uint32_t k, uint32_t n, std::mt19937_64& rng) {
  std::vector<int32_t> out;
  out.reserve(k);
  std::vector<bool> taken(n, false);
  std::uniform_int_distribution<uint32_t> pick(0, n - 1);
  while (out.size() < k) {
    const uint32_t v = pick(rng);
    if (!taken[v]) taken[v] = true, out.push_back(int32_t(v));
  }
  return out;
}

std::vector<int32_t> next_overlapping(const std::vector<int32_t>& prev, double overlap, uint32_t n, std::mt19937_64& rng) {
  const uint32_t k = uint32_t(prev.size());
  const uint32_t keep = uint32_t(overlap * k + 0.5);
  std::vector<int32_t> next = prev;
  std::shuffle(next.begin(), next.end(), rng);
  next.resize(keep);
  std::unordered_set<int32_t> used(prev.begin(), prev.end());
  std::uniform_int_distribution<uint32_t> pick(0, n - 1);
  while (next.size() < k) {
    const int32_t v = int32_t(pick(rng));
    if (used.insert(v).second) next.push_back(v);
  }
  std::shuffle(next.begin(), next.end(), rng);
  return next;
}

}  // namespace cxlkv::testing
