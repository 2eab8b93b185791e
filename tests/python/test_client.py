"""Specification of the cxlkv package against a real daemon: layout, keys, the write path, the
read path into numpy and torch CPU, byte-exact; every bad input raises cxlkv.Error and changes
nothing; threads gathering at once; a worker killed with leases open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import cxlkv

from conftest import TENANT, TOKEN


def prefix_data(client: cxlkv.Client, pages: int, seed: int) -> dict[str, np.ndarray]:
    """Random bytes of every stream: [pages][layers][page_tokens][entry_bytes]."""
    rng = np.random.default_rng(seed)
    layout = client.layout
    return {s.name: rng.integers(0, 256, (pages, layout.layers, layout.page_tokens, s.entry_bytes), dtype=np.uint8)
            for s in layout.streams}


def write_prefix(client: cxlkv.Client, pages: int, seed: int) -> tuple[list[bytes], dict[str, np.ndarray]]:
    tokens = np.arange(seed * 100000, seed * 100000 + pages * client.layout.page_tokens, dtype=np.int32)
    keys = client.page_keys(tokens)
    data = prefix_data(client, pages, seed)
    with client.reserve(keys) as lease:
        for name, array in data.items():
            lease.write_pages(name, array)
        assert lease.commit() == pages
    return keys, data


def expected_rows(data: dict[str, np.ndarray], stream: str, layer: int, indices: np.ndarray, page_tokens: int) -> np.ndarray:
    d = data[stream]
    return np.stack([d[i // page_tokens, layer, i % page_tokens] for i in indices])


def test_layout_is_plain_attributes(client: cxlkv.Client) -> None:
    layout = client.layout
    assert layout.name == "pytest"
    assert (layout.page_tokens, layout.layers) == (64, 4)
    assert [(s.name, s.entry_bytes, s.entry_stride, s.sparse) for s in layout.streams] == [
        ("latent", 656, 656, True), ("indexer", 132, 132, False)]
    assert layout.stream("indexer").index == 1
    with pytest.raises(cxlkv.InvalidArgument, match="no stream 'values'"):
        layout.stream("values")


def test_page_keys_chain_and_accept_engine_hashes(client: cxlkv.Client) -> None:
    tokens = list(range(64 * 3 + 10))
    keys = client.page_keys(tokens)
    assert len(keys) == 3 and all(len(k) == 32 for k in keys)
    assert client.page_keys(tokens[64:128], parent=keys[0]) == [keys[1]]
    assert client.page_keys(tokens[64:128], parent=keys[0].hex()) == [keys[1]]  # a hex parent too
    assert cxlkv.key_bytes(keys[2].hex()) == keys[2]
    with pytest.raises(cxlkv.InvalidArgument, match="hex key has 64 characters"):
        cxlkv.key_bytes("abc")
    with pytest.raises(cxlkv.InvalidArgument, match="31 bytes"):
        cxlkv.key_bytes(b"x" * 31)


def test_engine_hex_keys_are_used_as_they_are(client: cxlkv.Client) -> None:
    hex_keys = [os.urandom(32).hex() for _ in range(2)]
    data = prefix_data(client, 2, 7)
    with client.reserve(hex_keys) as lease:
        for name, array in data.items():
            lease.write_pages(name, array)
        assert lease.commit() == 2
    with client.lookup([bytes.fromhex(k) for k in hex_keys]) as read:
        assert read.pages == 2


def test_numpy_gather_is_byte_exact(client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 6, 1)
    with client.lookup(keys) as lease:
        assert lease.pages == 6 and lease.prefix_tokens == 384
        rng = np.random.default_rng(3)
        for layer in range(client.layout.layers):
            idx = rng.choice(384, 100, replace=False).astype(np.int32)
            rows = lease.gather_topk("latent", layer, idx)
            assert rows.dtype == np.uint8 and rows.shape == (100, 656)
            assert np.array_equal(rows, expected_rows(data, "latent", layer, idx, 64))
        whole = lease.fetch_pages("indexer", 2, 1, 4)
        assert np.array_equal(whole, data["indexer"][1:4, 2].reshape(-1, 132))


def test_torch_cpu_gather_into_callers_tensor(client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 3, 2)
    with client.lookup(keys) as lease:
        idx = torch.tensor([5, -1, 191, 64], dtype=torch.int32)
        out = torch.full((4, 656), 0xAB, dtype=torch.uint8)
        result = lease.gather_topk(0, 1, idx, out=out)
        assert result is out  # written in place: zero-copy
        want = expected_rows(data, "latent", 1, np.array([5, 0, 191, 64]), 64)
        assert np.array_equal(out[0].numpy(), want[0])
        assert torch.all(out[1] == 0xAB)  # -1: the row is untouched
        assert np.array_equal(out[2:].numpy(), want[2:])
        fresh = lease.gather_topk("latent", 3, torch.tensor([7], dtype=torch.int32))
        assert isinstance(fresh, torch.Tensor) and fresh.shape == (1, 656)


def test_block_table_names_each_page(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 4, 3)
    with client.lookup(keys) as lease:
        table = lease.block_table()
        assert table.shape == (4, 4)
        assert len(set(table[:, 0].tolist())) == 4  # E = 1: a slab per page
        assert (table[:, 1] == 0).all()


def test_bad_inputs_raise_and_change_nothing(client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 2, 4)
    with client.lookup(keys) as lease:
        out = np.full((3, 656), 7, dtype=np.uint8)
        cases = [
            (np.array([1, 2, 128], dtype=np.int32), out, "past the prefix|out of range|128"),
            (np.array([1, -2, 3], dtype=np.int32), out, "-2"),
            (np.array([1, 2, 3], dtype=np.int64), out, "int32"),
            (np.array([[1, 2, 3]], dtype=np.int32), out, "1-D"),
            (np.array([1, 2, 3, 4, 5, 6], dtype=np.int32)[::2], out, "contiguous"),
            (np.array([1, 2, 3], dtype=np.int32), np.zeros((3, 655), dtype=np.uint8), "bytes"),
            (np.array([1, 2, 3], dtype=np.int32), np.zeros((6, 656), dtype=np.uint8)[::2], "contiguous"),
            ([1, 2, 3], out, "numpy array or torch tensor"),
            (torch.tensor([1, 2, 3], dtype=torch.float32), out, "int32"),
        ]
        for indices, dst, message in cases:
            before = dst.copy()
            with pytest.raises(cxlkv.InvalidArgument, match=message):
                lease.gather_topk("latent", 0, indices, out=dst)
            assert np.array_equal(dst, before)
        with pytest.raises(cxlkv.InvalidArgument):
            lease.gather_topk("latent", 9, np.array([1], dtype=np.int32))  # no layer 9
        with pytest.raises(cxlkv.InvalidArgument, match="no stream"):
            lease.gather_topk("values", 0, np.array([1], dtype=np.int32))
        read_only = np.zeros((1, 656), dtype=np.uint8)
        read_only.flags.writeable = False
        with pytest.raises(cxlkv.InvalidArgument, match="read-only"):
            lease.gather_topk("latent", 0, np.array([1], dtype=np.int32), out=read_only)
        with pytest.raises(cxlkv.InvalidArgument, match="outside"):
            lease.fetch_pages("indexer", 0, 0, 3)
    # released: reads raise, they never touch the pages
    with pytest.raises(cxlkv.Closed, match="released"):
        lease.gather_topk("latent", 0, np.array([1], dtype=np.int32))
    with pytest.raises(cxlkv.Closed):
        lease.renew()
    # and the daemon keeps serving: the prefix is still there, intact
    with client.lookup(keys) as again:
        row = again.gather_topk("latent", 0, np.array([65], dtype=np.int32))
        assert np.array_equal(row[0], data["latent"][1, 0, 1])


def test_write_path_refuses_bad_data_and_aborts_on_error(client: cxlkv.Client) -> None:
    keys = client.page_keys(np.arange(64 * 2, dtype=np.int32) + 777)
    with pytest.raises(RuntimeError, match="engine failed"):
        with client.reserve(keys) as lease:
            with pytest.raises(cxlkv.InvalidArgument, match="bytes"):
                lease.write(0, "latent", 0, np.zeros(100, dtype=np.uint8))
            lease.write(0, "latent", 0, np.zeros((64, 656), dtype=np.uint8))
            with pytest.raises(cxlkv.AlreadyExists):
                lease.write(0, "latent", 0, np.zeros((64, 656), dtype=np.uint8))
            raise RuntimeError("engine failed")
    with pytest.raises(cxlkv.Closed):
        lease.commit()
    with client.lookup(keys) as read:
        assert read.pages == 0  # nothing was published
    with client.reserve(keys) as lease:  # the slots came back: the same keys reserve again
        assert lease.pages == 2 and lease.writable(0)
        with pytest.raises(cxlkv.Error):
            lease.commit()  # runs missing: refused, and named by the library


def test_closed_client_raises(daemon) -> None:
    c = cxlkv.Client(daemon.endpoint, TENANT, TOKEN, model="closed")
    c.close()
    with pytest.raises(cxlkv.Closed, match="closed"):
        c.lookup([b"k" * 32])
    c.close()  # twice is fine


def test_wrong_token_is_refused(daemon) -> None:
    with pytest.raises(cxlkv.PermissionDenied):
        cxlkv.Client(daemon.endpoint, TENANT, "wrong", model="m")


def test_remove_and_stats(client: cxlkv.Client) -> None:
    keys, _ = write_prefix(client, 2, 5)
    assert client.stats().pages_committed >= 2
    assert client.remove(keys) == 2
    with client.lookup(keys) as read:
        assert read.pages == 0


def test_threads_gather_at_once(client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 8, 6)
    failures: list[str] = []
    with client.lookup(keys) as lease:
        def worker(seed: int) -> None:
            rng = np.random.default_rng(seed)
            out = np.empty((256, 656), dtype=np.uint8)
            for _ in range(50):
                layer = int(rng.integers(0, 4))
                idx = rng.choice(512, 256, replace=False).astype(np.int32)
                lease.gather_topk("latent", layer, idx, out=out)
                if not np.array_equal(out, expected_rows(data, "latent", layer, idx, 64)):
                    failures.append(f"thread {seed}")
                    return
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_worker_killed_with_leases_open(daemon, client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 2, 8)
    script = (
        "import sys, time, cxlkv\n"
        f"c = cxlkv.Client({daemon.endpoint!r}, {TENANT!r}, {TOKEN!r}, model={client.model!r})\n"
        f"r = c.lookup([bytes.fromhex(k) for k in {[k.hex() for k in keys]!r}])\n"
        "w = c.reserve([bytes([9]) * 32])\n"
        "print(r.pages, flush=True)\n"
        "time.sleep(60)\n")
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert worker.stdout.readline().strip() == "2"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # the daemon serves on; the pages are intact, and the killed worker's reserve is gone with it
    with client.lookup(keys) as lease:
        rows = lease.gather_topk("latent", 0, np.array([0, 127], dtype=np.int32))
        assert np.array_equal(rows, expected_rows(data, "latent", 0, np.array([0, 127]), 64))
    deadline = time.monotonic() + 15  # the daemon's write-lease TTL here is 2 s
    while client.stats().write_leases and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.stats().write_leases == 0


def test_help_documents_the_api() -> None:
    doc = cxlkv.Client.__doc__ or ""
    assert "context manager" in doc
    for method in ("page_keys", "reserve", "lookup", "remove", "stats"):
        assert getattr(cxlkv.Client, method).__doc__
    assert "HOT" in (cxlkv.ReadLease.gather_topk.__doc__ or "")


def test_a_lease_whose_slabs_were_freed_raises_expired_instead_of_returning_their_bytes() -> None:
    from conftest import Daemon
    d = Daemon("reuse", extra=("--read-lease-ttl-ms", "300"))
    try:
        with cxlkv.Client(d.endpoint, TENANT, TOKEN, model="reuse") as c:
            keys, data = write_prefix(c, 2, 61)
            lease = c.lookup(keys)
            idx = np.array([0, 100], dtype=np.int32)
            assert np.array_equal(lease.gather_topk("latent", 0, idx), expected_rows(data, "latent", 0, idx, 64))
            lease.check_reuse()  # nothing freed yet
            deadline = time.monotonic() + 10
            while c.stats().read_leases and time.monotonic() < deadline:  # its TTL runs out
                time.sleep(0.05)
            assert c.remove(keys) == 2
            write_prefix(c, 3, 62)  # the freed slabs hold other pages now
            with pytest.raises(cxlkv.Expired, match="freed or reused"):
                lease.gather_topk("latent", 0, idx)
            with pytest.raises(cxlkv.Expired):
                lease.fetch_pages("indexer", 1)
            with pytest.raises(cxlkv.Expired):
                lease.check_reuse()
    finally:
        d.stop()


def test_a_read_only_client_reads_and_may_not_write(daemon, client: cxlkv.Client) -> None:
    keys, data = write_prefix(client, 2, 71)
    with cxlkv.Client(daemon.endpoint, TENANT, TOKEN, model=client.model, read_only=True) as reader:
        with reader.lookup(keys) as lease:
            idx = np.array([3, 70], dtype=np.int32)
            assert np.array_equal(lease.gather_topk("latent", 2, idx), expected_rows(data, "latent", 2, idx, 64))
        with pytest.raises(cxlkv.PermissionDenied, match="is a reader"):
            reader.reserve(reader.page_keys(np.arange(64, dtype=np.int32) + 999))
        with pytest.raises(cxlkv.PermissionDenied):
            reader.remove(keys)
    with client.lookup(keys) as lease:
        assert lease.pages == 2


def test_a_client_over_tls_checks_the_daemons_certificate() -> None:
    import socket
    from pathlib import Path
    from conftest import Daemon
    tls = Path(__file__).resolve().parents[2] / "testkit" / "tls"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    d = Daemon("tls", extra=("--tcp", f"127.0.0.1:{port}", "--tls-certificate", str(tls / "server.pem"),
                             "--tls-private-key", str(tls / "server.key")))
    try:
        with cxlkv.Client(d.endpoint, TENANT, TOKEN, model="tls") as local:
            keys, data = write_prefix(local, 2, 81)
        with cxlkv.Client(f"tls:127.0.0.1:{port}", TENANT, TOKEN, model="tls", tls_ca_file=str(tls / "ca.pem"),
                          io_timeout_ms=3000) as remote:
            with remote.lookup(keys) as lease:
                idx = np.array([1, 127], dtype=np.int32)
                assert np.array_equal(lease.gather_topk("latent", 3, idx), expected_rows(data, "latent", 3, idx, 64))
        with pytest.raises(cxlkv.PermissionDenied, match="not trusted"):
            cxlkv.Client(f"tls:127.0.0.1:{port}", TENANT, TOKEN, model="tls", tls_ca_file=str(tls / "other-ca.pem"),
                         io_timeout_ms=3000)
        with pytest.raises(cxlkv.Error):
            cxlkv.Client(f"tcp:127.0.0.1:{port}", TENANT, TOKEN, model="tls", io_timeout_ms=3000)
    finally:
        d.stop()
