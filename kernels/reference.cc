// CPU references (reference.h).
#include "reference.h"

#include <algorithm>
#include <cstring>

namespace cxlkv::kernels {

namespace {
const uint8_t* entry_at(const uint8_t* pool, const StreamShape& shape, const GatherSegment& seg, int32_t idx) {
  const uint32_t page = uint32_t(idx) >> shape.page_shift, token = uint32_t(idx) & (shape.page_tokens - 1);
  return pool + seg.page_base[page] + uint64_t{seg.layer} * shape.layer_step + uint64_t{token} * shape.stride;
}
// Output row of entry idx: the pool entry, with a split row's side bytes put in at side_at.
void write_row(uint8_t* out, const uint8_t* pool, const StreamShape& shape, const GatherSegment& seg, int32_t idx) {
  const uint8_t* entry = entry_at(pool, shape, seg, idx);
  if (shape.side_bytes == 0) {
    std::memcpy(out, entry, shape.entry_bytes);
    return;
  }
  std::memcpy(out, entry, shape.side_at);
  std::memcpy(out + shape.side_at, seg.side + uint64_t(idx) * shape.side_bytes, shape.side_bytes);
  std::memcpy(out + shape.side_at + shape.side_bytes, entry + shape.side_at, shape.entry_bytes - shape.side_at);
}
bool in_prefix(const StreamShape& shape, const GatherSegment& seg, int32_t idx) {
  return idx >= 0 && (uint64_t(idx) >> shape.page_shift) < seg.pages;
}
}  // namespace

uint64_t reference_gather(const uint8_t* pool, const StreamShape& shape, const GatherSegment* segments, uint32_t count) {
  uint64_t out_of_range = 0;
  for (uint32_t s = 0; s < count; ++s) {
    const GatherSegment& seg = segments[s];
    for (uint32_t i = 0; i < seg.k; ++i) {
      const int32_t idx = seg.indices[i];
      if (idx == -1) continue;
      if (!in_prefix(shape, seg, idx)) { ++out_of_range; continue; }
      const uint64_t row = seg.rows ? seg.rows[i] : i;
      write_row(seg.out + row * shape.row_bytes(), pool, shape, seg, idx);
    }
  }
  return out_of_range;
}

void reference_copy_runs(const uint8_t* pool, const uint64_t* src_offset, const uint32_t* bytes, uint32_t count, uint8_t* out) {
  for (uint32_t i = 0; i < count; ++i) {
    std::memcpy(out, pool + src_offset[i], bytes[i]);
    out += bytes[i];
  }
}

void HotBufferState::reset(uint32_t capacity_rows, uint32_t prefix_tokens, uint32_t row_bytes) {
  capacity = capacity_rows;
  tokens = prefix_tokens;
  slot_of.assign(prefix_tokens, -1);
  token_of.assign(capacity_rows, -1);
  last_used.assign(capacity_rows, -1);
  rows.assign(size_t{capacity_rows} * row_bytes, 0);
}

HotStepResult reference_hot_step(HotBufferState& st, const uint8_t* pool, const StreamShape& shape,
                                 const GatherSegment& seg, int32_t step) {
  HotStepResult r;
  r.row_of.assign(seg.k, -1);
  std::vector<uint32_t> miss_slots;
  for (uint32_t i = 0; i < seg.k; ++i) {
    const int32_t idx = seg.indices[i];
    if (!in_prefix(shape, seg, idx) || uint32_t(idx) >= st.tokens) continue;
    const int32_t row = st.slot_of[idx];
    if (row >= 0) {
      st.last_used[row] = step;
      r.row_of[i] = row;
      ++r.hits;
    } else {
      miss_slots.push_back(i);
    }
  }
  // Victims: the rows not used this step with the smallest (last use, row), as many as there are
  // misses, taken in row order.
  std::vector<uint32_t> order;
  for (uint32_t row = 0; row < st.capacity; ++row)
    if (st.last_used[row] != step) order.push_back(row);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return st.last_used[a] < st.last_used[b]; });
  order.resize(std::min(order.size(), miss_slots.size()));
  std::sort(order.begin(), order.end());
  for (size_t j = 0; j < miss_slots.size(); ++j) {
    const uint32_t slot = miss_slots[j];
    const int32_t idx = seg.indices[slot];
    const uint32_t row = order[j];
    if (st.token_of[row] >= 0) st.slot_of[st.token_of[row]] = -1;
    st.token_of[row] = idx;
    st.slot_of[idx] = int32_t(row);
    st.last_used[row] = step;
    write_row(&st.rows[size_t{row} * shape.row_bytes()], pool, shape, seg, idx);
    r.row_of[slot] = int32_t(row);
  }
  r.misses = uint32_t(miss_slots.size());
  return r;
}

