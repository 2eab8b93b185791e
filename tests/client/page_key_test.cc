// Page keys: chained SHA-256 over (parent, namespace, token ids), byte for byte as page_key.h says.
#include <catch2/catch_test_macros.hpp>

#include <numeric>
#include <vector>

#include <xxhash.h>

#include "cxlkv/page_key.h"

using namespace cxlkv;

namespace {

std::vector<int32_t> iota_tokens(size_t n, int32_t first = 0) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

constexpr uint64_t kNs = 0x0123456789abcdefull;

}  // namespace

TEST_CASE("page key matches an independently computed SHA-256 vector") {
  // python3: import hashlib, struct; ns = 0x0123456789abcdef
  //   k1 = hashlib.sha256(bytes(32) + struct.pack('<Q', ns) + struct.pack('<64i', *range(64))).digest()
  //   k2 = hashlib.sha256(k1 + struct.pack('<Q', ns) + struct.pack('<64i', *range(64, 128))).digest()
  //   k3 = hashlib.sha256(bytes(32) + struct.pack('<Q', ns) + struct.pack('<64i', *[-1] * 64)).digest()
  const auto tokens = iota_tokens(128);
  const auto keys = page_keys(tokens, 64, kNs);
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].hex() == "1398cf7ded244217c4c9d978645c90ae3b4de544df115180ca7ac2c66ba18886");
  CHECK(keys[1].hex() == "ed33d2e7a5e6a82fc9e083dac97030db0765a80169e2991beb041463832e8593");
  const std::vector<int32_t> minus_one(64, -1);
  CHECK(page_key(PageKey{}, kNs, minus_one).hex() == "fca8c47849b3974cf4db61b9ee5181a58db677d55441709ddb2d191bb73d52b3");
}

TEST_CASE("each page key chains on its parent, so equal pages under different prefixes differ") {
  const auto a = iota_tokens(128, 0);
  auto b = a;
  b[0] = 999;  // change only the first page
  const auto ka = page_keys(a, 64, kNs), kb = page_keys(b, 64, kNs);
  REQUIRE(ka.size() == 2);
  REQUIRE(kb.size() == 2);
  CHECK(ka[0] != kb[0]);
  CHECK(ka[1] != kb[1]);  // same tokens in page 1, different parent
  CHECK(ka[1] == page_key(ka[0], kNs, std::span(a).subspan(64, 64)));
  // Keys of a continuation chained from a parent equal the keys of the whole prefix.
  const auto tail = page_keys(std::span(a).subspan(64), 64, kNs, ka[0]);
  REQUIRE(tail.size() == 1);
  CHECK(tail[0] == ka[1]);
}

TEST_CASE("the namespace changes every key") {
  const auto t = iota_tokens(64);
  CHECK(page_key(PageKey{}, kNs, t) != page_key(PageKey{}, kNs + 1, t));
  CHECK(namespace_id("acme", "deepseek-v3.2") != namespace_id("acme", "llama"));
  CHECK(namespace_id("acme", "deepseek-v3.2") != namespace_id("other", "deepseek-v3.2"));
  // The separator keeps ("ab", "c") and ("a", "bc") apart.
  CHECK(namespace_id("ab", "c") != namespace_id("a", "bc"));
}

TEST_CASE("namespace id is XXH64 of tenant NUL model with seed 0") {
  const char bytes[] = {'a', 'c', 'm', 'e', '\0', 'm', '1'};
  CHECK(namespace_id("acme", "m1") == XXH64(bytes, sizeof bytes, 0));
}

TEST_CASE("page keys are deterministic and a trailing partial page gets no key") {
  const auto t = iota_tokens(64 * 3 + 17);
  const auto k1 = page_keys(t, 64, kNs), k2 = page_keys(t, 64, kNs);
  CHECK(k1.size() == 3);
  CHECK(k1 == k2);
  CHECK(page_keys(iota_tokens(63), 64, kNs).empty());
  CHECK(PageKey{}.is_zero());
  CHECK_FALSE(k1[0].is_zero());
}
