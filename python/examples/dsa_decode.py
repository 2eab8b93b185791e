#!/usr/bin/env python3
"""A DeepSeek-V3.2-shaped sparse decode loop in torch over prefixes cached in a running
cxlkv-poold, against the same loop with the whole prefix in HBM (the bulk design).

Per layer of a step: the indexer's scores over the indexer keys in HBM (FP8 keys, 64 heads of
128, ReLU, per-head weights), top-k 2048 over prefix + tail, then the fetch, then MLA attention
(128 heads, 576-dim queries) over the 2,048 fetched 656 B rows dequantised from FlashMLA's FP8
layout (512 FP8 NoPE values with 4 float32 scales, 64 bf16 RoPE values). Layer l+1's queries
depend on layer l's output, as in a model. The two loops differ only in the fetch:
  cxl   SparseDecodeFetcher: prefix rows from the pool through a hot buffer per (request, layer),
        tail rows from the caller's HBM tensors, one library call per layer;
  bulk  the whole prefix's latent fetched into HBM first, rows taken with torch indexing.
Both append one decoded token per step to the tail. Prints per step: indexer, fetch, attention
(GPU time from CUDA events) and the rest of the wall time (Python, launches, waits); TTFT on a
cache hit for both designs; and checks that every layer's attention output of every step is
identical in the two loops. Needs the "deepseek-v3.2" layout (latent 656 B, indexer 132 B).

  dsa_decode.py --endpoint unix:/tmp/pool.sock --tenant t --token s [--batch 16] [--tokens 32768]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import cxlkv
import cxlkv.gpu as gpu

ROW, KEY = 656, 132            # latent row and indexer key bytes (FlashMLA FP8 sparse layout)
NOPE, ROPE = 512, 64           # latent dims
INDEX_HEADS, INDEX_DIM = 64, 128
HEADS = 128                    # attention heads (one rank)


def fp8_table(device: str) -> torch.Tensor:
    """float32 value of every e4m3fn byte (no NaN is ever written here: exponents stop at 14)."""
    b = np.arange(256)
    e, m = (b >> 3) & 15, b & 7
    v = np.where(e == 0, m / 8 * 2.0 ** -6, (1 + m / 8) * 2.0 ** (e - 7.0))
    return torch.tensor(np.where(b >> 7, -v, v), dtype=torch.float32, device=device)


def valid_rows(n: int, gen: torch.Generator, device: str) -> torch.Tensor:
    """n latent rows of 656 B with finite values: FP8 NoPE, 4 float32 scales, bf16 RoPE."""
    nope = (torch.randint(0, 256, (n, NOPE), generator=gen, device=device, dtype=torch.int32) & 0x77).to(torch.uint8)
    scales = (torch.rand((n, 4), generator=gen, device=device) * 0.02 + 0.01).view(torch.uint8)
    rope = torch.randn((n, ROPE), generator=gen, device=device).to(torch.bfloat16).view(torch.uint8)
    return torch.cat([nope, scales, rope], dim=1)


def valid_keys(n: int, gen: torch.Generator, device: str) -> torch.Tensor:
    """n indexer keys of 132 B: 128 FP8 values and one float32 scale."""
    k = (torch.randint(0, 256, (n, INDEX_DIM), generator=gen, device=device, dtype=torch.int32) & 0x77).to(torch.uint8)
    scale = (torch.rand((n, 1), generator=gen, device=device) * 0.02 + 0.01).view(torch.uint8)
    return torch.cat([k, scale], dim=1)


def fp8_values(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """e4m3fn bytes as bf16 (exact): torch's float8 type where it has one, else the table."""
    if hasattr(torch, "float8_e4m3fn"):
        return x.view(torch.float8_e4m3fn).to(torch.bfloat16)
    return table[x.long()].to(torch.bfloat16)


