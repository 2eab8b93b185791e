// Layout presets, parsing and validation (include/cxlkv/layout.h).
#include "cxlkv/layout.h"

#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sizes.h"

namespace cxlkv {
namespace {

void set_name(char* dst, size_t cap, std::string_view name) {
  std::memset(dst, 0, cap);
  std::memcpy(dst, name.data(), std::min(name.size(), cap - 1));
}

void add_stream(LayoutRecord& r, std::string_view name, uint32_t bytes, uint32_t stride, Access access) {
  const int s = r.stream_count++;
  set_name(r.streams[s].name, kStreamNameBytes, name);
  r.streams[s].entry_bytes = bytes;
  r.streams[s].entry_stride = stride;
  r.access[s] = access;
}

LayoutRecord preset_record(std::string_view name, bool* found) {
  LayoutRecord r;
  *found = true;
  set_name(r.name, kLayoutNameBytes, name);
  r.page_tokens = cxl::kPageTokens;
  if (name == "deepseek-v3.2") {
    // FlashMLA FP8 sparse entry: 512 x e4m3 NoPE + 4 x fp32 scales + 64 x bf16 RoPE = 656 B.
    // Lightning-indexer key: 128 x e4m3 + 1 fp32 scale = 132 B.
    r.layers = 61;
    add_stream(r, "latent", 656, 656, Access::kSparse);
    add_stream(r, "indexer", 132, 132, Access::kBulk);
  } else if (name == "deepseek-v3.2-split") {
    // The same entry split for the GPU gather: NoPE + RoPE (640 B = five whole 128 B lines, read
    // per entry) apart from the 4 x fp32 scales (16 B, fetched in bulk with the indexer keys and
    // put back at byte 512 by the gather; docs/performance.md). Scattered 656 B entries cost six
    // 128 B link requests each, 640 B aligned ones five.
    r.layers = 61;
    add_stream(r, "latent", 640, 640, Access::kSparse);
    add_stream(r, "latent_scales", 16, 16, Access::kBulk);
    add_stream(r, "indexer", 132, 132, Access::kBulk);
  } else if (name == "deepseek-v3-mla") {
    // Dense MLA (DeepSeek-V3): kv_lora_rank 512 + rope 64, bf16 = 1152 B, read whole.
    r.layers = 61;
    add_stream(r, "latent", 1152, 1152, Access::kBulk);
  } else if (name == "gqa-8x128") {
    // Grouped-query attention, 8 KV heads x 128 dims x bf16 (Llama-3-70B-like), K and V apart.
    r.layers = 80;
    add_stream(r, "k", 2048, 2048, Access::kBulk);
    add_stream(r, "v", 2048, 2048, Access::kBulk);
  } else {
    *found = false;
  }
  return r;
}

Result<uint32_t> parse_u32(std::string_view field, std::string_view text) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size())
    return Status(Code::kInvalidArgument, fmt::format("layout: {} must be a number, got '{}'", field, text));
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// "k/576/576/sparse" -> a stream.
Status parse_stream(LayoutRecord& r, std::string_view text) {
  auto parts = split(text, '/');
  if (parts.size() != 4)
    return Status(Code::kInvalidArgument,
                  fmt::format("layout: stream '{}' must be name/entry_bytes/stride/sparse|bulk", text));
  if (r.stream_count >= kMaxStreams)
    return Status(Code::kInvalidArgument, fmt::format("layout: more than {} streams", kMaxStreams));
  if (parts[0].empty() || parts[0].size() >= kStreamNameBytes)
    return Status(Code::kInvalidArgument, fmt::format("layout: stream name '{}' must be 1-15 bytes", parts[0]));
  auto bytes = parse_u32("entry_bytes", parts[1]);
  if (!bytes) return bytes.status();
  auto stride = parse_u32("entry_stride", parts[2]);
  if (!stride) return stride.status();
  Access access;
  if (parts[3] == "sparse") access = Access::kSparse;
  else if (parts[3] == "bulk") access = Access::kBulk;
  else return Status(Code::kInvalidArgument, fmt::format("layout: access '{}' must be sparse or bulk", parts[3]));
  add_stream(r, parts[0], *bytes, *stride, access);
  return Status::ok();
}

}  // namespace

std::vector<std::string> Layout::preset_names() {
  return {"deepseek-v3.2", "deepseek-v3.2-split", "deepseek-v3-mla", "gqa-8x128"};
}

