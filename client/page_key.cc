// Chained SHA-256 page keys (cxlkv/page_key.h), over OpenSSL's one-shot EVP digest.
#include "cxlkv/page_key.h"

#include "namespace_id.h"

#include <openssl/evp.h>

#include <bit>
#include <cstring>

namespace cxlkv {

std::string PageKey::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * kPageKeyBytes, '0');
  for (size_t i = 0; i < kPageKeyBytes; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

uint64_t namespace_id(std::string_view tenant, std::string_view model) { return wire::namespace_id(tenant, model); }

namespace {

void put_le64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(v >> (8 * i));
}

}  // namespace

PageKey page_key(const PageKey& parent, uint64_t ns, std::span<const int32_t> tokens) {
  uint8_t ns_bytes[8];
  put_le64(ns_bytes, ns);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, parent.bytes.data(), kPageKeyBytes);
  EVP_DigestUpdate(ctx, ns_bytes, sizeof ns_bytes);
  if constexpr (std::endian::native == std::endian::little) {
    EVP_DigestUpdate(ctx, tokens.data(), tokens.size_bytes());
  } else {
    for (int32_t t : tokens) {
      uint8_t le[4] = {uint8_t(t), uint8_t(t >> 8), uint8_t(t >> 16), uint8_t(uint32_t(t) >> 24)};
      EVP_DigestUpdate(ctx, le, sizeof le);
    }
  }
  PageKey key;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, key.bytes.data(), &len);
  EVP_MD_CTX_free(ctx);
  return key;
}

std::vector<PageKey> page_keys(std::span<const int32_t> tokens, uint32_t page_tokens, uint64_t ns,
                               const PageKey& parent) {
  std::vector<PageKey> keys;
  if (page_tokens == 0) return keys;
  const size_t pages = tokens.size() / page_tokens;
  keys.reserve(pages);
  PageKey prev = parent;
  for (size_t p = 0; p < pages; ++p) {
    prev = page_key(prev, ns, tokens.subspan(p * page_tokens, page_tokens));
    keys.push_back(prev);
  }
  return keys;
}

}  // namespace cxlkv