def dequant_keys(keys: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[..., 132] uint8 -> [..., 128] bf16."""
    scale = keys[..., INDEX_DIM:].contiguous().view(torch.float32).to(torch.bfloat16)
    return fp8_values(keys[..., :INDEX_DIM], table) * scale


def dequant_rows(rows: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, K, 656] uint8 -> K [B, K, 576] and V [B, K, 512], bf16."""
    scales = rows[..., NOPE:NOPE + 16].contiguous().view(torch.float32).to(torch.bfloat16)
    nope = (fp8_values(rows[..., :NOPE], table).view(*rows.shape[:-1], 4, 128) * scales[..., None]).flatten(-2)
    rope = rows[..., NOPE + 16:].contiguous().view(torch.bfloat16)
    return torch.cat([nope, rope], dim=-1), nope


@dataclass
class Batch:
    """A decode batch: B requests over P distinct prefixes (request r reads prefix r // (B / P))."""
    batch: int
    prefixes: int
    tokens: int
    layers: int
    keys: list[list[bytes]] = field(default_factory=list)

    def group(self, r: int) -> int:
        return r // (self.batch // self.prefixes)


class Model:
    """The step's math, shared by both loops; only `fetch` differs."""

    def __init__(self, b: Batch, steps: int, tail_cap: int, device: str) -> None:
        self.b, self.device, self.table = b, device, fp8_table(device)
        g = torch.Generator(device=device).manual_seed(7)
        L, B = b.layers, b.batch
        self.q_idx = torch.randn((L, B, INDEX_HEADS, INDEX_DIM), generator=g, device=device)
        self.w_idx = torch.rand((L, B, INDEX_HEADS, 1), generator=g, device=device)
        self.q_attn = torch.randn((L, B, HEADS, NOPE + ROPE), generator=g, device=device)
        # Small per-step changes of the queries: consecutive steps select mostly the same entries
        # (0.2 gives about 0.83 of one step's top-k again in the next, at 32K).
        self.noise = [torch.randn((L, B, INDEX_HEADS, INDEX_DIM), generator=g, device=device) * 0.2
                      for _ in range(steps)]
        self.new_rows = [valid_rows(B * L, g, device).view(B, L, ROW) for _ in range(steps)]
        self.new_keys = [valid_keys(B * L, g, device).view(B, L, KEY) for _ in range(steps)]
        self.tail_rows = torch.zeros((B, L, tail_cap, ROW), dtype=torch.uint8, device=device)
        self.tail_keys = torch.zeros((B, L, tail_cap, KEY), dtype=torch.uint8, device=device)
        self.scale = 1.0 / (NOPE + ROPE) ** 0.5

    def append(self, step: int, tail: int) -> None:
        self.tail_rows[:, :, tail] = self.new_rows[step]
        self.tail_keys[:, :, tail] = self.new_keys[step]

    def indexer(self, layer: int, step: int, prefix_keys: torch.Tensor, tail: int, h: torch.Tensor) -> torch.Tensor:
        """top-k positions [B, 2048] int32 over prefix (keys [L, P, T, 132]) + tail."""
        b = self.b
        q = ((self.q_idx[layer] + self.noise[step][layer]) * (1 + 1e-3 * h)[:, None, None]).to(torch.bfloat16)
        per = b.batch // b.prefixes
        k = dequant_keys(prefix_keys[layer], self.table)                          # [P, T, 128]
        logits = torch.relu(q.view(b.prefixes, per * INDEX_HEADS, INDEX_DIM) @ k.transpose(1, 2))
        w = self.w_idx[layer].view(b.prefixes, per, INDEX_HEADS, 1).to(torch.bfloat16)
        scores = (logits.view(b.prefixes, per, INDEX_HEADS, -1) * w).sum(2, dtype=torch.float32).view(b.batch, -1)
        tk = dequant_keys(self.tail_keys[:, layer, :tail], self.table)            # [B, tail, 128]
        tail_scores = (torch.relu(q @ tk.transpose(1, 2)) * self.w_idx[layer].to(torch.bfloat16)).sum(1, dtype=torch.float32)
        return torch.cat([scores, tail_scores], dim=1).topk(2048, dim=1).indices.to(torch.int32)

    def attention(self, layer: int, h: torch.Tensor, rows: torch.Tensor, topk: torch.Tensor) -> torch.Tensor:
        K, V = dequant_rows(rows, self.table)
        q = (self.q_attn[layer] * (1 + 1e-3 * h)[:, None, None]).to(torch.bfloat16)
        s = (q @ K.transpose(1, 2)).float() * self.scale                          # [B, 128, 2048]
        s = s.masked_fill((topk < 0)[:, None, :], float("-inf"))
        return torch.softmax(s, dim=-1).to(torch.bfloat16) @ V                   # [B, 128, 512]


def bulk_rows(full: torch.Tensor, model: Model, b: Batch, layer: int, topk: torch.Tensor) -> torch.Tensor:
    """The bulk design's fetch: rows of topk from the whole prefix in HBM ([L, P, T, 656]) or the tail."""
    T = b.tokens
    group = torch.tensor([b.group(r) for r in range(b.batch)], device=topk.device)[:, None]
    pos = topk.long()
    prefix = full[layer].view(-1, ROW)[(group * T + pos.clamp(0, T - 1)).view(-1)]
    cap = model.tail_rows.shape[2]
    req = torch.arange(b.batch, device=topk.device)[:, None]
    tail = model.tail_rows[:, layer].reshape(-1, ROW)[(req * cap + (pos - T).clamp(0, cap - 1)).view(-1)]
    rows = torch.where((pos < T).view(-1, 1), prefix, tail)
    return rows.view(b.batch, -1, ROW)


def run_step(model: Model, b: Batch, step: int, tail: int, prefix_keys: torch.Tensor, fetch: Any,
             events: list | None, outputs: list | None) -> None:
    h = torch.zeros(b.batch, device=model.device)
    for layer in range(b.layers):
        if events is not None:
            events[layer][0].record()
        topk = model.indexer(layer, step, prefix_keys, tail, h)
        if events is not None:
            events[layer][1].record()
        rows = fetch(layer, topk)
        if events is not None:
            events[layer][2].record()
        out = model.attention(layer, h, rows, topk)
        if events is not None:
            events[layer][3].record()
        h = out.float().mean(dim=(1, 2))
        if outputs is not None:
            outputs.append(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--tenant", default="")
    ap.add_argument("--token", default="")
    ap.add_argument("--model", default="dsa-decode")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prefixes", type=int, default=0, help="distinct prefixes (default: one per request)")
    ap.add_argument("--tokens", type=int, default=32768, help="prefix tokens (whole pages)")
    ap.add_argument("--steps", type=int, default=8, help="decode steps after the first")
    ap.add_argument("--hot-rows", type=int, default=4096, help="hot buffer rows per (request, layer); 0: none")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    device = "cuda"
    P = a.prefixes or a.batch
    if a.batch % P:
        ap.error(f"--batch {a.batch} is not a multiple of --prefixes {P}")

    with cxlkv.Client(a.endpoint, a.tenant, a.token, a.model) as c, gpu.GpuPool(c) as pool:
        L, pt = c.layout.layers, c.layout.page_tokens
        if c.layout.stream("latent").entry_bytes != ROW or c.layout.stream("indexer").entry_bytes != KEY:
            raise SystemExit(f"dsa_decode: layout {c.layout.name} is not DeepSeek-V3.2's (latent 656 B, indexer 132 B)")
        b = Batch(a.batch, P, a.tokens, L)
        pages = a.tokens // pt
        t0 = time.perf_counter()
        gen = torch.Generator(device=device).manual_seed(11)
        for g in range(P):  # prefill: every prefix written into the pool from the GPU, 32 pages at a time
            keys = c.page_keys(np.arange(a.tokens, dtype=np.int32) + g * 10_000_000)
            with c.reserve(keys) as w:
                for p0 in range(0, pages, 32):
                    n = min(32, pages - p0)
                    w.write_pages("latent", valid_rows(n * L * pt, gen, device), first_page=p0)
                    w.write_pages("indexer", valid_keys(n * L * pt, gen, device), first_page=p0)
                w.commit()
            b.keys.append(keys)
            print(f"dsa_decode: prefix {g + 1}/{P} ({a.tokens} tokens) written ({time.perf_counter() - t0:.1f} s)",
                  flush=True)

        steps = a.steps + 1
        model = Model(b, steps, steps, device)
        full = torch.empty((L, P, a.tokens, ROW), dtype=torch.uint8, device=device)
        prefix_keys = torch.empty((L, P, a.tokens, KEY), dtype=torch.uint8, device=device)
        out_rows = torch.zeros((a.batch, 2048, ROW), dtype=torch.uint8, device=device)

        def admit(bulk: bool) -> tuple[list, dict]:
            """Lookup and the bytes each design moves into HBM before its first step."""
            times: dict[str, float] = {}
            t = time.perf_counter()
            leases = [c.lookup(b.keys[b.group(r)]) for r in range(a.batch)]
            times["lookup_ms"] = (time.perf_counter() - t) * 1e3
            for g in range(P):
                lease = leases[g * (a.batch // P)]
                for layer in range(L):
                    pool.fetch_pages(lease, "indexer", layer, prefix_keys[layer, g])
                    if bulk:
                        pool.fetch_pages(lease, "latent", layer, full[layer, g])
            torch.cuda.synchronize()
            times["fetch_ms"] = (time.perf_counter() - t) * 1e3 - times["lookup_ms"]
            return leases, times

        def loop(bulk: bool, outputs: list) -> dict:
            """TTFT (admission + first step), then a.steps timed steps."""
            model.tail_rows.zero_(), model.tail_keys.zero_()
            torch.cuda.synchronize()
            t = time.perf_counter()
            leases, times = admit(bulk)
            fetcher = None
            if not bulk:
                t1 = time.perf_counter()
                fetcher = gpu.SparseDecodeFetcher(pool, leases, [model.tail_rows[r] for r in range(a.batch)], 2048,
                                                  hot_rows=a.hot_rows)
                torch.cuda.synchronize()
                times["fetcher_ms"] = (time.perf_counter() - t1) * 1e3
                fetch = lambda layer, topk: fetcher.fetch(layer, topk, out_rows)  # noqa: E731
            else:
                fetch = lambda layer, topk: bulk_rows(full, model, b, layer, topk)  # noqa: E731
            per_step = []
            for step in range(steps):
                model.append(step, step)
                if fetcher is not None:
                    fetcher.set_tail_tokens([step + 1] * a.batch)
                events = [[torch.cuda.Event(enable_timing=True) for _ in range(4)] for _ in range(L)]
                s0 = time.perf_counter()
                run_step(model, b, step, step + 1, prefix_keys, fetch, events, outputs)
                issue = time.perf_counter() - s0
                torch.cuda.synchronize()
                wall = time.perf_counter() - s0
                if step == 0:
                    times["ttft_ms"] = (time.perf_counter() - t) * 1e3
                    times["first_step_ms"] = wall * 1e3
                    continue
                ph = np.array([[e[0].elapsed_time(e[1]), e[1].elapsed_time(e[2]), e[2].elapsed_time(e[3])]
                               for e in events]).sum(0)
                per_step.append({"wall_ms": wall * 1e3, "issue_ms": issue * 1e3, "indexer_ms": ph[0],
                                 "fetch_ms": ph[1], "attention_ms": ph[2], "other_ms": wall * 1e3 - ph.sum()})
            if fetcher is not None:
                hits = [fetcher.hot_counts(r, layer) for r in (0, a.batch - 1) for layer in (0, L - 1)]
                times["hot_hit_fraction"] = sum(h for h, _ in hits) / max(1, sum(h + m for h, m in hits))
                fetcher.close()
            for lease in leases:
                lease.release()
            med = {k: float(np.median([s[k] for s in per_step])) for k in per_step[0]}
            return {**times, "steps": med, "per_step": per_step}

        out_cxl: list = []
        out_bulk: list = []
        warm = loop(False, [])  # first touch of the mapping and the allocator, both designs
        warm_bulk = loop(True, [])
        cxl = loop(False, out_cxl)
        bulk = loop(True, out_bulk)
        same = len(out_cxl) == len(out_bulk) and all(torch.equal(x, y) for x, y in zip(out_cxl, out_bulk))
        mism = sum(not torch.equal(x, y) for x, y in zip(out_cxl, out_bulk))
        print(f"dsa_decode: batch {a.batch} ({P} distinct prefixes) x {L} layers, prefix {a.tokens} tokens, top-k 2048, "
              f"hot buffer {a.hot_rows} rows, {a.steps} steps after the first")
        for name, r in (("cxl ", cxl), ("bulk", bulk)):
            s = r["steps"]
            print(f"  {name} step {s['wall_ms']:7.2f} ms: indexer {s['indexer_ms']:6.2f}  fetch {s['fetch_ms']:6.2f}  "
                  f"attention {s['attention_ms']:6.2f}  other (Python, launches) {s['other_ms']:5.2f} ms "
                  f"= {s['other_ms'] / s['wall_ms'] * 100:4.1f} %  (host issue {s['issue_ms']:.2f} ms)")
        print(f"  TTFT on a hit: cxl {cxl['ttft_ms']:.1f} ms (lookup {cxl['lookup_ms']:.1f}, indexer keys "
              f"{cxl['fetch_ms']:.1f}, fetcher {cxl['fetcher_ms']:.1f}, first step {cxl['first_step_ms']:.1f}); "
              f"bulk {bulk['ttft_ms']:.1f} ms (lookup {bulk['lookup_ms']:.1f}, whole prefix {bulk['fetch_ms']:.1f}, "
              f"first step {bulk['first_step_ms']:.1f}); bulk / cxl = {bulk['ttft_ms'] / cxl['ttft_ms']:.2f}x")
        print(f"  hot buffer hits (last step, sampled): {cxl['hot_hit_fraction']:.2f}")
        print(f"  attention outputs, {len(out_cxl)} (step, layer) tensors: "
              f"{'identical' if same else f'{mism} DIFFER'} between the two loops")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"batch": a.batch, "prefixes": P, "tokens": a.tokens, "layers": L, "hot_rows": a.hot_rows,
                           "steps": a.steps, "cxl": cxl, "bulk": bulk, "warm_up": {"cxl": warm, "bulk": warm_bulk},
                           "identical": same}, f, indent=1, default=float)
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
