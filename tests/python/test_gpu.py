"""Specification of cxlkv.gpu on torch CUDA tensors against a real daemon: the gather of a batch
of layers in one launch, whole-page fetches, split rows and the hot buffer, each equal byte for
byte to the CPU gather of the same lease; bad tensors raise cxlkv.InvalidArgument."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import cxlkv

if not torch.cuda.is_available():
    pytest.skip("no CUDA device here: the GPU path runs on a GPU machine", allow_module_level=True)

import cxlkv.gpu as gpu  # noqa: E402  (needs libcxlkv_gpu: only where CUDA is)

from conftest import TENANT, TOKEN, Daemon  # noqa: E402
from test_client import write_prefix  # noqa: E402

SPLIT = ("custom:name=pytest-split,layers=4,page_tokens=64,stream=latent/640/640/sparse,"
         "stream=latent_scales/16/16/bulk,stream=indexer/132/132/bulk")


def cuda(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def test_gather_of_a_batch_of_layers_equals_the_cpu_gather(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 8, 11)
    rng = np.random.default_rng(1)
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        table = pool.upload(lease, "latent")
        items, want = [], []
        for layer in range(client.layout.layers):
            idx = rng.choice(512, 300, replace=False).astype(np.int32)
            idx[::7] = -1
            out = torch.full((300, 656), 0x5A, dtype=torch.uint8, device="cuda")
            items.append(gpu.GatherItem(table, layer, cuda(idx), out))
            cpu = np.full((300, 656), 0x5A, dtype=np.uint8)
            lease.gather_topk("latent", layer, idx, out=cpu)
            want.append(cpu)
        pool.gather_topk(items)
        torch.cuda.synchronize()
        for item, cpu in zip(items, want):
            assert np.array_equal(item.out.cpu().numpy(), cpu)
        assert pool.bad_index_count() == 0
        assert pool.reused_count() == 0


def test_a_gpu_read_of_slabs_reused_under_its_lease_is_poisoned_and_counted() -> None:
    d = Daemon("gpu-reuse", extra=("--read-lease-ttl-ms", "300"))
    try:
        with cxlkv.Client(d.endpoint, TENANT, TOKEN, model="gpu-reuse") as c, gpu.GpuPool(c) as pool:
            keys, _ = write_prefix(c, 2, 81)
            lease = c.lookup(keys)
            table = pool.upload(lease, 0)
            idx = cuda(np.array([0, 100], dtype=np.int32))
            out = torch.zeros((2, 656), dtype=torch.uint8, device="cuda")
            deadline = time.monotonic() + 10
            while c.stats().read_leases and time.monotonic() < deadline:  # its TTL runs out
                time.sleep(0.05)
            assert c.remove(keys) == 2
            write_prefix(c, 3, 82)  # the freed slabs hold other pages now
            pool.gather_topk([gpu.GatherItem(table, 0, idx, out)])
            torch.cuda.synchronize()
            assert pool.reused_count() == 1
            assert torch.all(out == 0xFF)
            assert pool.reused_count() == 0  # read and cleared
            # Per step: the gather only queues its check; check_reads runs it.
            pool.set_reuse_check("per-step")
            out.zero_()
            pool.gather_topk([gpu.GatherItem(table, 0, idx, out)])
            torch.cuda.synchronize()
            assert pool.reused_count() == 0
            pool.check_reads()
            torch.cuda.synchronize()
            assert pool.reused_count() == 1
            assert torch.all(out == 0xFF)
            with pytest.raises(cxlkv.InvalidArgument, match="per-step"):
                pool.set_reuse_check("sometimes")
    finally:
        d.stop()


def test_indices_past_the_prefix_are_counted_and_never_read(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 2, 12)
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        table = pool.upload(lease, 0)
        out = torch.full((3, 656), 7, dtype=torch.uint8, device="cuda")
        pool.gather_topk([gpu.GatherItem(table, 0, cuda(np.array([1, 128, 5000], dtype=np.int32)), out)])
        torch.cuda.synchronize()
        assert pool.bad_index_count() == 2
        assert torch.all(out[1:] == 7)
        assert np.array_equal(out[0].cpu().numpy(), lease.gather_topk(0, 0, np.array([1], dtype=np.int32))[0])


def test_bad_tensors_raise_invalid_argument(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 1, 13)
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        table = pool.upload(lease, "latent")
        good_idx = cuda(np.array([0, 1], dtype=np.int32))
        good_out = torch.empty((2, 656), dtype=torch.uint8, device="cuda")
        cases = [
            (good_idx.cpu(), good_out, "CUDA"),
            (good_idx.long(), good_out, "int32"),
            (cuda(np.arange(4, dtype=np.int32))[::2], good_out, "contiguous"),
            (good_idx, torch.empty((2, 655), dtype=torch.uint8, device="cuda"), "bytes"),
            (good_idx, good_out.cpu(), "CUDA"),
            (np.array([0, 1], dtype=np.int32), good_out, "torch CUDA tensor"),
        ]
        for idx, out, message in cases:
            with pytest.raises(cxlkv.InvalidArgument, match=message):
                pool.gather_topk([gpu.GatherItem(table, 0, idx, out)])


def test_fetch_pages_into_gpu_memory_equals_the_cpu_fetch(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 5, 14)
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        out = torch.empty((3 * 64, 132), dtype=torch.uint8, device="cuda")
        pool.fetch_pages(lease, "indexer", 2, out, 1, 4)
        torch.cuda.synchronize()
        assert np.array_equal(out.cpu().numpy(), lease.fetch_pages("indexer", 2, 1, 4))


def test_split_rows_put_the_scales_back_at_byte_512() -> None:
    d = Daemon("split", layout=SPLIT)
    try:
        with cxlkv.Client(d.endpoint, TENANT, TOKEN, model="split") as c:
            keys, _ = write_prefix(c, 4, 15)
            with c.lookup(keys) as lease, gpu.GpuPool(c) as pool:
                layer = 2
                side = torch.empty((256, 16), dtype=torch.uint8, device="cuda")
                pool.fetch_pages(lease, "latent_scales", layer, side)
                idx = np.random.default_rng(2).choice(256, 64, replace=False).astype(np.int32)
                out = torch.empty((64, 656), dtype=torch.uint8, device="cuda")
                table = pool.upload(lease, "latent")
                pool.gather_topk([gpu.GatherItem(table, layer, cuda(idx), out, side)], splice=gpu.Splice(16, 512))
                torch.cuda.synchronize()
                latent = lease.gather_topk("latent", layer, idx)
                scales = lease.fetch_pages("latent_scales", layer)[idx]
                want = np.concatenate([latent[:, :512], scales, latent[:, 512:]], axis=1)
                assert np.array_equal(out.cpu().numpy(), want)
    finally:
        d.stop()


def test_hot_buffer_rows_are_the_entries_of_each_step(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 16, 16)
    rng = np.random.default_rng(3)
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        table = pool.upload(lease, "latent")
        buffer = pool.hot_buffer(table, 1, capacity_rows=512, max_k=128)
        idx = rng.choice(1024, 128, replace=False).astype(np.int32)
        for step in range(6):
            keep = idx[rng.random(128) < 0.8]
            fresh = np.setdiff1d(rng.choice(1024, 256, replace=False), keep)[: 128 - keep.size]
            idx = np.concatenate([keep, fresh]).astype(np.int32)
            pool.hot_step([(buffer, cuda(idx))], step)
            torch.cuda.synchronize()
            hits, misses = buffer.last_counts()
            assert hits + misses == 128 and (step == 0 or hits > 0)
            rows = buffer.rows().cpu().numpy()[buffer.row_of().cpu().numpy()]
            assert np.array_equal(rows, lease.gather_topk("latent", 1, idx))


def test_a_prepared_batch_gathers_every_item_each_step(client: cxlkv.Client) -> None:
    keys_a, _ = write_prefix(client, 4, 17)
    keys_b, _ = write_prefix(client, 6, 18)
    rng = np.random.default_rng(4)
    with client.lookup(keys_a) as a, client.lookup(keys_b) as b, gpu.GpuPool(client) as pool:
        tables = [pool.upload(a, "latent"), pool.upload(b, "latent")]
        items = [(t, lease, layer) for t, lease in zip(tables, (a, b)) for layer in range(4)]
        out = torch.empty((len(items), 64, 656), dtype=torch.uint8, device="cuda")
        batch = pool.batch([t for t, _, _ in items], [layer for _, _, layer in items], out)
        for step in range(3):
            host = np.stack([rng.choice(lease.prefix_tokens, 64, replace=False) for _, lease, _ in items]).astype(np.int32)
            batch.run(cuda(host))
            torch.cuda.synchronize()
            for i, (_, lease, layer) in enumerate(items):
                assert np.array_equal(out[i].cpu().numpy(), lease.gather_topk("latent", layer, host[i])), (step, i)
        with pytest.raises(cxlkv.InvalidArgument, match="int32"):
            batch.run(cuda(host.astype(np.int64)))
        with pytest.raises(cxlkv.InvalidArgument, match=r"\[8\]\[64\]"):
            batch.run(cuda(host[:, :32]))
        with pytest.raises(cxlkv.InvalidArgument, match="contiguous"):
            batch.run(cuda(np.concatenate([host, host], axis=1))[:, ::2])


def test_pages_written_from_cuda_tensors_read_back_the_same(client: cxlkv.Client) -> None:
    tokens = np.arange(64 * 2, dtype=np.int32) + 4242
    keys = client.page_keys(tokens)
    rng = np.random.default_rng(5)
    data = {s.name: rng.integers(0, 256, (2, client.layout.layers, 64, s.entry_bytes), dtype=np.uint8)
            for s in client.layout.streams}
    with client.reserve(keys) as lease:
        lease.write_pages("latent", torch.from_numpy(data["latent"]).cuda())
        for layer in range(client.layout.layers):
            for page in range(2):
                lease.write(page, "indexer", layer, torch.from_numpy(data["indexer"][page, layer]).cuda())
        assert lease.commit() == 2
    with client.lookup(keys) as read:
        idx = np.array([0, 70, 127], dtype=np.int32)
        assert np.array_equal(read.gather_topk("latent", 3, idx), data["latent"][idx // 64, 3, idx % 64])
        assert np.array_equal(read.fetch_pages("indexer", 1), data["indexer"][:, 1].reshape(-1, 132))


def sparse_batch(client: cxlkv.Client, pages: list[int], seed: int, tail_capacity: int):
    """Prefixes of the given page counts written to the pool, their leases, and random tails."""
    rng = np.random.default_rng(seed)
    prefixes = [write_prefix(client, n, seed * 10 + i)[0] for i, n in enumerate(pages)]
    leases = [client.lookup(keys) for keys in prefixes]
    tails = [cuda(rng.integers(0, 256, (client.layout.layers, tail_capacity, 656), dtype=np.uint8)) for _ in pages]
    return rng, leases, tails


def expected_sparse_rows(lease: cxlkv.ReadLease, tail: torch.Tensor, tail_tokens: int, layer: int, topk: np.ndarray,
                         fill: int) -> np.ndarray:
    """What the fetch hook must write: prefix rows as the CPU gather reads them, tail rows as given."""
    want = np.full((topk.size, 656), fill, dtype=np.uint8)
    prefix = (topk >= 0) & (topk < lease.prefix_tokens)
    want[prefix] = lease.gather_topk("latent", layer, topk[prefix].astype(np.int32))
    in_tail = (topk >= lease.prefix_tokens) & (topk < lease.prefix_tokens + tail_tokens)
    want[in_tail] = tail[layer].cpu().numpy()[topk[in_tail] - lease.prefix_tokens]
    return want


@pytest.mark.parametrize("hot_rows", [0, 256])
def test_sparse_fetch_fills_flashmla_rows_from_the_pool_and_the_tail(client: cxlkv.Client, hot_rows: int) -> None:
    rng, leases, tails = sparse_batch(client, [4, 2, 6], 21 + hot_rows, tail_capacity=40)
    k, requests = 64, 3
    with gpu.GpuPool(client) as pool, gpu.SparseDecodeFetcher(pool, leases, tails, k, hot_rows=hot_rows) as fetcher:
        assert fetcher.prefix_tokens == [256, 128, 384]
        out = torch.full((requests, k, 656), 0xEE, dtype=torch.uint8, device="cuda")
        previous = [None] * requests
        for step in range(4):
            tail_tokens = [5 + 8 * step, 3 + step, 0 if step < 2 else 30]
            fetcher.set_tail_tokens(tail_tokens)
            for layer in range(client.layout.layers):
                topk = np.empty((requests, k), dtype=np.int32)
                for r, lease in enumerate(leases):
                    seq = lease.prefix_tokens + tail_tokens[r]
                    keep = previous[r][:k // 2] if previous[r] is not None and layer == 0 else np.array([], np.int32)
                    fresh = np.setdiff1d(rng.choice(seq, k, replace=False), keep)[: k - keep.size]
                    topk[r] = np.concatenate([keep, fresh])
                    topk[r, rng.choice(k, 5, replace=False)] = -1
                    if layer == 0:
                        previous[r] = topk[r][topk[r] >= 0]
                out.fill_(0xEE)
                fetcher.fetch(layer, cuda(topk), out)
                torch.cuda.synchronize()
                got = out.cpu().numpy()
                for r, lease in enumerate(leases):
                    want = expected_sparse_rows(lease, tails[r], tail_tokens[r], layer, topk[r], 0xEE)
                    assert np.array_equal(got[r], want), (step, layer, r)
                if hot_rows:
                    hits, misses = fetcher.hot_counts(0, layer)
                    assert hits + misses == int(((topk[0] >= 0) & (topk[0] < 256)).sum())
        assert pool.bad_index_count() == 0
    for lease in leases:
        lease.release()


def test_sparse_fetch_refuses_bad_input_and_counts_positions_past_the_tail(client: cxlkv.Client) -> None:
    _, leases, tails = sparse_batch(client, [2, 2], 31, tail_capacity=8)
    with gpu.GpuPool(client) as pool:
        with pytest.raises(cxlkv.InvalidArgument, match="one each per request"):
            gpu.SparseDecodeFetcher(pool, leases, tails[:1], 16)
        with pytest.raises(cxlkv.InvalidArgument, match="656 B"):
            gpu.SparseDecodeFetcher(pool, leases, [t[:, :, :640].contiguous() for t in tails], 16)
        with pytest.raises(cxlkv.InvalidArgument, match="rows"):
            gpu.SparseDecodeFetcher(pool, leases, tails, 16, hot_rows=20)  # fewer than 2k rows
        fetcher = gpu.SparseDecodeFetcher(pool, leases, tails, 16)
        with pytest.raises(cxlkv.InvalidArgument, match="request 1: 9 tokens in a tail of 8 rows"):
            fetcher.set_tail_tokens([1, 9])
        with pytest.raises(cxlkv.InvalidArgument, match="2 requests"):
            fetcher.set_tail_tokens([1])
        fetcher.set_tail_tokens([2, 0])
        good = cuda(np.zeros((2, 16), dtype=np.int32))
        out = torch.full((2, 16, 656), 3, dtype=torch.uint8, device="cuda")
        for topk, message in [(good.long(), "int32"), (good[:, :8], r"\[2\]\[16\]"), (good.cpu(), "CUDA"),
                              (cuda(np.zeros((2, 32), np.int32))[:, ::2], "contiguous")]:
            with pytest.raises(cxlkv.InvalidArgument, match=message):
                fetcher.fetch(0, topk, out)
        with pytest.raises(cxlkv.InvalidArgument, match="layer 9 of 4"):
            fetcher.fetch(9, good, out)
        with pytest.raises(cxlkv.InvalidArgument, match="bytes"):
            fetcher.fetch(0, good, out[:1])
        # positions 128, 129 are request 0's tail; 130 and up, and all of request 1's past 127, are counted
        topk = np.full((2, 16), -1, dtype=np.int32)
        topk[0, :4] = [0, 128, 129, 130]
        topk[1, :3] = [127, 128, 100000]
        fetcher.fetch(0, cuda(topk), out)
        torch.cuda.synchronize()
        assert pool.bad_index_count() == 3
        got = out.cpu().numpy()
        assert np.array_equal(got[0, :4], expected_sparse_rows(leases[0], tails[0], 2, 0, topk[0, :4], 3))
        assert np.array_equal(got[1, :3], expected_sparse_rows(leases[1], tails[1], 0, 0, topk[1, :3], 3))
        assert (got[:, 4:] == 3).all()
        fetcher.close()
        with pytest.raises(cxlkv.Closed):
            fetcher.fetch(0, good, out)
    for lease in leases:
        lease.release()


def test_a_tail_page_committed_from_the_gpu_extends_the_cached_prefix(client: cxlkv.Client) -> None:
    layers = client.layout.layers
    rng = np.random.default_rng(41)
    tokens = np.arange(64 * 3, dtype=np.int32) + 31337
    keys = client.page_keys(tokens)
    with client.reserve(keys[:2]) as w:  # the prompt's two whole pages, written at prefill
        for s in client.layout.streams:
            w.write_pages(s.name, rng.integers(0, 256, (2, layers, 64, s.entry_bytes), dtype=np.uint8))
        assert w.commit() == 2
    # 64 tokens decoded since: their rows in the caller's HBM tensors, now a whole page
    tail_rows = cuda(rng.integers(0, 256, (layers, 80, 656), dtype=np.uint8))
    tail_keys = cuda(rng.integers(0, 256, (layers, 80, 132), dtype=np.uint8))
    with client.reserve(keys[2:], parent=keys[1]) as w:
        w.write_pages("latent", tail_rows[:, :64].unsqueeze(0).contiguous())
        w.write_pages("indexer", tail_keys[:, :64].unsqueeze(0).contiguous())
        assert w.commit() == 1
    with client.lookup(keys) as lease, gpu.GpuPool(client) as pool:
        assert lease.pages == 3
        later = torch.zeros((layers, 1, 656), dtype=torch.uint8, device="cuda")  # a later request, no tail yet
        with gpu.SparseDecodeFetcher(pool, [lease], [later], 64) as fetcher:
            topk = torch.arange(128, 192, dtype=torch.int32, device="cuda").view(1, 64)
            for layer in range(layers):
                out = fetcher.fetch(layer, topk)
                torch.cuda.synchronize()
                assert torch.equal(out[0], tail_rows[layer, :64]), layer
        assert np.array_equal(lease.fetch_pages("indexer", 2, 2, 3), tail_keys[2, :64].cpu().numpy())


def test_sglang_sparse_decode_hook_points_flashmla_at_pool_rows_and_at_the_engines_own_tokens(
        client: cxlkv.Client) -> None:
    from cxlkv.sglang_sparse import CxlkvSparseDecode
    layers, k, slots = client.layout.layers, 64, 4096
    rng = np.random.default_rng(51)
    keys_a, _ = write_prefix(client, 2, 52)
    keys_b, _ = write_prefix(client, 3, 53)
    kv = [torch.zeros((slots, 656), dtype=torch.uint8, device="cuda") for _ in range(layers)]
    context = 512
    req_to_token = cuda(rng.choice(np.arange(2 * k, slots), (4, context), replace=True).astype(np.int32))
    with client.lookup(keys_a) as a, client.lookup(keys_b) as b, gpu.GpuPool(client) as pool:
        hook = CxlkvSparseDecode(pool, kv, req_to_token, staging_slot=0, max_requests=2, top_k=k, hot_rows=256)
        hook.begin_batch([a, b])
        req_pool_indices = cuda(np.array([3, 1], dtype=np.int64))
        for layer in range(layers):
            topk = np.stack([rng.choice(context, k, replace=False) for _ in range(2)]).astype(np.int32)
            topk[:, :3] = -1
            locations = hook.swap_in_selected_pages(req_pool_indices, None, cuda(topk), layer).cpu().numpy()
            torch.cuda.synchronize()
            rows = kv[layer].cpu().numpy()
            for r, (lease, slot_row) in enumerate(((a, 3), (b, 1))):
                prefix = (topk[r] >= 0) & (topk[r] < lease.prefix_tokens)
                assert np.array_equal(rows[locations[r][prefix]], lease.gather_topk("latent", layer, topk[r][prefix]))
                tail = topk[r] >= lease.prefix_tokens
                assert np.array_equal(locations[r][tail], req_to_token[slot_row].cpu().numpy()[topk[r][tail]])
                assert (locations[r][topk[r] < 0] == -1).all()
        assert pool.bad_index_count() == 0
        hook.close()
        with pytest.raises(cxlkv.InvalidArgument, match="begin_batch"):
            hook.swap_in_selected_pages(req_pool_indices, None, cuda(topk), 0)
