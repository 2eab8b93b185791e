// What the demo's prefill and decode programs share: their options and the prompt they agree on
// (token ids from a seed), so the decode process can name the prefix without talking to prefill.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cxlkv/client.h"

namespace cxlkv::demo {

// scripts/demo's daemon endpoint and namespace (also the default of cxlkv-bulk-fetch).
inline ClientOptions demo_client_options() {
  ClientOptions c;
  c.endpoint = "unix:/tmp/cxlkv-poold.sock";
  c.tenant = "demo";
  c.token = "demo-token";
  c.model = "deepseek-v3.2";
  return c;
}

struct DemoOptions {
  ClientOptions client = demo_client_options();
  uint32_t tokens = 32768;  // 512 pages
  uint32_t seed = 1;
};

inline void add_common_options(CLI::App& app, DemoOptions& o) {
  app.add_option("--endpoint", o.client.endpoint, "daemon endpoint, unix:/path or tcp:host:port");
  app.add_option("--tenant", o.client.tenant, "tenant");
  app.add_option("--token", o.client.token, "tenant token");
  app.add_option("--model", o.client.model, "model (the namespace is tenant x model)");
  app.add_option("--tokens", o.tokens, "prompt length in tokens (whole pages are cached)");
  app.add_option("--seed", o.seed, "seed of the synthetic prompt");
}

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The synthetic prompt: token ids in [0, 129280) (DeepSeek-V3's vocabulary) from the seed.
inline std::vector<int32_t> prompt(const DemoOptions& o) {
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> vocab(0, 129279);
  std::vector<int32_t> t(o.tokens);
  for (auto& x : t) x = vocab(rng);
  return t;
}

}  // namespace cxlkv::demo
