// The slab table's page record (allocator/page_record.h) byte by byte, and what decode_record
// refuses. Records are built here from the format alone; the daemon's writers, which store them
// in their durable order, are tested in tests/pool/record_writer_test.cc.
#include <catch2/catch_test_macros.hpp>

#include <xxhash.h>

#include <cstring>

#include "page_record.h"

using namespace cxlkv;

namespace {

PageKey key_of(uint8_t tag) {
  PageKey k;
  for (size_t i = 0; i < kPageKeyBytes; ++i) k.bytes[i] = uint8_t(tag + i);
  return k;
}

PageRecord sample_body() {
  PageRecord r{};
  r.generation = 0x1122334455667788ull;
  r.ns = 0xabcdef0123456789ull;
  r.key = key_of(8);
  r.parent = key_of(7);
  r.slab = 5;
  r.position = 3;
  return r;
}

// The slot bytes of a COMMITTED record: body, checksums, state word, as the format defines them.
void store_committed(uint8_t* slot, uint64_t data_checksum, uint64_t commit_seq) {
  PageRecord r = sample_body();
  r.data_checksum = data_checksum;
  r.commit_seq = commit_seq;
  r.state_word = make_state_word(PageState::kCommitted);
  r.record_checksum = record_checksum(r);
  std::memcpy(slot, &r, sizeof r);
}

uint64_t u64_at(const uint8_t* p, size_t off) {
  uint64_t v;
  std::memcpy(&v, p + off, 8);
  return v;
}

}  // namespace

TEST_CASE("a committed page record has the documented bytes and decodes back") {
  alignas(64) uint8_t slot[kPageRecordBytes] = {};
  store_committed(slot, 0xfeedull, 42);
  REQUIRE(u64_at(slot, 0) == (uint64_t{kPageRecordVersion} << 32 | 2));  // COMMITTED
  REQUIRE(u64_at(slot, 8) == 0x1122334455667788ull);
  REQUIRE(u64_at(slot, 16) == 0xabcdef0123456789ull);
  REQUIRE(std::memcmp(slot + 24, key_of(8).bytes.data(), 32) == 0);
  REQUIRE(std::memcmp(slot + 56, key_of(7).bytes.data(), 32) == 0);
  REQUIRE(u64_at(slot, 88) == 0xfeed);
  REQUIRE(u64_at(slot, 96) == 42);
  REQUIRE(u64_at(slot, 104) == (uint64_t{3} << 32 | 5));  // slab 5, position 3
  REQUIRE(u64_at(slot, 120) == XXH64(slot + 8, 112, kPageRecordVersion));
  auto d = decode_record(slot, 5, 3);
  REQUIRE(d.is_ok());
  REQUIRE(d->state == PageState::kCommitted);
  REQUIRE(d->fields.key == key_of(8));
  REQUIRE(d->fields.data_checksum == 0xfeed);
  std::memset(slot, 0, 8);  // a state word of 0: FREE, as a freshly formatted slab table
  REQUIRE(decode_record(slot, 5, 3)->state == PageState::kFree);
}

TEST_CASE("a committed record with a damaged byte, a foreign slot or an unknown state fails to decode") {
  alignas(64) uint8_t slot[kPageRecordBytes] = {};
  store_committed(slot, 1, 1);
  REQUIRE(decode_record(slot, 5, 4).status().code() == Code::kCorrupt);  // not this slot's record
  slot[40] ^= 1;
  REQUIRE(decode_record(slot, 5, 3).status().code() == Code::kCorrupt);
  slot[40] ^= 1;
  REQUIRE(decode_record(slot, 5, 3).is_ok());
  slot[0] = 9;
  REQUIRE(decode_record(slot, 5, 3).status().code() == Code::kCorrupt);
}
