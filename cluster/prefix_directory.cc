#include "prefix_directory.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <xxhash.h>

#include "placement.h"

namespace cxlkv::cluster {
namespace {

constexpr char kMagic[4] = {'C', 'X', 'S', '1'};
constexpr size_t kHeaderBytes = 4 + 4 + 8 + 8;
constexpr uint64_t kBitsPerKey = 10;
constexpr uint32_t kProbes = 7;  // ln 2 x 10 bits per key, rounded
// A seed of its own: independent of placement's boundary and rendezvous hashes.
constexpr uint64_t kSummarySeed = 0x63786c6b7673756d;  // "cxlkvsum"

template <typename T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(char(uint8_t(v >> (8 * i))));
}
template <typename T>
T get_le(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= T(uint8_t(p[i])) << (8 * i);
  return v;
}

// Probe i of a key is bit (h1 + i * h2) mod bits (Kirsch-Mitzenmacher double hashing).
template <typename F>
void for_each_probe(const PageKey& key, uint32_t probes, uint64_t bits, F f) {
  const XXH128_hash_t h = XXH3_128bits_withSeed(key.bytes.data(), key.bytes.size(), kSummarySeed);
  const uint64_t h2 = h.high64 | 1;  // odd: the probes never collapse onto one bit
  for (uint32_t i = 0; i < probes; ++i) f((h.low64 + i * h2) % bits);
}

}  // namespace

bool starts_summarised_chunk(const PageKey& key, const PageKey& parent, uint32_t chunk_pages) {
  return parent.is_zero() || starts_chunk(key, chunk_pages);
}

PrefixSummary PrefixSummary::build(std::span<const PageKey> chunk_starts) {
  PrefixSummary s;
  s.probes_ = kProbes;
  s.keys_ = chunk_starts.size();
  s.words_.assign(std::max<uint64_t>(1, (s.keys_ * kBitsPerKey + 63) / 64), 0);
  const uint64_t bits = s.bits();
  for (const PageKey& k : chunk_starts)
    for_each_probe(k, s.probes_, bits, [&](uint64_t b) { s.words_[b / 64] |= uint64_t{1} << (b % 64); });
  return s;
}

bool PrefixSummary::may_contain(const PageKey& key) const {
  if (keys_ == 0 || words_.empty()) return false;
  bool all = true;
  for_each_probe(key, probes_, bits(), [&](uint64_t b) { all = all && (words_[b / 64] >> (b % 64) & 1); });
  return all;
}

std::string PrefixSummary::serialize() const {
  std::string out(kMagic, sizeof kMagic);
  out.reserve(kHeaderBytes + words_.size() * 8);
  put_le(out, probes_);
  put_le(out, bits());
  put_le(out, keys_);
  for (uint64_t w : words_) put_le(out, w);
  return out;
}

Result<PrefixSummary> PrefixSummary::parse(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return Status(Code::kCorrupt, fmt::format("prefix summary: {} bytes without the CXS1 header", bytes.size()));
  PrefixSummary s;
  s.probes_ = get_le<uint32_t>(bytes.data() + 4);
  const uint64_t bits = get_le<uint64_t>(bytes.data() + 8);
  s.keys_ = get_le<uint64_t>(bytes.data() + 16);
  if (s.probes_ == 0 || s.probes_ > 32 || bits == 0 || bits % 64 != 0 || bits / 8 != bytes.size() - kHeaderBytes)
    return Status(Code::kCorrupt, fmt::format("prefix summary: {} probes over {} bits in {} bytes", s.probes_, bits,
                                              bytes.size()));
  s.words_.resize(bits / 64);
  for (size_t i = 0; i < s.words_.size(); ++i) s.words_[i] = get_le<uint64_t>(bytes.data() + kHeaderBytes + 8 * i);
  return s;
}

std::string directory_prefix(const ClusterUrl& url, uint64_t ns) {
  return fmt::format("{}directory/{:016x}/", url.key_prefix(), ns);
}

std::string directory_key(const ClusterUrl& url, uint64_t ns, std::string_view node_id) {
  return directory_prefix(url, ns) + std::string(node_id);
}

Result<std::map<std::string, PrefixSummary>> read_directory(EtcdClient& etcd, const ClusterUrl& url, uint64_t ns,
                                                            std::vector<std::string>* skipped) {
  const std::string prefix = directory_prefix(url, ns);
  auto kvs = etcd.get_prefix(prefix);
  if (!kvs) return kvs.status();
  std::map<std::string, PrefixSummary> out;
  for (const EtcdKv& kv : *kvs) {
    auto s = PrefixSummary::parse(kv.value);
    if (s) out.emplace(kv.key.substr(prefix.size()), std::move(*s));
    else if (skipped) skipped->push_back(kv.key + ": " + s.status().message());
  }
  return out;
}

RouteAnswer route_keys(std::span<const PageKey> keys, uint32_t chunk_pages,
                       const std::map<std::string, PrefixSummary>& summaries, std::span<const RouteWorker> workers) {
  RouteAnswer a;
  a.prefix_pages = uint32_t(keys.size());
  for (const ChunkPlacement& c : place_prefix(keys, chunk_pages, {})) {
    const PageKey& first = keys[c.first_page];
    auto holder = std::find_if(summaries.begin(), summaries.end(),
                               [&](const auto& s) { return s.second.may_contain(first); });
    if (holder == summaries.end()) break;
    a.cached_pages += c.pages;
    a.node_pages[holder->first] += c.pages;
  }
  for (const RouteWorker& w : workers) {
    RankedWorker r{w.name, 0, 0};
    for (const auto& [node, pages] : a.node_pages) {
      auto it = w.node_affinity.find(node);
      if (it == w.node_affinity.end() || it->second <= 0) continue;
      r.score += it->second * pages;
      r.local_pages += pages;
    }
    a.workers.push_back(std::move(r));
  }
  std::stable_sort(a.workers.begin(), a.workers.end(), [](const RankedWorker& x, const RankedWorker& y) {
    if (x.score != y.score) return x.score > y.score;
    if (x.local_pages != y.local_pages) return x.local_pages > y.local_pages;
    return x.name < y.name;
  });
  return a;
}

}  // namespace cxlkv::cluster
