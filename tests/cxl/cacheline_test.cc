// The cache-line primitives copy correctly and are counted per call and per line.
#include <catch2/catch_test_macros.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "cacheline.h"

using namespace cxlkv::cxl;

TEST_CASE("nt_copy copies every byte for any alignment and length, and fences") {
  std::mt19937 rng(7);
  std::vector<uint8_t> src(8192), dst(8192 + 64);
  for (auto& b : src) b = static_cast<uint8_t>(rng());
  for (size_t dst_off : {0, 1, 7, 15, 16, 33, 63}) {
    for (size_t len : {0, 1, 15, 16, 17, 63, 64, 65, 656, 4095, 8192}) {
      std::memset(dst.data(), 0xEE, dst.size());
      reset_primitive_counts();
      nt_copy(dst.data() + dst_off, src.data(), len);
      REQUIRE(std::memcmp(dst.data() + dst_off, src.data(), len) == 0);
      // Bytes around the copy are untouched.
      for (size_t i = 0; i < dst_off; ++i) REQUIRE(dst[i] == 0xEE);
      for (size_t i = dst_off + len; i < dst.size(); ++i) REQUIRE(dst[i] == 0xEE);
      auto c = primitive_counts();
      CHECK(c.nt_copy_calls == 1);
      CHECK(c.nt_copy_bytes == len);
      CHECK(c.fence_calls == 1);
    }
  }
}

TEST_CASE("flush, invalidate and persist count the cache lines they cover") {
  alignas(64) static uint8_t buf[64 * 8];
  reset_primitive_counts();
  flush(buf, 64);           // one line
  flush(buf + 60, 8);       // straddles two lines
  invalidate(buf, 64 * 4);  // four lines
  persist(buf + 1, 1);      // one line + a fence
  auto c = primitive_counts();
  CHECK(c.flush_calls == 3);
  CHECK(c.flush_lines == 1 + 2 + 1);
  CHECK(c.invalidate_calls == 1);
  CHECK(c.invalidate_lines == 4);
  CHECK(c.persist_calls == 1);
  CHECK(c.fence_calls == 1);
  // Zero-length calls do nothing.
  reset_primitive_counts();
  flush(buf, 0);
  invalidate(buf, 0);
  CHECK(primitive_counts().flush_calls == 0);
  CHECK(primitive_counts().invalidate_calls == 0);
}

TEST_CASE("the flush instruction is one of the three x86 choices") {
  const std::string name = flush_kind_name(flush_kind());
  CHECK((name == "clwb" || name == "clflushopt" || name == "clflush"));
}
