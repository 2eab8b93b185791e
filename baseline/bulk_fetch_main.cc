// cxlkv-bulk-fetch: the client side of the RDMA bulk-fetch baseline as a tool. Looks a prefix up
// through the pool daemon (libcxlkv), then fetches it from cxlkv-bulkd over TCP or RDMA:
//   --mode bulk    every page, all layers, both streams, into local memory (what RDMA pools do
//                  before decoding), verified byte-exact against the page records' checksums;
//   --mode ranged  the indexer keys, then each step's top-k latent entries per layer (misses
//                  only, from the trace model), verified against the client's own mapping.
// --write first writes the prefix (synthetic data) so a guest can run it alone.
#include <chrono>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cxlkv/client.h"
#include "demo_options.h"
#include "prefix_fetch.h"
#include "rdma_transport.h"
#include "tcp_reader.h"
#include "prefix_io.h"
#include "topk_trace.h"

namespace {

using namespace cxlkv;
using namespace cxlkv::baseline;
using namespace cxlkv::testing;  // synthetic_prompt, TopkTrace, write_prefix (testkit/)

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "cxlkv-bulk-fetch: %s: %s\n", what.c_str(), st.to_string().c_str());
  return 1;
}

struct Options {
  ClientOptions client = demo::demo_client_options();  // scripts/demo's daemon and namespace
  std::string bulkd = "127.0.0.1:7400";
  std::string transport = "tcp", mode = "bulk";
  uint32_t tokens = 32768, seed = 1, topk = 2048, steps = 4;
  double overlap = 0.8;
  bool write = false, verify = true, json = false;
  RdmaOptions rdma;
  int gid = -1;
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("--endpoint", o.client.endpoint, "pool daemon endpoint, unix:/path or tcp:host:port");
  app.add_option("--tenant", o.client.tenant, "tenant");
  app.add_option("--token", o.client.token, "tenant token");
  app.add_option("--model", o.client.model, "model (namespace = tenant x model)");
  app.add_option("--region-path", o.client.region_path, "map the region by this path (another host's name for it)");
  app.add_option("--bulkd", o.bulkd, "cxlkv-bulkd host:port");
  app.add_option("--transport", o.transport, "tcp or rdma")->check(CLI::IsMember({"tcp", "rdma"}));
  app.add_option("--mode", o.mode, "bulk (whole prefix) or ranged (top-k entries per step)")->check(CLI::IsMember({"bulk", "ranged"}));
  app.add_option("--tokens", o.tokens, "prompt length in tokens (whole pages)");
  app.add_option("--seed", o.seed, "seed of the synthetic prompt (scripts/demo's convention)");
  app.add_option("--topk", o.topk, "ranged: entries per layer per step");
  app.add_option("--steps", o.steps, "ranged: decode steps");
  app.add_option("--overlap", o.overlap, "ranged: step-to-step top-k overlap (trace model)");
  app.add_flag("--write", o.write, "write the prefix first (synthetic, verifiable data)");
  app.add_flag("!--no-verify", o.verify, "skip the byte-exact check against the local mapping (and of the slabs' generations)");
  app.add_option("--rdma-device", o.rdma.device, "RDMA device (default: the first)");
  app.add_option("--gid-index", o.gid, "GID index (default: the first IPv4-mapped GID)");
  app.add_flag("--json", o.json, "print one JSON object");
}

// The looked-up prefix and where its fetched bytes go: the prefix in LocalLayout order, then (for
// ranged) k rows.
struct Fetch {
  const ReadLease& lease;
  std::span<const PageKey> keys;
  std::span<const Placement> pages;
  const LocalLayout& local;
  uint8_t* buffer;
  RangeReader& reader;
  BatchLimits limits;
  FetchScratch scratch;
};

void record_counts(const RangeReader& reader, nlohmann::json& out) {
  out["bytes"] = reader.counts().bytes;
  out["messages"] = reader.counts().messages;
  out["batches"] = reader.counts().batches;
}

// --mode bulk: every page, all layers, both streams; returns 0, or the exit status after printing why.
int fetch_bulk(Fetch& f, const Options& o, nlohmann::json& out) {
  const PoolView& view = f.lease.view();
  const double t0 = now_s();
  if (Status st = fetch_pages(f.reader, view, f.pages, f.local, (1u << view.stream_count) - 1, f.buffer, f.limits, f.scratch); !st)
    return fail("bulk fetch", st);
  const double fetch_s = now_s() - t0;
  out["fetch_s"] = fetch_s;
  record_counts(f.reader, out);
  out["gbps"] = double(f.reader.counts().bytes) / fetch_s / 1e9;
  if (o.verify) {
    if (Status st = verify_bytes(view, f.pages, f.local, (1u << view.stream_count) - 1, f.buffer); !st)
      return fail("verify", st);
    if (Status st = verify_pages(f.reader, view, f.pages); !st) return fail("verify", st);
    out["verified"] = "every entry against the local mapping; slab generations";
  }
  return 0;
}