Result<Layout> Layout::parse(std::string_view spec) {
  const size_t colon = spec.find(':');
  const std::string_view head = spec.substr(0, colon);
  const std::string_view tail = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
  LayoutRecord r;
  if (head == "custom") {
    set_name(r.name, kLayoutNameBytes, "custom");
    r.page_tokens = cxl::kPageTokens;
    for (auto item : split(tail, ',')) {
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos)
        return Status(Code::kInvalidArgument, fmt::format("layout: '{}' is not key=value", item));
      auto key = item.substr(0, eq), val = item.substr(eq + 1);
      if (key == "name") {
        if (val.empty() || val.size() >= kLayoutNameBytes)
          return Status(Code::kInvalidArgument, fmt::format("layout: name '{}' must be 1-31 bytes", val));
        set_name(r.name, kLayoutNameBytes, val);
      } else if (key == "layers" || key == "page_tokens") {
        auto v = parse_u32(key, val);
        if (!v) return v.status();
        (key == "layers" ? r.layers : r.page_tokens) = *v;
      } else if (key == "stream") {
        if (Status st = parse_stream(r, val); !st) return st;
      } else {
        return Status(Code::kInvalidArgument, fmt::format("layout: unknown key '{}' in custom layout", key));
      }
    }
  } else {
    bool found = false;
    r = preset_record(head, &found);
    if (!found)
      return Status(Code::kNotFound, fmt::format("layout: no preset '{}' (presets: {}, or custom:...)", head,
                                                 fmt::join(preset_names(), ", ")));
    Layout base(r);
    for (auto item : tail.empty() ? std::vector<std::string_view>{} : split(tail, ',')) {
      // "<stream>_stride=N" pads one stream.
      const size_t eq = item.find('=');
      const std::string_view key = item.substr(0, eq);
      if (eq == std::string_view::npos || !key.ends_with("_stride"))
        return Status(Code::kInvalidArgument, fmt::format("layout: override '{}' must be <stream>_stride=N", item));
      const int s = base.find_stream(key.substr(0, key.size() - 7));
      if (s < 0) return Status(Code::kNotFound, fmt::format("layout: no stream '{}' in {}", key.substr(0, key.size() - 7), head));
      auto v = parse_u32(key, item.substr(eq + 1));
      if (!v) return v.status();
      r.streams[s].entry_stride = *v;
    }
  }
  Layout layout(r);
  if (Status st = layout.validate(); !st) return st;
  return layout;
}

Status Layout::validate() const {
  const auto& r = record_;
  if (r.name[0] == 0 || r.name[kLayoutNameBytes - 1] != 0)
    return Status(Code::kInvalidArgument, "layout: name must be 1-31 bytes");
  if (r.page_tokens == 0 || r.page_tokens > 4096)
    return Status(Code::kInvalidArgument, fmt::format("layout {}: page_tokens {} must be 1..4096", name(), r.page_tokens));
  if (r.layers == 0 || r.layers > 1024)
    return Status(Code::kInvalidArgument, fmt::format("layout {}: layers {} must be 1..1024", name(), r.layers));
  if (r.stream_count == 0 || r.stream_count > kMaxStreams)
    return Status(Code::kInvalidArgument, fmt::format("layout {}: {} streams, must be 1..{}", name(), r.stream_count, kMaxStreams));
  for (int s = 0; s < r.stream_count; ++s) {
    const auto& st = r.streams[s];
    if (st.entry_bytes == 0 || st.entry_bytes > (1u << 20))
      return Status(Code::kInvalidArgument, fmt::format("layout {}: stream {} entry_bytes {} must be 1..1 MiB", name(), stream_name(s), st.entry_bytes));
    if (st.entry_stride < st.entry_bytes || st.entry_stride > (1u << 20))
      return Status(Code::kInvalidArgument, fmt::format("layout {}: stream {} entry_stride {} must be >= entry_bytes {}", name(), stream_name(s), st.entry_stride, st.entry_bytes));
    if (r.access[s] != Access::kSparse && r.access[s] != Access::kBulk)
      return Status(Code::kInvalidArgument, fmt::format("layout {}: stream {} has unknown access kind {}", name(), stream_name(s), int(r.access[s])));
    for (int o = 0; o < s; ++o)
      if (stream_name(o) == stream_name(s))
        return Status(Code::kInvalidArgument, fmt::format("layout {}: stream name {} repeats", name(), stream_name(s)));
  }
  return Status::ok();
}

std::string Layout::name() const { return std::string(record_.name, strnlen(record_.name, kLayoutNameBytes)); }

std::string Layout::stream_name(int s) const {
  return std::string(record_.streams[s].name, strnlen(record_.streams[s].name, kStreamNameBytes));
}

int Layout::find_stream(std::string_view name) const {
  for (int s = 0; s < record_.stream_count; ++s)
    if (stream_name(s) == name) return s;
  return -1;
}

uint64_t Layout::page_payload_bytes() const {
  uint64_t total = 0;
  for (int s = 0; s < record_.stream_count; ++s)
    total += uint64_t{record_.layers} * record_.page_tokens * record_.streams[s].entry_bytes;
  return total;
}

std::string Layout::describe() const {
  std::string out = fmt::format("{} ({} layers, {}-token pages", name(), layers(), page_tokens());
  for (int s = 0; s < stream_count(); ++s)
    out += fmt::format(", {} {}/{} {}", stream_name(s), stream(s).entry_bytes, stream(s).entry_stride,
                       access(s) == Access::kSparse ? "sparse" : "bulk");
  return out + ")";
}

bool Layout::operator==(const Layout& other) const {
  return std::memcmp(&record_, &other.record_, sizeof(LayoutRecord)) == 0;
}

}  // namespace cxlkv
