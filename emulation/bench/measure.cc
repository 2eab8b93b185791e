// The three measured designs of cxlkv-bench (see measure.h).
#include "measure.h"

#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace cxlkv::bench {
namespace {

using baseline::LocalLayout;
using testing::TopkTrace;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// 64 B lines touched by [offset, offset + bytes).
inline double lines_of(uint64_t offset, uint64_t bytes) { return double((offset + bytes - 1) / 64 - offset / 64 + 1); }

// Lines the indexer runs of every page and layer touch at the source.
double indexer_lines(const PoolView& v, std::span<const Placement> pages, int indexer) {
  const PoolView::Stream& s = v.streams[indexer];
  double lines = 0;
  for (const Placement& p : pages)
    for (uint32_t l = 0; l < v.layers; ++l)
      lines += lines_of(p.slab_offset + s.offset + l * s.layer_step + uint64_t{p.position} * v.page_tokens * s.stride,
                        uint64_t{v.page_tokens} * s.entry_bytes);
  return lines;
}

// Lines the given entries of (latent, layer) touch at the source.
double entry_lines(const PoolView& v, std::span<const Placement> pages, int stream, uint32_t layer, std::span<const int32_t> tokens) {
  double lines = 0;
  for (int32_t t : tokens) lines += lines_of(baseline::remote_entry(v, pages, stream, layer, uint32_t(t)), v.streams[stream].entry_bytes);
  return lines;
}

struct Streams {
  int latent = -1, indexer = -1;
};
Result<Streams> streams_of(const Client& c) {
  Streams s{c.layout().find_stream("latent"), c.layout().find_stream("indexer")};
  if (s.latent < 0 || s.indexer < 0)
    return Status(Code::kMismatch, fmt::format("cxlkv-bench needs a latent and an indexer stream; layout is {}", c.layout().describe()));
  return s;
}

Result<ReadLease> timed_lookup(Client& c, const RequestSpec& spec, PhaseOps& lookup) {
  const double t0 = now_s();
  auto lease = c.lookup(spec.keys);
  lookup.seconds = now_s() - t0;
  lookup.round_trips = 1;
  if (!lease) return lease.status();
  if (lease->pages() != spec.keys.size())
    return Status(Code::kNotFound, fmt::format("lookup: {} of {} pages cached", lease->pages(), spec.keys.size()));
  return lease;
}

// Rows of layer l of the current step in the workspace.
uint8_t* rows_of(Workspace& ws, uint32_t layer, uint32_t k, uint32_t eb) { return ws.rows.data() + size_t{layer} * k * eb; }

// Checks rows of every layer against the mapping (the truth the daemon's region holds).
Status check_rows(const ReadLease& lease, Workspace& ws, const TopkTrace& trace, int latent, bool misses_only,
                  std::vector<uint8_t>& expect) {
  const uint32_t eb = lease.view().streams[latent].entry_bytes, k = trace.k();
  expect.resize(size_t{k} * eb);
  for (uint32_t l = 0; l < trace.layers(); ++l) {
    const auto tokens = misses_only ? trace.misses(l) : trace.set(l);
    if (Status st = lease.gather_topk(latent, l, tokens.data(), int(tokens.size()), expect.data()); !st) return st;
    if (std::memcmp(expect.data(), rows_of(ws, l, k, eb), tokens.size() * eb) != 0)
      return Status(Code::kCorrupt, fmt::format("step {} layer {}: fetched rows differ from the region", trace.step(), l));
  }
  return Status::ok();
}

}  // namespace

PhaseOps& PhaseOps::operator+=(const PhaseOps& o) {
  bytes += o.bytes;
  lines += o.lines;
  messages += o.messages;
  round_trips += o.round_trips;
  batches += o.batches;
  seconds += o.seconds;
  return *this;
}

