"""The package over a cluster: cxlkv.Client("etcd://...") against a real etcd and two real
cxlkv-poold nodes. The same calls as over one daemon: a prefix written from numpy spreads over
the nodes in chunks and comes back byte-exact through one lease that spans them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64encode
from typing import Iterator

import numpy as np
import pytest

import cxlkv

from conftest import TENANT, TOKEN, Daemon
from test_client import expected_rows, write_prefix


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cxlkv-pytest-etcd-")
        self.port, peer = free_port(), free_port()
        client, peer_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{peer}"
        self.process = subprocess.Popen(
            [os.environ.get("CXLKV_ETCD", "etcd"), "--name", "t", "--data-dir", f"{self.dir}/data",
             "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer_url,
             "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"t={peer_url}",
             "--log-outputs", f"{self.dir}/etcd.log", "--logger", "zap"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.nodes_ready(0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd did not start (log: {self.dir}/etcd.log)")
            time.sleep(0.05)

    def nodes_ready(self, n: int, cluster: str = "py") -> bool:
        """True once n node records are registered (etcd's JSON gateway, a prefix range)."""
        prefix = f"/cxlkv/{cluster}/nodes/".encode()
        body = json.dumps({"key": b64encode(prefix).decode(), "range_end": b64encode(prefix[:-1] + b"0").decode()})
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v3/kv/range", body.encode(), timeout=1) as r:
                return int(json.load(r).get("count", 0)) == n
        except OSError:
            return False

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    etcd = Etcd()
    url = f"etcd://127.0.0.1:{etcd.port}/py"
    nodes = [Daemon(f"node{i}", extra=("--cluster", url, "--node-id", f"py-{i}", "--chunk-pages", "2"))
             for i in range(2)]
    deadline = time.monotonic() + 10
    while not etcd.nodes_ready(2):
        assert time.monotonic() < deadline, "the nodes did not register in etcd"
        time.sleep(0.05)
    yield url
    for n in nodes:
        n.stop()
    etcd.stop()


def test_a_prefix_over_two_nodes_is_read_back_byte_exact(cluster: str) -> None:
    with cxlkv.Client(cluster, TENANT, TOKEN, model="cluster") as client:
        # 6 chunks of 2 pages; keys and node ids are deterministic, and this prefix's chunks land on
        # both nodes (1 in 32 prefixes would land on one: seed 5 does).
        keys, data = write_prefix(client, 12, 8)
        with client.lookup(keys) as lease:
            assert lease.pages == 12 and lease.nodes == 2
            with pytest.raises(cxlkv.InvalidArgument, match="spans 2 memory nodes"):
                lease.block_table()
            rng = np.random.default_rng(9)
            for layer in range(client.layout.layers):
                idx = rng.choice(12 * 64, 200, replace=False).astype(np.int32)
                rows = lease.gather_topk("latent", layer, idx)
                assert np.array_equal(rows, expected_rows(data, "latent", layer, idx, 64))
                whole = lease.fetch_pages("indexer", layer, 0, 12)
                assert np.array_equal(whole, data["indexer"][:, layer].reshape(-1, 132))
        stats = client.stats()
        assert stats.pages_committed == 12  # the nodes' counts added up


def test_a_cluster_with_no_registered_node_is_a_clear_error() -> None:
    etcd = Etcd()
    try:
        # The settings exist (as after a node left) but no node is registered now.
        body = json.dumps({"key": b64encode(b"/cxlkv/empty/settings").decode(),
                           "value": b64encode(b'{"version":1,"chunk_pages":16}').decode()})
        urllib.request.urlopen(f"http://127.0.0.1:{etcd.port}/v3/kv/put", body.encode(), timeout=2).read()
        with pytest.raises(cxlkv.Error, match="no memory node is registered"):
            cxlkv.Client(f"etcd://127.0.0.1:{etcd.port}/empty", TENANT, TOKEN, model="m")
        with pytest.raises(cxlkv.Error, match="no node has joined it yet"):
            cxlkv.Client(f"etcd://127.0.0.1:{etcd.port}/nobody", TENANT, TOKEN, model="m")
    finally:
        etcd.stop()


def test_route_says_how_much_of_a_prompt_the_nodes_hold_and_ranks_workers(cluster: str) -> None:
    with cxlkv.Client(cluster, TENANT, TOKEN, model="routed") as client:
        seed, pages = 11, 10
        tokens = np.arange(seed * 100000, seed * 100000 + pages * 64, dtype=np.int32)
        assert cxlkv.prompt_keys(tokens, TENANT, "routed") == client.page_keys(tokens)
        assert cxlkv.namespace_id(TENANT, "routed") != cxlkv.namespace_id(TENANT, "other")
        keys, _ = write_prefix(client, pages, seed)
    workers = {"w0": {"py-0": 1.0}, "w1": {"py-1": 1.0, "py-0": 0.25}, "idle": {}}
    deadline = time.monotonic() + 15  # the daemons publish every 2 s
    answer = cxlkv.route(tokens, workers, cluster=cluster, tenant=TENANT, model="routed")
    while answer.cached_pages < pages:
        assert time.monotonic() < deadline, f"the directory never showed the prefix: {answer}"
        time.sleep(0.2)
        answer = cxlkv.route(tokens, workers, cluster=cluster, tenant=TENANT, model="routed")
    assert answer.prefix_pages == pages and answer.cached_pages == pages
    assert sum(answer.nodes.values()) == pages and set(answer.nodes) <= {"py-0", "py-1"}
    on = {n: answer.nodes.get(n, 0) for n in ("py-0", "py-1")}
    scores = {w.name: w.score for w in answer.workers}
    assert scores == pytest.approx({"w0": on["py-0"], "w1": on["py-1"] + 0.25 * on["py-0"], "idle": 0.0})
    assert [w.score for w in answer.workers] == sorted(scores.values(), reverse=True)
    assert answer.best == answer.workers[0].name and answer.workers[-1].name == "idle"
    # The same by keys (an engine's own hashes, as hex), and a longer prompt: the cached part only.
    by_keys = cxlkv.route(keys=[k.hex() for k in keys], cluster=cluster, tenant=TENANT, model="routed")
    assert by_keys.cached_pages == pages and by_keys.workers == [] and by_keys.best is None
    longer = np.concatenate([tokens, np.arange(7, 7 + 40 * 64, dtype=np.int32)])
    assert pages <= cxlkv.route(longer, cluster=cluster, tenant=TENANT, model="routed").cached_pages < pages + 40
    assert cxlkv.route(tokens, cluster=cluster, tenant=TENANT, model="elsewhere").cached_pages == 0

    # A Router keeps the summaries it read: the same answers, one etcd read per namespace while fresh.
    with cxlkv.Router(cluster, max_age_ms=600_000) as router:
        for _ in range(10):
            kept = router.route(tokens, workers, tenant=TENANT, model="routed")
            assert (kept.cached_pages, kept.nodes, kept.workers) == (pages, answer.nodes, answer.workers)
        assert router.route(tokens, tenant=TENANT, model="elsewhere").cached_pages == 0
        assert router.directory_reads == 2  # "routed" once, "elsewhere" once
    with pytest.raises(cxlkv.Closed):
        router.route(tokens, tenant=TENANT, model="routed")
    with pytest.raises(cxlkv.InvalidArgument):
        cxlkv.Router(cluster, max_age_ms=-1)

    # The command line ($CXLKV_ROUTE, set by meson test) says the same.
    tool = os.environ["CXLKV_ROUTE"]
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/workers.toml", "w") as f:
            f.write('[workers.w0]\n"py-0" = 1.0\n[workers.w1]\n"py-1" = 1.0\n"py-0" = 0.25\n[workers.idle]\n')
        with open(f"{d}/tokens", "w") as f:
            f.write(",".join(str(t) for t in tokens))
        out = subprocess.run([tool, "--cluster", cluster, "--tenant", TENANT, "--model", "routed", "--tokens",
                              f"{d}/tokens", "--workers", f"{d}/workers.toml", "--json"],
                             capture_output=True, text=True, check=True).stdout
        j = json.loads(out)
        assert (j["cached_pages"], j["nodes"]) == (pages, answer.nodes)
        assert [w["name"] for w in j["workers"]] == [w.name for w in answer.workers]
        text = subprocess.run([tool, "--cluster", cluster, "--tenant", TENANT, "--model", "routed", "--tokens", "-",
                               "--workers", f"{d}/workers.toml"], input=" ".join(str(t) for t in tokens),
                              capture_output=True, text=True, check=True).stdout
        assert f"cached: {pages} pages (100 %)" in text and f"workers, best first:\n  {answer.best}:" in text
        bad = subprocess.run([tool, "--cluster", cluster, "--tenant", TENANT, "--model", "routed", "--tokens",
                              f"{d}/workers.toml"], capture_output=True, text=True)
        assert bad.returncode == 2 and "is not a token id" in bad.stderr


def test_route_refuses_bad_input_with_clear_errors(cluster: str) -> None:
    with pytest.raises(cxlkv.InvalidArgument, match="tokens or as keys="):
        cxlkv.route(cluster=cluster)
    for weight in (-1.0, float("nan"), float("inf")):
        with pytest.raises(cxlkv.InvalidArgument, match="must be a finite number >= 0"):
            cxlkv.route([1] * 64, {"w": {"py-0": weight}}, cluster=cluster)
    with pytest.raises(cxlkv.InvalidArgument, match="etcd"):
        cxlkv.route([1] * 64, cluster="unix:/tmp/nowhere.sock")
    with pytest.raises(cxlkv.InvalidArgument, match="page key"):
        cxlkv.route(keys=["xyz"], cluster=cluster)
    with pytest.raises(cxlkv.Unavailable):
        cxlkv.route([1] * 64, cluster=f"etcd://127.0.0.1:{free_port()}/py", timeout_ms=300)