// --mode ranged: the indexer keys, then each step's top-k latent misses per layer; returns 0, or
// the exit status after printing why.
int fetch_ranged(Fetch& f, const Client& c, const Options& o, nlohmann::json& out) {
  const PoolView& view = f.lease.view();
  const int latent = c.layout().find_stream("latent"), indexer = c.layout().find_stream("indexer");
  if (latent < 0) return fail("ranged", Status(Code::kMismatch, "layout has no 'latent' stream"));
  const double t0 = now_s();
  if (indexer >= 0)
    if (Status st = fetch_pages(f.reader, view, f.pages, f.local, 1u << indexer, f.buffer, f.limits, f.scratch); !st)
      return fail("indexer fetch", st);
  out["indexer_s"] = now_s() - t0;
  const uint32_t eb = view.streams[latent].entry_bytes;
  TopkTrace trace(uint32_t(f.lease.prefix_tokens()), view.layers, o.topk, o.overlap, o.seed);
  std::vector<uint8_t> expect(size_t{trace.k()} * eb);
  uint8_t* rows = f.buffer + f.pages.size() * f.local.page_bytes;
  uint64_t verified = 0;
  const double t1 = now_s();
  for (uint32_t s = 0; s < o.steps; ++s) {
    trace.next_step();
    for (uint32_t l = 0; l < view.layers; ++l) {
      const auto miss = trace.misses(l);
      if (Status st = fetch_entries(f.reader, view, f.pages, latent, l, miss, rows, f.limits, f.scratch); !st) return fail("ranged fetch", st);
      if (o.verify) {
        if (Status st = f.lease.gather_topk(latent, l, miss.data(), int(miss.size()), expect.data()); !st) return fail("local gather", st);
        if (std::memcmp(expect.data(), rows, miss.size() * eb) != 0)
          return fail("verify", Status(Code::kCorrupt, fmt::format("step {} layer {}: fetched entries differ from the region", s, l)));
        verified += miss.size();
      }
    }
  }
  out["steps_s"] = now_s() - t1;
  record_counts(f.reader, out);
  if (o.verify) out["verified"] = fmt::format("{} entries against the local mapping", verified);
  return 0;
}

void print_result(const nlohmann::json& out, bool as_json) {
  if (as_json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    for (auto& [k, v] : out.items()) std::printf("%-14s %s\n", k.c_str(), v.dump().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cxlkv-bulk-fetch: fetch a cached prefix from cxlkv-bulkd over TCP or RDMA (the bulk-fetch baseline)"};
  Options o;
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  o.rdma.gid_index = o.gid;

  auto client = Client::connect(o.client);
  if (!client) return fail("connect to " + o.client.endpoint, client.status());
  Client& c = **client;
  const auto keys = c.page_keys(synthetic_prompt(o.tokens, o.seed));
  if (keys.empty()) return fail("prompt", Status(Code::kInvalidArgument, fmt::format("{} tokens make no whole page", o.tokens)));
  if (o.write) {
    auto w = testing::write_prefix(c, keys);
    if (!w) return fail("write prefix", w.status());
  }
  const double t_lookup = now_s();
  auto lease = c.lookup(keys);
  if (!lease) return fail("lookup", lease.status());
  const double lookup_s = now_s() - t_lookup;
  if (lease->pages() == 0) return fail("lookup", Status(Code::kNotFound, fmt::format("none of the {} pages is cached (use --write)", keys.size())));
  const PoolView& view = lease->view();
  const auto pages = lease->placements();
  const LocalLayout local = LocalLayout::of(view);

  auto tcp = TcpReader::connect(o.bulkd);
  if (!tcp) return fail("connect to cxlkv-bulkd " + o.bulkd, tcp.status());
  // Bulk: the prefix in LocalLayout order. Ranged: the same (only indexer runs filled), then k rows.
  const uint64_t prefix_bytes = pages.size() * local.page_bytes;
  auto buffer = LocalBuffer::create(prefix_bytes + (o.mode == "ranged" ? size_t{o.topk} * 4096 : 0));
  if (!buffer) return fail("local buffer", buffer.status());
  RangeReader* reader = tcp->get();
  std::unique_ptr<RangeReader> rdma;
  if (o.transport == "rdma") {
    auto r = connect_rdma(**tcp, o.rdma, buffer->data(), buffer->size());
    if (!r) return fail("rdma", r.status());
    rdma = std::move(*r);
    reader = rdma.get();
  }
  Fetch f{*lease, keys, pages, local, buffer->data(), *reader, {}, {}};
  nlohmann::json out = {{"transport", o.transport}, {"mode", o.mode}, {"pages", pages.size()},
                        {"prefix_tokens", lease->prefix_tokens()}, {"lookup_s", lookup_s}};
  const int status = o.mode == "bulk" ? fetch_bulk(f, o, out) : fetch_ranged(f, c, o, out);
  if (status != 0) return status;
  print_result(out, o.json);
  return 0;
}
