// Layout presets, parsing and validation.
#include <catch2/catch_test_macros.hpp>

#include "cxlkv/layout.h"

using namespace cxlkv;

TEST_CASE("deepseek-v3.2 preset has 61 layers, a 656 B sparse latent and a 132 B bulk indexer") {
  auto l = Layout::parse("deepseek-v3.2");
  REQUIRE(l.is_ok());
  CHECK(l->layers() == 61);
  CHECK(l->page_tokens() == 64);
  REQUIRE(l->stream_count() == 2);
  CHECK(l->stream_name(0) == "latent");
  CHECK(l->stream(0).entry_bytes == 656);
  CHECK(l->stream(0).entry_stride == 656);
  CHECK(l->access(0) == Access::kSparse);
  CHECK(l->stream_name(1) == "indexer");
  CHECK(l->stream(1).entry_bytes == 132);
  CHECK(l->access(1) == Access::kBulk);
  // One page over all layers: 61 x 64 x (656 + 132) bytes.
  CHECK(l->page_payload_bytes() == 61ull * 64 * (656 + 132));
}

TEST_CASE("deepseek-v3.2-split keeps the same bytes per token, the latent's scales a bulk stream apart") {
  auto split = Layout::parse("deepseek-v3.2-split");
  REQUIRE(split.is_ok());
  REQUIRE(split->stream_count() == 3);
  CHECK(split->find_stream("latent") == 0);
  CHECK(split->stream(0).entry_bytes == 640);  // five whole 128 B lines: NoPE + RoPE
  CHECK(split->access(0) == Access::kSparse);
  CHECK(split->find_stream("latent_scales") == 1);
  CHECK(split->stream(1).entry_bytes == 16);
  CHECK(split->access(1) == Access::kBulk);
  CHECK(split->find_stream("indexer") == 2);
  CHECK(split->page_payload_bytes() == Layout::parse("deepseek-v3.2")->page_payload_bytes());
}

TEST_CASE("a stride override pads one stream and keeps its entry size") {
  auto l = Layout::parse("deepseek-v3.2:latent_stride=704");
  REQUIRE(l.is_ok());
  CHECK(l->stream(0).entry_bytes == 656);
  CHECK(l->stream(0).entry_stride == 704);
  CHECK_FALSE(*l == *Layout::parse("deepseek-v3.2"));
}

TEST_CASE("dense presets and custom layouts parse") {
  for (const auto& name : Layout::preset_names()) CHECK(Layout::parse(name).is_ok());
  auto l = Layout::parse("custom:name=tiny,layers=4,page_tokens=16,stream=k/64/64/sparse,stream=v/100/128/bulk");
  REQUIRE(l.is_ok());
  CHECK(l->name() == "tiny");
  CHECK(l->layers() == 4);
  CHECK(l->page_tokens() == 16);
  CHECK(l->stream(1).entry_stride == 128);
  CHECK(l->access(1) == Access::kBulk);
}

TEST_CASE("bad layouts are errors that name the problem") {
  auto unknown = Layout::parse("llama-9000");
  REQUIRE_FALSE(unknown.is_ok());
  CHECK(unknown.status().message().find("llama-9000") != std::string::npos);
  CHECK(unknown.status().message().find("deepseek-v3.2-split") != std::string::npos);  // lists the presets

  auto narrow = Layout::parse("deepseek-v3.2:latent_stride=600");
  REQUIRE_FALSE(narrow.is_ok());
  CHECK(narrow.status().message().find("600") != std::string::npos);

  CHECK_FALSE(Layout::parse("deepseek-v3.2:bogus_stride=700").is_ok());
  CHECK_FALSE(Layout::parse("custom:layers=0,stream=k/64/64/sparse").is_ok());
  CHECK_FALSE(Layout::parse("custom:layers=2").is_ok());  // no stream
  CHECK_FALSE(Layout::parse("custom:layers=2,stream=k/64/64/dense").is_ok());
  CHECK_FALSE(Layout::parse("custom:layers=2,stream=k/64/64/bulk,stream=k/64/64/bulk").is_ok());
  CHECK_FALSE(Layout::parse("custom:layers=x,stream=k/64/64/bulk").is_ok());
}
