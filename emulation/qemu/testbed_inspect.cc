// cxlkv-testbed-inspect: the host's check of the QEMU testbed's pool. The guests' CXL type-3
// volatile device is backed by one host file; scripts/testbed copies out the bytes of the first
// partition's data device and of its metadata device, and this opens the two copies with the file
// backend and reads what the guests left in them: the region header, the allocator's slab state
// words and the slab table (allocator/page_record.h) in the metadata region. For every
// COMMITTED record it checks that the record holds together, that its slab is in use at the
// record's generation, that the page's data checksum recomputed from the slab equals the one
// committed, and that every entry holds the synthetic bytes its key implies
// (client/testing/synthetic.h, as cxlkv-testbed-worker wrote them). Writes nothing (it maps the
// copies read-write, as the metadata region opens); run by scripts/testbed on copies it cuts out.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "page_checksum.h"
#include "page_record.h"
#include "region.h"
#include "slab_allocator.h"
#include "synthetic.h"

namespace {

using namespace cxlkv;

struct Counts {
  uint64_t committed = 0, reserved = 0, bad = 0;
};

// Checks every byte of a committed page against the synthetic contents of its key; returns the
// first mismatch, or an empty string.
std::string check_synthetic(const SlabGeometry& g, const Layout& layout, const uint8_t* slab_base, uint32_t position,
                            const PageKey& key) {
  for (int s = 0; s < layout.stream_count(); ++s)
    for (uint32_t l = 0; l < layout.layers(); ++l)
      for (uint32_t t = 0; t < g.page_tokens; ++t) {
        const uint8_t* e = slab_base + g.entry_offset(s, l, position, t);
        if (!testing::entry_matches(e, layout.stream(s).entry_bytes, testing::entry_seed(key, s, l, t)))
          return fmt::format("stream {} layer {} token {} differs from what its key implies", layout.stream_name(s), l, t);
      }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, metadata_path;
  int64_t expect = -1;
  bool synthetic = true, list = false;
  CLI::App app{"cxlkv-testbed-inspect: check the committed pages in the testbed's CXL backing file"};
  app.add_option("file", path, "the host file behind the guests' CXL device")->required()->check(CLI::ExistingFile);
  app.add_option("--metadata", metadata_path, "the copy of its metadata region (default: FILE.meta)");
  app.add_option("--expect-committed", expect, "fail unless exactly this many pages are committed");
  app.add_flag("!--no-synthetic", synthetic, "skip the byte-by-byte check of the synthetic contents");
  app.add_flag("--list", list, "print every committed page");
  CLI11_PARSE(app, argc, argv);

  auto region = cxl::Region::open({cxl::Backend::kFile, path, -1, 0});
  if (!region) return fmt::print("FAIL inspect: {}\n", region.status().to_string()), 1;
  const cxl::Region& r = **region;
  if (metadata_path.empty()) metadata_path = path + ".meta";
  auto metadata = cxl::Region::open_metadata({cxl::Backend::kFile, metadata_path, -1, 0}, r);
  if (!metadata) return fmt::print("FAIL inspect: {}\n", metadata.status().to_string()), 1;
  const cxl::Region& m = **metadata;
  auto geometry = SlabAllocator::read_geometry(r);
  if (!geometry) return fmt::print("FAIL inspect: {}: {}\n", path, geometry.status().to_string()), 1;
  const SlabGeometry& g = *geometry;
  const Layout layout = r.layout();
  fmt::print("inspect: {}: {} bytes, layout {}, E = {}, {} slabs of {} bytes at {:#x}; slab table at {:#x} of {}\n",
             r.describe(), r.size(), layout.describe(), g.slab_pages, g.slab_count, g.slab_bytes, g.slab_area_offset,
             g.records_offset, m.describe());

  Counts n;
  for (uint32_t slab = 0; slab < g.slab_count; ++slab) {
    uint64_t word;
    std::memcpy(&word, m.base() + g.state_offset + 8ull * slab, sizeof word);
    for (uint32_t pos = 0; pos < g.slab_pages; ++pos) {
      const uint8_t* slot = m.base() + g.record_offset(g.page_slot(slab, pos));
      auto d = decode_record(slot, slab, pos);
      if (!d) {
        ++n.bad;
        fmt::print("inspect: {}\n", d.status().to_string());
        continue;
      }
      if (d->state == PageState::kReserved) ++n.reserved;
      if (d->state != PageState::kCommitted) continue;
      ++n.committed;
      const PageRecord& f = d->fields;
      const uint8_t* slab_base = r.base() + g.slab_offset(slab);
      std::string problem;
      if (word_state(word) != SlabState::kInUse || word_generation(word) != f.generation)
        problem = fmt::format("slab state word {:#x} (in use {}, generation {}), record generation {}", word,
                              word_state(word) == SlabState::kInUse, word_generation(word), f.generation);
      else if (uint64_t sum = page_checksum(g, layout, slab_base, pos); sum != f.data_checksum)
        problem = fmt::format("data checksum {:#x} recomputed, {:#x} committed", sum, f.data_checksum);
      else if (synthetic)
        problem = check_synthetic(g, layout, slab_base, pos, f.key);
      const PageKey& key = f.key;
      if (list || !problem.empty())
        fmt::print("inspect: slab {:4} position {} at {:#010x}: key {}.. generation {} commit {} checksum {:#018x} {}\n",
                   slab, pos, g.slab_offset(slab), key.hex().substr(0, 16), f.generation, f.commit_seq,
                   f.data_checksum, problem.empty() ? "ok" : "BAD: " + problem);
      if (!problem.empty()) ++n.bad;
    }
  }
  fmt::print("inspect: {} committed pages, {} reserved, {} bad\n", n.committed, n.reserved, n.bad);
  if (n.bad != 0) return fmt::print("FAIL inspect: {} bad records or pages in {}\n", n.bad, path), 1;
  if (expect >= 0 && n.committed != uint64_t(expect))
    return fmt::print("FAIL inspect: {} committed pages in {}, expected {}\n", n.committed, path, expect), 1;
  fmt::print("PASS inspect: {} committed pages in {} hold their committed checksums{}\n", n.committed, path,
             synthetic ? " and the bytes their keys imply" : "");
  return 0;
}