fabric::OpCounts PhaseOps::as_ops(fabric::Pattern pattern) const {
  fabric::OpCounts o;
  o.bytes = bytes;
  o.lines = lines;
  o.messages = messages;
  o.round_trips = round_trips;
  o.pattern = pattern;
  return o;
}

Result<DesignRun> measure_cxl_topk(Client& client, const RequestSpec& spec, Workspace& ws) {
  auto st = streams_of(client);
  if (!st) return st.status();
  DesignRun run;
  run.design = "cxl-topk";
  auto lease = timed_lookup(client, spec, run.lookup);
  if (!lease) return lease.status();
  const PoolView& v = lease->view();
  const auto pages = lease->placements();
  const uint32_t P = lease->pages(), L = v.layers, ei = v.streams[st->indexer].entry_bytes, el = v.streams[st->latent].entry_bytes;
  TopkTrace trace(uint32_t(lease->prefix_tokens()), L, spec.topk, spec.overlap, spec.seed);
  const uint32_t k = trace.k();
  // TTFT, part 1: the indexer keys, every layer, packed [layer][tokens][132 B] (into "HBM").
  const uint64_t layer_keys = uint64_t{P} * v.page_tokens * ei;
  double t0 = now_s();
  for (uint32_t l = 0; l < L; ++l)
    if (Status s = lease->fetch_pages(st->indexer, l, 0, P, ws.prefix.data() + l * layer_keys); !s) return s;
  run.ttft_bulk.seconds = now_s() - t0;
  run.ttft_bulk.bytes = double(layer_keys) * L;
  run.ttft_bulk.lines = indexer_lines(v, pages, st->indexer);
  run.ttft_bulk.round_trips = 1;
  // TTFT, part 2: the first step's top-k latent entries, one dependent gather per layer.
  trace.next_step();
  t0 = now_s();
  for (uint32_t l = 0; l < L; ++l)
    if (Status s = lease->gather_topk(st->latent, l, trace.set(l).data(), int(k), rows_of(ws, l, k, el)); !s) return s;
  run.ttft_gather.seconds = now_s() - t0;
  for (uint32_t l = 0; l < L; ++l) run.ttft_gather.lines += entry_lines(v, pages, st->latent, l, trace.set(l));
  run.ttft_gather.bytes = double(k) * el * L;
  run.ttft_gather.round_trips = L;
  // Later steps: only the misses of the hot buffer, gathered into the rows they replace.
  for (uint32_t s = 1; s < spec.steps; ++s) {
    trace.next_step();
    t0 = now_s();
    for (uint32_t l = 0; l < L; ++l) {
      const auto miss = trace.misses(l);
      if (Status e = lease->gather_topk(st->latent, l, miss.data(), int(miss.size()), rows_of(ws, l, k, el)); !e) return e;
    }
    run.steps.seconds += now_s() - t0;
    for (uint32_t l = 0; l < L; ++l) {
      run.steps.bytes += double(trace.misses(l).size()) * el;
      run.steps.lines += entry_lines(v, pages, st->latent, l, trace.misses(l));
    }
    run.steps.round_trips += L;
  }
  run.later_steps = spec.steps - 1;
  run.verified = true;
  run.verify_note = "load/store from the region itself";
  return run;
}

