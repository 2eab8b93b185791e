// Built against an installed libcxlkv with `pkg-config --cflags --libs cxlkv` only (install_test.sh):
// connects to the daemon at argv[1], writes one page of every stream and layer, commits it, looks
// it up through the C++ API, gathers one entry back and checks its bytes. Exit 0 when that held.
#include <cxlkv/client.h>

#include <cstdio>
#include <vector>

namespace {

int fail(const char* what, const cxlkv::Status& status) {
  std::fprintf(stderr, "lookup.cc: %s: %s\n", what, status.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ENDPOINT\n", argv[0]);
    return 2;
  }
  cxlkv::ClientOptions options;
  options.endpoint = argv[1];
  options.tenant = "install";
  options.token = "install-token";
  options.model = "install-cc";
  auto client = cxlkv::Client::connect(options);
  if (!client.is_ok()) return fail("connect", client.status());
  cxlkv::Client& c = **client;

  std::vector<int32_t> tokens(c.page_tokens());
  for (size_t t = 0; t < tokens.size(); ++t) tokens[t] = static_cast<int32_t>(2000 + t);
  std::vector<cxlkv::PageKey> keys = c.page_keys(tokens);
  auto lease = c.reserve(cxlkv::PageKey{}, keys);
  if (!lease.is_ok()) return fail("reserve", lease.status());
  const cxlkv::Layout& layout = c.layout();
  for (int s = 0; s < layout.stream_count(); ++s) {
    const uint32_t bytes = layout.stream(s).entry_bytes;
    std::vector<unsigned char> run(size_t{bytes} * tokens.size());
    for (uint32_t l = 0; l < layout.layers(); ++l) {
      for (size_t i = 0; i < run.size(); ++i) run[i] = static_cast<unsigned char>(i * 3 + l + s);
      auto st = c.write_entries(*lease, 0, s, l, run.data(), c.page_tokens());
      if (!st.is_ok()) return fail("write_entries", st);
    }
  }
  auto committed = c.commit(*lease);
  if (!committed.is_ok()) return fail("commit", committed.status());

  auto read = c.lookup(keys);
  if (!read.is_ok()) return fail("lookup", read.status());
  if (read->pages() != 1) {
    std::fprintf(stderr, "lookup.cc: lookup found %u pages, 1 expected\n", read->pages());
    return 1;
  }
  const int latent = layout.find_stream("latent");
  if (latent < 0) {
    std::fprintf(stderr, "lookup.cc: layout %s has no latent stream\n", layout.name().c_str());
    return 1;
  }
  const uint32_t bytes = layout.stream(latent).entry_bytes;
  std::vector<unsigned char> row(bytes);
  const int32_t index = 9;
  auto st = read->gather_topk(latent, 2, &index, 1, row.data());
  if (!st.is_ok()) return fail("gather_topk", st);
  for (uint32_t i = 0; i < bytes; ++i) {
    if (row[i] != static_cast<unsigned char>((9 * bytes + i) * 3 + 2 + latent)) {
      std::fprintf(stderr, "lookup.cc: entry 9 of layer 2, byte %u differs\n", i);
      return 1;
    }
  }
  std::printf("lookup.cc: 1 page written, found and read back\n");
  return 0;
}
