// cxlkv-demo-prefill: writes a DeepSeek-V3.2-shaped prefix into the pool, as a prefill worker
// would: page keys from the prompt, reserve, write every (stream, layer) run of every page with
// synthetic bytes a reader can verify (testkit/synthetic.h), commit.
#include <cstdio>

#include <fmt/format.h>

#include "demo_options.h"
#include "prefix_io.h"

int main(int argc, char** argv) {
  using namespace cxlkv;
  demo::DemoOptions o;
  CLI::App app{"cxlkv-demo-prefill: write a synthetic DeepSeek-V3.2 prefix into the pool"};
  demo::add_common_options(app, o);
  CLI11_PARSE(app, argc, argv);

  auto client = Client::connect(o.client);
  if (!client) return fmt::print(stderr, "prefill: {}\n", client.status().to_string()), 1;
  Client& c = **client;
  const auto keys = c.page_keys(demo::prompt(o));
  const double t0 = demo::now_s();
  auto committed = testing::write_prefix(c, keys);
  const double t1 = demo::now_s();
  if (!committed) return fmt::print(stderr, "prefill: {}\n", committed.status().to_string()), 1;
  const double bytes = double(*committed) * double(c.layout().page_payload_bytes());
  fmt::print("prefill: {} pages ({} tokens) of {} committed in {:.1f} ms ({:.2f} GB written, {:.2f} GB/s); region {} mapped by {}\n",
             *committed, uint64_t{*committed} * c.page_tokens(), c.layout().name(), (t1 - t0) * 1e3, bytes / 1e9,
             bytes / (t1 - t0) / 1e9, c.info().region, c.info().mapped_by_fd ? "fd" : "path");
  return 0;
}
