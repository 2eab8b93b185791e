// Fuzz target: the daemon's configuration, a TOML text as an operator writes it, through what
// --config does with its file (read_config_text: toml++ parse, unknown-key checks, values) and
// then validate_config. Every input must end in a config or an error that says why, never a crash.
#include <string>
#include <string_view>

#include "config.h"
#include "fuzz_pool.h"

using namespace cxlkv;

namespace {

std::vector<uint8_t> text(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::maybe_write_seeds({
      {"server", text("[server]\nunix_socket = \"/tmp/x.sock\"\nmax_connections = 64\nhello_timeout_ms = 100\n"
                      "unix_socket_mode = \"0640\"\n")},
      {"region", text("[region]\nbackend = \"file\"\npath = \"/dev/shm/p\"\nsize = \"64MiB\"\nlayout = "
                      "\"deepseek-v3.2-split\"\nslab_pages = 8\n")},
      {"tenants", text("[[tenant]]\nname = \"a\"\ntoken = \"x\"\nshare = 0.25\n[[tenant]]\nname = \"b\"\ntoken = \"y\"\n")},
      {"eviction", text("[leases]\nread_ttl_ms = 1000\n[eviction]\nhigh = 0.9\nlow = 0.8\n[log]\nlevel = \"warn\"\n")},
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pool::PoolConfig config;
  Status st = pool::read_config_text(std::string_view(reinterpret_cast<const char*>(data), size), config);
  if (st) st = pool::validate_config(config);
  if (!st && st.message().empty()) std::abort();  // an error must say why
  return 0;
}
