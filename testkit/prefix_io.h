// Whole-prefix helpers over the public API: write a prefix of synthetic pages (synthetic.h) and
// check gathered rows against what the writer must have written. Used by the demo programs, the
// integration tests, the benchmarks and the testbed worker, so all exercise the library the way a
// serving engine would. Only public calls (cxlkv/client.h): never a library internal.
#pragma once

#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "cxlkv/client.h"
#include "synthetic.h"

namespace cxlkv::testing {

// Reserves keys (chained from parent), writes every run of every writable page, commits.
// Returns the pages this call committed (pages cached or in flight elsewhere are skipped).
inline Result<uint32_t> write_prefix(Client& c, const std::vector<PageKey>& keys, const PageKey& parent = PageKey{}) {
  auto lease = c.reserve(parent, keys);
  if (!lease) return lease.status();
  std::vector<uint8_t> run;
  for (uint32_t p = 0; p < lease->pages(); ++p) {
    if (!lease->writable(p)) continue;
    for (int s = 0; s < c.layout().stream_count(); ++s)
      for (uint32_t l = 0; l < c.layout().layers(); ++l) {
        fill_run(run, keys[p], s, l, c.page_tokens(), c.layout().stream(s).entry_bytes);
        if (Status st = c.write_entries(*lease, p, s, l, run.data(), c.page_tokens()); !st) return st;
      }
  }
  return c.commit(*lease);
}

// Checks rows of a gather: row i holds entry indices[i] of (stream, layer), or is untouched
// (equal to `untouched`) when indices[i] == -1. keys[p] is the key of leased page p.
inline Status verify_rows(const std::vector<PageKey>& keys, uint32_t page_tokens, int stream, uint32_t layer,
                          uint32_t entry_bytes, const int32_t* indices, int k, const uint8_t* dst, uint8_t untouched) {
  for (int i = 0; i < k; ++i) {
    const uint8_t* row = dst + size_t(i) * entry_bytes;
    if (indices[i] < 0) {
      for (uint32_t b = 0; b < entry_bytes; ++b)
        if (row[b] != untouched) return Status(Code::kCorrupt, fmt::format("row {} (index -1) was written", i));
      continue;
    }
    const uint32_t page = uint32_t(indices[i]) / page_tokens, token = uint32_t(indices[i]) % page_tokens;
    if (!entry_matches(row, entry_bytes, entry_seed(keys[page], stream, layer, token)))
      return Status(Code::kCorrupt, fmt::format("row {} (stream {} layer {} index {}: page {} token {}) differs from what was written",
                                                i, stream, layer, indices[i], page, token));
  }
  return Status::ok();
}

}  // namespace cxlkv::testing
