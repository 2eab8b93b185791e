// Layout classes: the shape of a latent cache (page size, layers, streams) that a region holds.
// Owned here because clients, the allocator and the region header all speak it; the region header
// records one byte for byte (LayoutRecord), and opening a region with another layout is an error.
// Words (STYLE.md): page = 64 tokens; entry = one token of one layer of one stream; slab = E pages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv {

// How a stream is read at decode time.
enum class Access : uint8_t {
  kSparse = 0,  // per entry, top-k (the MLA latent under DSA)
  kBulk = 1,    // whole, per page range (the indexer keys; dense attention caches)
};

inline constexpr int kMaxStreams = 4;
inline constexpr int kLayoutNameBytes = 32;
inline constexpr int kStreamNameBytes = 16;

// One stream of a layout. Byte format (24 B, version 1):
//   [0,16)  name, NUL-padded     [16,20) entry_bytes   [20,24) entry_stride (>= entry_bytes)
// Its access kind sits in LayoutRecord::access, so this struct stays 8-byte aligned.
struct StreamLayout {
  char name[kStreamNameBytes] = {};
  uint32_t entry_bytes = 0;
  uint32_t entry_stride = 0;
};

// A layout class as recorded in the region header. Byte format (144 B, version 1):
//   [0,32)   name, NUL-padded
//   [32,36)  page_tokens          [36,40) layers
//   [40,41)  stream_count         [41,45) access kind of stream 0..3 (Access)   [45,48) zero
//   [48,144) streams[4] (StreamLayout, 24 B each); unused streams are zero
// Invariant: 1 <= stream_count <= 4; entry_bytes <= entry_stride; page_tokens > 0; layers > 0.
struct LayoutRecord {
  char name[kLayoutNameBytes] = {};
  uint32_t page_tokens = 0;
  uint32_t layers = 0;
  uint8_t stream_count = 0;
  Access access[kMaxStreams] = {};
  uint8_t reserved[3] = {};
  StreamLayout streams[kMaxStreams] = {};
};
static_assert(sizeof(LayoutRecord) == 144, "LayoutRecord is an on-media format");

// A layout class with the helpers every layer needs.
class Layout {
 public:
  Layout() = default;
  explicit Layout(const LayoutRecord& record) : record_(record) {}

  // Presets: "deepseek-v3.2" (61 layers, latent 656 B sparse + indexer 132 B bulk),
  // "deepseek-v3.2-split" (the latent's 16 B of scales as a bulk stream of their own: latent
  // 640 B sparse + latent_scales 16 B bulk + indexer 132 B bulk),
  // "deepseek-v3-mla" (dense MLA, 61 layers, 1152 B bf16 latent, bulk),
  // "gqa-8x128" (80 layers, K and V of 8 heads x 128 x bf16 = 2048 B each, bulk).
  static std::vector<std::string> preset_names();
  // Parses a preset name, optionally with stride overrides, or a custom layout:
  //   "deepseek-v3.2"                      the preset
  //   "deepseek-v3.2:latent_stride=704"    the preset with one stream's stride padded
  //   "custom:name=x,layers=32,page_tokens=64,stream=k/576/576/sparse,stream=v/128/128/bulk"
  static Result<Layout> parse(std::string_view spec);

  // Checks the invariants of LayoutRecord; names the bad field and value.
  Status validate() const;

  const LayoutRecord& record() const { return record_; }
  std::string name() const;
  uint32_t page_tokens() const { return record_.page_tokens; }
  uint32_t layers() const { return record_.layers; }
  int stream_count() const { return record_.stream_count; }
  const StreamLayout& stream(int s) const { return record_.streams[s]; }
  Access access(int s) const { return record_.access[s]; }
  std::string stream_name(int s) const;
  // Index of the stream called `name`, or -1.
  int find_stream(std::string_view name) const;

  // Bytes of one stream of one page over all layers (no padding).
  uint64_t stream_page_bytes(int s) const {
    return uint64_t{record_.layers} * record_.page_tokens * record_.streams[s].entry_stride;
  }
  // Useful bytes of one page, all layers and streams (entry_bytes, not stride).
  uint64_t page_payload_bytes() const;

  // A one-line description: "deepseek-v3.2 (61 layers, 64-token pages, latent 656/656 sparse, ...)".
  std::string describe() const;

  bool operator==(const Layout& other) const;

 private:
  LayoutRecord record_;
};

}  // namespace cxlkv
