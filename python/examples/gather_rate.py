#!/usr/bin/env python3
"""The GPU gather of a decode step from Python, timed: R requests' prefixes are written into a
running cxlkv-poold, looked up, and every step gathers the top-k entries of all their layers into
HBM in one launch (cxlkv.gpu GatherBatch) on torch's stream. Prints the rate beside a bulk
host-to-device copy of the same run, and the host time of the Python call beside the GPU time.

  gather_rate.py --endpoint unix:/tmp/pool.sock --tenant t --token s [--requests 16] [--tokens 32768]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import cxlkv
import cxlkv.gpu as gpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--tenant", default="")
    ap.add_argument("--token", default="")
    ap.add_argument("--model", default="gather-rate")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32768, help="prefix tokens per request")
    ap.add_argument("--topk", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--sets", type=int, default=4, help="index sets rotated between steps")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()

    with cxlkv.Client(a.endpoint, a.tenant, a.token, a.model) as c, gpu.GpuPool(c) as pool:
        layout = c.layout
        latent = layout.stream("latent")
        side = next((s for s in layout.streams if s.name == "latent_scales"), None)
        pages = a.tokens // layout.page_tokens
        rng = np.random.default_rng(1)
        blocks = {s.name: rng.integers(0, 256, (pages, layout.layers, layout.page_tokens, s.entry_bytes), dtype=np.uint8)
                  for s in layout.streams}
        leases = []
        t0 = time.perf_counter()
        for r in range(a.requests):
            keys = c.page_keys(np.arange(a.tokens, dtype=np.int32) + r * 10_000_000)
            with c.reserve(keys) as w:
                for name, block in blocks.items():
                    w.write_pages(name, block)
                w.commit()
            leases.append(c.lookup(keys))
            print(f"gather_rate: request {r + 1}/{a.requests} written and looked up "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        tables = [pool.upload(lease, "latent") for lease in leases]
        items = [(t, lease, l) for t, lease in zip(tables, leases) for l in range(layout.layers)]
        splice, sides = None, None
        if side is not None:  # split rows: each layer's scales fetched whole, put back at byte 512
            splice = gpu.Splice(side.entry_bytes, 512)
            scale = {}
            for lease in leases:
                for l in range(layout.layers):
                    t = torch.empty((lease.prefix_tokens, side.entry_bytes), dtype=torch.uint8, device="cuda")
                    scale[(id(lease), l)] = pool.fetch_pages(lease, side.name, l, t)
            sides = [scale[(id(lease), l)] for _, lease, l in items]
        row = latent.entry_bytes + (splice.side_bytes if splice else 0)
        out = torch.empty((len(items), a.topk, row), dtype=torch.uint8, device="cuda")
        batch = pool.batch([t for t, _, _ in items], [l for _, _, l in items], out, splice=splice, sides=sides)
        sets = [torch.stack([torch.randperm(a.tokens, device="cuda")[: a.topk] for _ in items]).to(torch.int32)
                for _ in range(a.sets)]

        # The ceiling: a bulk copy of 1 GiB from pinned host memory, in this run.
        host = torch.empty(1 << 30, dtype=torch.uint8).pin_memory()
        dev = torch.empty_like(host, device="cuda")
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        dev.copy_(host, non_blocking=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(5):
            dev.copy_(host, non_blocking=True)
        end.record()
        torch.cuda.synchronize()
        bulk_gbps = 5 * (1 << 30) / (start.elapsed_time(end) * 1e-3) / 1e9
        del host, dev

        for s in sets:  # warm-up: binds each set once
            batch.run(s)
        torch.cuda.synchronize()
        gpu_ms, call_us = [], []
        for i in range(a.steps):
            s = sets[i % a.sets]
            start.record()
            c0 = time.perf_counter()
            batch.run(s)
            call_us.append((time.perf_counter() - c0) * 1e6)
            end.record()
            torch.cuda.synchronize()
            gpu_ms.append(start.elapsed_time(end))
        step_ms = float(np.median(gpu_ms))
        bytes_read = len(items) * a.topk * latent.entry_bytes
        rate = bytes_read / (step_ms * 1e-3) / 1e9
        call = float(np.median(call_us))
        # Check the rows of the last step against the CPU gather of the same leases.
        last = sets[(a.steps - 1) % a.sets].cpu().numpy()
        for i in (0, len(items) - 1):
            _, lease, l = items[i]
            want = lease.gather_topk("latent", l, last[i])
            got = out[i].cpu().numpy()
            if splice:
                got = np.concatenate([got[:, :512], got[:, 512 + splice.side_bytes:]], axis=1)
            assert np.array_equal(got, want), f"item {i}: the GPU rows differ from the CPU gather"
        print(f"gather_rate: layout {layout.name}, {a.requests} requests x {layout.layers} layers, "
              f"{a.tokens} tokens each, top-k {a.topk}, one launch per step")
        print(f"  bulk host-to-device copy        {bulk_gbps:6.1f} GB/s")
        print(f"  decode step gather (Python)     {rate:6.1f} GB/s  {rate / bulk_gbps:.2f}x bulk  "
              f"{step_ms:.2f} ms/step (median of {a.steps})")
        print(f"  Python call (host time)         {call:6.1f} us = {call / (step_ms * 1e3) * 100:.2f} % of the step")
        print("  rows checked against the CPU gather: equal")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"layout": layout.name, "requests": a.requests, "layers": layout.layers, "tokens": a.tokens,
                           "topk": a.topk, "bulk_gbps": bulk_gbps, "gather_gbps": rate, "step_ms": step_ms,
                           "python_call_us": call, "gpu_ms": gpu_ms, "call_us": call_us}, f, indent=1)
        for lease in leases:
            lease.release()


if __name__ == "__main__":
    main()
