// What scripts/demo's prefill and decode programs share with each other and with cxlkv-bulk-fetch:
// the daemon endpoint and namespace, the command-line options, and the prompt they agree on
// (synthetic.h), so the decode process names the prefix without talking to prefill.
// Options only: never a call into the daemon or the library beyond ClientOptions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cxlkv/client.h"
#include "synthetic.h"

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

// The demo's prompt: the synthetic prompt of o.tokens tokens from o.seed.
inline std::vector<int32_t> prompt(const DemoOptions& o) { return testing::synthetic_prompt(o.tokens, o.seed); }

}  // namespace cxlkv::demo