uint64_t reference_split_prefix(const SparseFetchSegment* segments, uint32_t count, uint32_t max_k, int32_t* prefix_topk) {
  uint64_t bad = 0;
  for (uint32_t s = 0; s < count; ++s) {
    const SparseFetchSegment& seg = segments[s];
    for (uint32_t i = 0; i < seg.k; ++i) {
      const int64_t p = seg.topk[i];
      const bool in_prefix = p >= 0 && p < seg.prefix_tokens;
      const bool in_tail = p >= seg.prefix_tokens && p < int64_t{seg.prefix_tokens} + seg.tail_tokens;
      prefix_topk[size_t{s} * max_k + i] = in_prefix ? int32_t(p) : -1;
      if (p < -1 || (p >= 0 && !in_prefix && !in_tail)) ++bad;
    }
  }
  return bad;
}

void reference_assemble_rows(const SparseFetchSegment* segments, uint32_t count, uint32_t row_bytes) {
  for (uint32_t s = 0; s < count; ++s) {
    const SparseFetchSegment& seg = segments[s];
    for (uint32_t i = 0; i < seg.k; ++i) {
      const int64_t p = seg.topk[i];
      const uint8_t* src = nullptr;
      if (p >= 0 && p < seg.prefix_tokens) {
        if (seg.row_of && seg.row_of[i] >= 0) src = seg.hot_rows + size_t(seg.row_of[i]) * row_bytes;
      } else if (p >= seg.prefix_tokens && p < int64_t{seg.prefix_tokens} + seg.tail_tokens) {
        src = seg.tail + size_t(p - seg.prefix_tokens) * row_bytes;
      }
      if (src) std::memcpy(seg.out + size_t{i} * row_bytes, src, row_bytes);
    }
  }
}

uint32_t reference_check_reuse(const uint8_t* pool, const GuardTarget* targets, uint32_t count) {
  auto word = [&](uint64_t offset) {
    uint64_t w;
    std::memcpy(&w, pool + offset, sizeof w);
    return w;
  };
  uint32_t poisoned = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const LeaseGuard& g = targets[i].guard;
    std::vector<uint64_t> counts(g.parts);
    bool changed = false, bad = false;
    for (uint32_t p = 0; p < g.parts; ++p) {
      counts[p] = word(g.frees_offset[p]);
      changed |= counts[p] != g.frees_seen[p];
    }
    if (!changed) continue;
    for (uint32_t p = 0; p < g.parts; ++p) bad |= g.epoch_offset[p] != kNoEpoch && word(g.epoch_offset[p]) != g.epoch[p];
    for (uint32_t q = 0; q < g.pages; ++q) bad |= word(g.word_offset[q]) != g.word_expected[q];
    if (!bad) {
      if (g.keeps_counts)
        for (uint32_t p = 0; p < g.parts; ++p) g.frees_seen[p] = std::max(g.frees_seen[p], counts[p]);
      continue;
    }
    std::memset(targets[i].out, kPoisonByte, targets[i].bytes);
    ++poisoned;
  }
  return poisoned;
}

}  // namespace cxlkv::kernels
