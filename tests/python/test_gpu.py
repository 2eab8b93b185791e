"""Specification of cxlkv.gpu on torch CUDA tensors against a real daemon: the gather of a batch
of layers in one launch, whole-page fetches, split rows and the hot buffer, each equal byte for
byte to the CPU gather of the same lease; bad tensors raise cxlkv.InvalidArgument."""

from __future__ import annotations

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