Result<DesignRun> measure_rdma_bulk(Client& client, baseline::RangeReader& reader, const RequestSpec& spec, Workspace& ws) {
  DesignRun run;
  run.design = "rdma-bulk";
  auto lease = timed_lookup(client, spec, run.lookup);
  if (!lease) return lease.status();
  const PoolView& v = lease->view();
  const LocalLayout local = LocalLayout::of(v);
  if (lease->pages() * local.page_bytes > ws.prefix.size())
    return Status(Code::kExhausted, fmt::format("rdma-bulk: prefix of {} B, local buffer {} B", lease->pages() * local.page_bytes, ws.prefix.size()));
  reader.reset_counts();
  const double t0 = now_s();
  if (Status s = baseline::fetch_pages(reader, v, lease->placements(), local, (1u << v.stream_count) - 1, ws.prefix.data(),
                                       baseline::BatchLimits{}, ws.scratch); !s)
    return s;
  run.ttft_bulk.seconds = now_s() - t0;
  run.ttft_bulk.bytes = double(reader.counts().bytes);
  run.ttft_bulk.lines = run.ttft_bulk.bytes / 64;
  run.ttft_bulk.messages = double(reader.counts().messages);
  run.ttft_bulk.batches = double(reader.counts().batches);
  run.ttft_bulk.round_trips = 1;  // READs are pipelined; the fetch waits once for all of them
  run.later_steps = spec.steps - 1;
  if (spec.verify) {
    if (Status s = baseline::verify_bytes(v, lease->placements(), local, (1u << v.stream_count) - 1, ws.prefix.data()); !s)
      return s;
    if (Status s = baseline::verify_pages(reader, v, lease->placements()); !s) return s;
    run.verified = true;
    run.verify_note = "every entry against the region itself; every slab still at the lease's generation";
  }
  return run;
}

Result<DesignRun> measure_rdma_ranged(Client& client, baseline::RangeReader& reader, const RequestSpec& spec, Workspace& ws) {
  auto st = streams_of(client);
  if (!st) return st.status();
  DesignRun run;
  run.design = "rdma-ranged";
  auto lease = timed_lookup(client, spec, run.lookup);
  if (!lease) return lease.status();
  const PoolView& v = lease->view();
  const auto pages = lease->placements();
  const LocalLayout local = LocalLayout::of(v);
  const uint32_t L = v.layers, el = v.streams[st->latent].entry_bytes;
  TopkTrace trace(uint32_t(lease->prefix_tokens()), L, spec.topk, spec.overlap, spec.seed);
  const uint32_t k = trace.k();
  const baseline::BatchLimits limits;
  auto take = [&reader](PhaseOps& ph) {
    ph.bytes += double(reader.counts().bytes);
    ph.lines += double(reader.counts().bytes) / 64;
    ph.messages += double(reader.counts().messages);
    ph.batches += double(reader.counts().batches);
    reader.reset_counts();
  };
  reader.reset_counts();
  double t0 = now_s();
  if (Status s = baseline::fetch_pages(reader, v, pages, local, 1u << st->indexer, ws.prefix.data(), limits, ws.scratch); !s) return s;
  run.ttft_bulk.seconds = now_s() - t0;
  take(run.ttft_bulk);
  run.ttft_bulk.round_trips = 1;
  trace.next_step();
  t0 = now_s();
  for (uint32_t l = 0; l < L; ++l)
    if (Status s = baseline::fetch_entries(reader, v, pages, st->latent, l, trace.set(l), rows_of(ws, l, k, el), limits, ws.scratch); !s)
      return s;
  run.ttft_gather.seconds = now_s() - t0;
  take(run.ttft_gather);
  run.ttft_gather.round_trips = L;
  std::vector<uint8_t> expect;
  if (spec.verify)
    if (Status s = check_rows(*lease, ws, trace, st->latent, false, expect); !s) return s;
  for (uint32_t s = 1; s < spec.steps; ++s) {
    trace.next_step();
    t0 = now_s();
    for (uint32_t l = 0; l < L; ++l)
      if (Status e = baseline::fetch_entries(reader, v, pages, st->latent, l, trace.misses(l), rows_of(ws, l, k, el), limits,
                                             ws.scratch); !e)
        return e;
    run.steps.seconds += now_s() - t0;
    take(run.steps);
    run.steps.round_trips += L;
  }
  if (spec.verify && spec.steps > 1)
    if (Status s = check_rows(*lease, ws, trace, st->latent, true, expect); !s) return s;
  run.later_steps = spec.steps - 1;
  run.verified = spec.verify;
  run.verify_note = "the first and last step's rows against the region";
  return run;
}

}  // namespace cxlkv::bench
