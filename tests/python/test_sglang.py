"""Specification of cxlkv.sglang, SGLang's HiCache L3 storage backend, against a real daemon. The
backend is driven by the engine's own call sequence, as HiCacheController and
HybridCacheController make it at sgl-project/sglang d315eb725044e435b146c85488b7c6d9222f7fec:
attach, a prefill backup (INDEXER by batch_set_v2, then KV by batch_set_v1), a prefix hit query
(batch_exists_v2), the prefetch (batch_get_v1, then batch_get_v2) byte-exact into the host pools;
removed pages, two TP ranks, refused configurations, the generic flat-page path, the three
engine threads at once, and the interface's signatures. The SGLang modules are the stand-ins in
standins/ (written from upstream's signatures)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import queue
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "standins"))

from sglang.srt.mem_cache.hicache_storage import (HiCacheStorage, HiCacheStorageConfig,  # noqa: E402
                                                  HiCacheStorageExtraInfo, PoolHitPolicy, PoolName, PoolTransfer)
from sglang.srt.mem_cache.memory_pool import DSATokenToKVPool, MLATokenToKVPool  # noqa: E402
from sglang.srt.mem_cache.memory_pool_host import HostPoolGroup, PoolEntry  # noqa: E402
from sglang.srt.mem_cache.pool_host import DSAIndexerPoolHost, MLATokenToKVPoolHost  # noqa: E402
from sglang.srt.mem_cache.storage.backend_factory import StorageBackendFactory  # noqa: E402
from sglang.srt.mem_cache.utils import get_hash_str  # noqa: E402
from sglang.srt.observability.metrics_collector import StorageMetrics  # noqa: E402

import cxlkv  # noqa: E402
from cxlkv.sglang import CxlkvStorage  # noqa: E402

from conftest import TENANT, TOKEN, Daemon  # noqa: E402

PAGE = 64
LAYERS = 4
LATENT, INDEXER = 656, 132  # bytes per token and layer in conftest's LAYOUT
LAYOUTS = ("layer_first", "page_first", "page_first_direct")
STORAGE_BATCH_SIZE = 128  # the controller's pages per batched call

CLI_EXTRA_CONFIG = ('{"backend_name": "cxlkv", "module_path": "cxlkv.sglang", "class_name": "CxlkvStorage", '
                    '"interface_v1": 1, "endpoint": "%s", "tenant": "%s", "token": "%s"}')


# ---- the engine side ------------------------------------------------------------------------

def storage_config(daemon: Daemon, model: str, *, tp_rank: int = 0, tp_size: int = 1, interface_v1: int = 1,
                   extra: Optional[dict] = None, **fields: Any) -> HiCacheStorageConfig:
    """What cache_controller._generate_storage_config builds for a DSA model (is_mla_model True)."""
    if extra is None:
        extra = json.loads(CLI_EXTRA_CONFIG % (daemon.endpoint, TENANT, TOKEN))
        extra["interface_v1"] = interface_v1
    config = HiCacheStorageConfig(tp_rank=tp_rank, tp_size=tp_size, pp_rank=0, pp_size=1, attn_cp_rank=0,
                                  attn_cp_size=1, is_mla_model=True, enable_storage_metrics=False,
                                  is_page_first_layout=False, model_name=model, extra_config=extra)
    return dataclasses.replace(config, **fields)


def dsa_host_pools(layout: str, *, pages: int = 24, page_size: int = PAGE, layers: int = LAYERS,
                   kv_cache_dim: int = LATENT, index_head_dim: int = 128) -> HostPoolGroup:
    """DeepSeek-V3.2's host stack: the MLA KV anchor (override_kv_cache_dim = the DSA pool's 656)
    and the DSA indexer pool on the same slots, as build_anchor_sidecar_stack groups them."""
    device = DSATokenToKVPool(pages * page_size, page_size, layers, kv_cache_dim, index_head_dim)
    kv = MLATokenToKVPoolHost(device, 1.0, 0, page_size, layout, pin_memory=False,
                              override_kv_cache_dim=device.kv_cache_dim)
    indexer = DSAIndexerPoolHost(device, kv, layout, pin_memory=False)
    return HostPoolGroup([PoolEntry(PoolName.KV, kv, device, lambda layer: layer, is_primary_index_anchor=True),
                          PoolEntry(PoolName.INDEXER, indexer, device, lambda layer: layer)])


def leading(results: list[bool]) -> int:
    return next((i for i, ok in enumerate(results) if not ok), len(results))


class Engine:
    """One TP rank's storage path, making the calls HiCacheController / HybridCacheController make."""

    def __init__(self, config: HiCacheStorageConfig, host: HostPoolGroup) -> None:
        # attach_storage_backend: the factory, the KV pool (the group), then every pool entry by name
        self.backend = StorageBackendFactory.create_backend("dynamic", config, host)
        self.backend.register_mem_pool_host(host)
        for entry in host.entries:
            self.backend.register_mem_host_pool_v2(entry.host_pool, entry.name)
        self.host = host
        self.page_size = host.page_size
        self.backup_skip = config.is_mla_model and config.tp_rank != 0
        self.zero_copy = bool(config.extra_config.get("interface_v1", 0))

    def indexer_transfer(self, keys: Optional[list[str]] = None,
                         host_indices: Optional[torch.Tensor] = None) -> PoolTransfer:
        return PoolTransfer(name=PoolName.INDEXER, host_indices=host_indices, keys=keys,
                            hit_policy=PoolHitPolicy.ALL_PAGES, indices_from_pool=PoolName.KV)

    def query(self, tokens: list[int], prior_hash: Optional[str] = None) -> tuple[list[str], int]:
        """_storage_hit_query: (every page key, pages hit) by batch_exists_v2 over all pages."""
        keys = get_hash_str(tokens, prior_hash, page_size=self.page_size)
        result = self.backend.batch_exists_v2(keys, [self.indexer_transfer()], HiCacheStorageExtraInfo())
        return keys, result.kv_hit_pages

    def backup(self, keys: list[str], host_indices: torch.Tensor, prefix_keys: Optional[list[str]] = None) -> int:
        """_page_backup: INDEXER for the whole operation, then KV in batches; tokens backed up."""
        if self.backup_skip:  # should_backup(INDEXER) is False too on an MLA rank other than 0
            return 0
        results = self.backend.batch_set_v2([self.indexer_transfer(keys, host_indices)])
        assert isinstance(results[PoolName.INDEXER], list)
        completed = 0
        prefix = list(prefix_keys) if prefix_keys else None
        for i in range(0, len(keys), STORAGE_BATCH_SIZE):
            batch = keys[i:i + STORAGE_BATCH_SIZE]
            indices = host_indices[i * self.page_size:(i + len(batch)) * self.page_size]
            if self.zero_copy:
                ok = all(self.backend.batch_set_v1(batch, indices, HiCacheStorageExtraInfo(prefix_keys=prefix)))
            else:
                pages = [self.host.get_data_page(indices[j * self.page_size]) for j in range(len(batch))]
                ok = self.backend.batch_set(batch, pages)
            if not ok:
                break
            if prefix:
                prefix += batch
            completed += len(batch) * self.page_size
        return completed

    def prefetch(self, keys: list[str], host_indices: torch.Tensor) -> int:
        """_page_transfer: KV in batches up to the first failure, then INDEXER only when every KV
        page came; the usable pages (the tree clamps to the smaller)."""
        pages = 0
        for i in range(0, len(keys), STORAGE_BATCH_SIZE):
            batch = keys[i:i + STORAGE_BATCH_SIZE]
            indices = host_indices[i * self.page_size:(i + len(batch)) * self.page_size]
            if self.zero_copy:
                results = self.backend.batch_get_v1(batch, indices, HiCacheStorageExtraInfo())
                assert isinstance(results, list) and len(results) == len(batch)
                got = leading(results)
            else:
                flat = self.backend.batch_get(batch, [self.host.get_dummy_flat_data_page() for _ in batch])
                got = next((j for j, page in enumerate(flat) if page is None), len(batch))
                for j in range(got):
                    self.host.set_from_flat_data_page(indices[j * self.page_size], flat[j])
            pages += got
            if got < len(batch):
                return pages
        results = self.backend.batch_get_v2([self.indexer_transfer(keys, host_indices)])
        return min(pages, leading(results[PoolName.INDEXER]))


# ---- page contents in the host pools ------------------------------------------------------

def request_tokens(seed: int, pages: int, tail: int = 0) -> list[int]:
    return [seed * 1_000_000 + t for t in range(pages * PAGE + tail)]


def page_contents(pages: int, seed: int) -> dict[str, torch.Tensor]:
    """Random bytes per page: latent [page][layer][token][656], indexer [page][layer][64 x 132]."""
    g = torch.Generator().manual_seed(seed)
    return {"latent": torch.randint(0, 256, (pages, LAYERS, PAGE, LATENT), generator=g, dtype=torch.uint8),
            "indexer": torch.randint(0, 256, (pages, LAYERS, PAGE * INDEXER), generator=g, dtype=torch.uint8)}


def page_starts(host_indices: torch.Tensor) -> list[int]:
    return host_indices[::PAGE].tolist()


def put_pages(host: HostPoolGroup, host_indices: torch.Tensor, contents: dict[str, torch.Tensor]) -> None:
    """What the device-to-host backup leaves in the host pools, written by each pool's shape."""
    kv, ix = host.get_pool(PoolName.KV), host.get_pool(PoolName.INDEXER)
    for j, slot in enumerate(page_starts(host_indices)):
        latent, indexer, page = contents["latent"][j], contents["indexer"][j], slot // PAGE
        if kv.layout == "layer_first":
            kv.kv_buffer[:, slot:slot + PAGE, 0, :] = latent
        elif kv.layout == "page_first":
            kv.kv_buffer[slot:slot + PAGE, :, 0, :] = latent.transpose(0, 1)
        else:
            kv.kv_buffer[page, :, :, 0, :] = latent
        if ix.layout == "layer_first":
            ix.index_k_with_scale_buffer[:, page, :] = indexer
        else:
            ix.index_k_with_scale_buffer[page, :, 0, :] = indexer


def take_pages(host: HostPoolGroup, host_indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """The host pools' bytes at host_indices, in page_contents' shape."""
    kv, ix = host.get_pool(PoolName.KV), host.get_pool(PoolName.INDEXER)
    latent, indexer = [], []
    for slot in page_starts(host_indices):
        page = slot // PAGE
        if kv.layout == "layer_first":
            latent.append(kv.kv_buffer[:, slot:slot + PAGE, 0, :].clone())
        elif kv.layout == "page_first":
            latent.append(kv.kv_buffer[slot:slot + PAGE, :, 0, :].transpose(0, 1).clone())
        else:
            latent.append(kv.kv_buffer[page, :, :, 0, :].clone())
        if ix.layout == "layer_first":
            indexer.append(ix.index_k_with_scale_buffer[:, page, :].clone())
        else:
            indexer.append(ix.index_k_with_scale_buffer[page, :, 0, :].clone())
    return {"latent": torch.stack(latent), "indexer": torch.stack(indexer)}


def stored_pages(client: cxlkv.Client, keys: list[str]) -> dict[str, torch.Tensor]:
    """What the pool holds for keys, read with the cxlkv client itself: per (page, layer) runs."""
    with client.lookup(keys) as lease:
        assert lease.pages == len(keys)
        latent = torch.empty((len(keys), LAYERS, PAGE, LATENT), dtype=torch.uint8)
        indexer = torch.empty((len(keys), LAYERS, PAGE * INDEXER), dtype=torch.uint8)
        for p in range(len(keys)):
            for layer in range(LAYERS):
                lease.fetch_pages("latent", layer, p, p + 1, out=latent[p, layer])
                lease.fetch_pages("indexer", layer, p, p + 1, out=indexer[p, layer].view(PAGE, INDEXER))
    return {"latent": latent, "indexer": indexer}


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], pages: int) -> None:
    for stream in ("latent", "indexer"):
        assert torch.equal(got[stream][:pages], want[stream][:pages]), f"{stream} differs"


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    return request.node.name  # the `client` fixture's namespace: the test reads what the backend wrote


# ---- attach ---------------------------------------------------------------------------------

def test_loads_as_a_dynamic_backend_from_the_cli_config(daemon: Daemon, model: str) -> None:
    extra = json.loads(CLI_EXTRA_CONFIG % (daemon.endpoint, TENANT, TOKEN))
    config = storage_config(daemon, model, extra=extra)
    backend = StorageBackendFactory.create_backend("dynamic", config, None)
    assert isinstance(backend, CxlkvStorage) and isinstance(backend, HiCacheStorage)
    assert (backend.endpoint, backend.tenant, backend.model) == (daemon.endpoint, TENANT, model)
    assert (backend.layout.page_tokens, backend.layout.layers) == (PAGE, LAYERS)
    backend.close()


def test_model_name_is_the_namespace(daemon: Daemon, client: cxlkv.Client, model: str) -> None:
    host = dsa_host_pools("page_first_direct")
    engine = Engine(storage_config(daemon, model), host)
    other = Engine(storage_config(daemon, model + "-other"), dsa_host_pools("page_first_direct"))
    slots = host.alloc(2 * PAGE)
    put_pages(host, slots, page_contents(2, 1))
    keys, _ = engine.query(request_tokens(1, 2))
    assert engine.backup(keys, slots) == 2 * PAGE
    assert engine.query(request_tokens(1, 2))[1] == 2
    assert other.query(request_tokens(1, 2))[1] == 0  # another model: another namespace
    with client.lookup(keys) as lease:  # the backend's keys are cxlkv keys as they are
        assert lease.pages == 2


# ---- the prefill backup and the prefix hit ----------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_backup_then_a_shared_prefix_hits_its_whole_pages_byte_exact(daemon: Daemon, client: cxlkv.Client,
                                                                     model: str, layout: str) -> None:
    host = dsa_host_pools(layout)
    engine = Engine(storage_config(daemon, model, is_page_first_layout=layout == "page_first"), host)
    first = request_tokens(7, 5, tail=17)  # 5 whole pages and a partial one
    keys, hit = engine.query(first)
    assert (len(keys), hit) == (5, 0)  # the first request misses
    engine.host.alloc(PAGE)  # so that the request's slots do not start at 0
    slots = host.alloc(5 * PAGE)
    contents = page_contents(5, seed=7)
    put_pages(host, slots, contents)
    assert engine.backup(keys, slots) == 5 * PAGE
    assert_same(stored_pages(client, keys), contents, 5)  # page p, layer l = one [64][entry] run

    second = first[:3 * PAGE] + [t + 1 for t in first[3 * PAGE:5 * PAGE]]  # shares 3 whole pages
    second_keys, hit = engine.query(second)
    assert hit == 3 and second_keys[:3] == keys[:3]
    assert engine.backend.batch_exists(second_keys) == 3
    assert engine.backend.batch_exists(second_keys[:2]) == 2

    fresh = host.alloc(hit * PAGE)
    assert engine.prefetch(second_keys[:hit], fresh) == 3
    assert_same(take_pages(host, fresh), contents, 3)


def test_prefix_keys_chain_batches_past_one_lease(daemon: Daemon, client: cxlkv.Client, model: str) -> None:
    pages = STORAGE_BATCH_SIZE + 6
    host = dsa_host_pools("page_first_direct", pages=2 * pages + 8)
    config = storage_config(daemon, model)
    config.extra_config["hicache_storage_pass_prefix_keys"] = True
    engine = Engine(config, host)
    tokens = request_tokens(11, pages)
    head, _ = engine.query(tokens[:4 * PAGE])
    slots = host.alloc(pages * PAGE)
    contents = page_contents(pages, seed=11)
    put_pages(host, slots, contents)
    assert engine.backup(head, slots[:4 * PAGE]) == 4 * PAGE
    # the continuation, as a child node: keys chained on the parent's last key, prefix keys passed
    tail = get_hash_str(tokens[4 * PAGE:], head[-1], page_size=PAGE)
    assert engine.backup(tail, slots[4 * PAGE:], prefix_keys=head) == (pages - 4) * PAGE
    keys, hit = engine.query(tokens)
    assert keys == head + tail and hit == pages
    assert engine.backend.batch_exists(keys) == pages
    fresh = host.alloc(pages * PAGE)
    assert engine.prefetch(keys, fresh) == pages
    assert_same(take_pages(host, fresh), contents, pages)


# ---- the DSA write rule -------------------------------------------------------------------

def test_the_indexer_write_stores_each_page_whole(daemon: Daemon, client: cxlkv.Client, model: str) -> None:
    host = dsa_host_pools("page_first")
    engine = Engine(storage_config(daemon, model), host)
    keys, _ = engine.query(request_tokens(3, 3))
    slots = host.alloc(3 * PAGE)
    contents = page_contents(3, seed=3)
    put_pages(host, slots, contents)
    results = engine.backend.batch_set_v2([engine.indexer_transfer(keys, slots)])
    assert results == {PoolName.INDEXER: [True, True, True]}
    assert engine.backend.batch_exists(keys) == 3  # a hit before the KV call: latent went with it
    assert_same(stored_pages(client, keys), contents, 3)
    committed = client.stats().pages_committed
    assert engine.backend.batch_set_v1(keys, slots) == [True, True, True]  # found stored
    assert client.stats().pages_committed == committed


def test_a_page_is_never_a_hit_without_its_indexer(daemon: Daemon, client: cxlkv.Client, model: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    host = dsa_host_pools("page_first_direct")
    kv_only = CxlkvStorage(storage_config(daemon, model), {})
    kv_only.register_mem_pool_host(host)  # no INDEXER pool registered
    keys = get_hash_str(request_tokens(5, 2), page_size=PAGE)
    slots = host.alloc(2 * PAGE)
    put_pages(host, slots, page_contents(2, seed=5))
    with caplog.at_level(logging.ERROR, logger="cxlkv.sglang"):
        assert kv_only.batch_set_v1(keys, slots) == [False, False]
    assert "no INDEXER host pool" in caplog.text
    assert kv_only.batch_exists(keys) == 0 and not kv_only.exists(keys[0])
    assert kv_only.batch_exists_v2(keys, [PoolTransfer(PoolName.INDEXER)]).kv_hit_pages == 0
    flat = [host.get_data_page(slots[j * PAGE]) for j in range(2)]
    assert kv_only.batch_set(keys, flat) is False  # a flat KV page carries no indexer either
    with client.lookup(keys) as lease:
        assert lease.pages == 0

    # Page 1's indexer is past the INDEXER pool's end: the lease publishes nothing, not even page 0.
    short = CxlkvStorage(storage_config(daemon, model), {})
    short.register_mem_pool_host(host)
    short.register_mem_host_pool_v2(dsa_host_pools("page_first_direct", pages=1).get_pool(PoolName.INDEXER),
                                    PoolName.INDEXER)
    transfer = PoolTransfer(PoolName.INDEXER, host_indices=slots, keys=keys)
    assert short.batch_set_v2([transfer]) == {PoolName.INDEXER: [False, False]}
    assert short.batch_exists(keys) == 0
    engine = Engine(storage_config(daemon, model), host)  # with both pools whole
    assert engine.backup(keys, slots) == 2 * PAGE
    assert engine.backend.batch_exists(keys) == 2


def test_removed_pages_are_a_miss(daemon: Daemon, client: cxlkv.Client, model: str) -> None:
    host = dsa_host_pools("layer_first")
    engine = Engine(storage_config(daemon, model), host)
    keys, _ = engine.query(request_tokens(9, 4))
    slots = host.alloc(4 * PAGE)
    put_pages(host, slots, page_contents(4, seed=9))
    assert engine.backup(keys, slots) == 4 * PAGE
    assert client.remove([keys[2]]) == 1
    assert engine.query(request_tokens(9, 4))[1] == 2
    fresh = host.alloc(4 * PAGE)
    assert engine.backend.batch_get_v1(keys, fresh) == [True, True, False, False]
    assert engine.prefetch(keys, fresh) == 2
    assert client.remove([keys[0]]) == 1
    assert engine.query(request_tokens(9, 4))[1] == 0
    assert engine.backend.batch_get_v1(keys, fresh) == [False] * 4
    assert engine.backend.batch_get_v2([engine.indexer_transfer(keys, fresh)]) == {PoolName.INDEXER: [False] * 4}


# ---- tensor parallelism -------------------------------------------------------------------

def test_tp_rank_0_writes_and_rank_1_reads_it(daemon: Daemon, client: cxlkv.Client, model: str) -> None:
    ranks = [Engine(storage_config(daemon, model, tp_rank=r, tp_size=2), dsa_host_pools("page_first_direct"))
             for r in (0, 1)]
    tokens = request_tokens(13, 3)
    contents = page_contents(3, seed=13)
    assert [rank.query(tokens)[1] for rank in ranks] == [0, 0]  # both ranks miss the first time
    backed_up = {}
    for r in (1, 0):  # both prefill the same request into their own host memory, rank 1 first
        slots = ranks[r].host.alloc(3 * PAGE)
        put_pages(ranks[r].host, slots, contents)
        keys = ranks[r].query(tokens)[0]
        backed_up[r] = ranks[r].backup(keys, slots)
        assert ranks[r].query(tokens)[1] == (3 if r == 0 else 0)  # backup_skip: rank 1 wrote nothing
    assert backed_up == {0: 3 * PAGE, 1: 0}
    keys, hit = ranks[1].query(tokens)
    assert hit == 3  # no rank in the key: rank 1 hits rank 0's pages
    fresh = ranks[1].host.alloc(3 * PAGE)
    assert ranks[1].prefetch(keys, fresh) == 3
    assert_same(take_pages(ranks[1].host, fresh), contents, 3)


# ---- refused configurations ---------------------------------------------------------------

def test_a_page_size_other_than_the_pools_is_refused(daemon: Daemon, model: str) -> None:
    backend = CxlkvStorage(storage_config(daemon, model), {})
    with pytest.raises(cxlkv.InvalidArgument, match=r"page size in tokens: the host pool has 32, .*pytest has 64"):
        backend.register_mem_pool_host(dsa_host_pools("page_first_direct", page_size=32))
    with pytest.raises(cxlkv.InvalidArgument, match=r"page size in tokens: the host pool has 32"):
        backend.register_mem_host_pool_v2(dsa_host_pools("page_first", page_size=32).get_pool(PoolName.INDEXER),
                                          PoolName.INDEXER)


def test_a_kv_shape_other_than_the_pools_is_refused(daemon: Daemon, model: str) -> None:
    backend = CxlkvStorage(storage_config(daemon, model), {})
    bf16 = MLATokenToKVPool(16 * PAGE, PAGE, torch.bfloat16, 512, 64, LAYERS)  # DeepSeek-V3's 576 x bf16
    with pytest.raises(cxlkv.InvalidArgument, match=r"kv_cache_dim 576 x torch.bfloat16 = 1152 B, .*latent entries "
                                                    r"of 656 B"):
        backend.register_mem_pool_host(MLATokenToKVPoolHost(bf16, 1.0, 0, PAGE, "page_first", pin_memory=False))
    with pytest.raises(cxlkv.InvalidArgument, match=r"kv_cache_dim 600 x torch.uint8 = 600 B"):
        backend.register_mem_pool_host(dsa_host_pools("layer_first", kv_cache_dim=600))
    with pytest.raises(cxlkv.InvalidArgument, match=r"layers: the host pool has 3, .* has 4"):
        backend.register_mem_pool_host(dsa_host_pools("layer_first", layers=3))
    with pytest.raises(cxlkv.InvalidArgument, match=r"indexer bytes per token and layer: the host pool has 64 B"):
        backend.register_mem_host_pool_v2(dsa_host_pools("page_first", index_head_dim=64).get_pool(PoolName.INDEXER),
                                          PoolName.INDEXER)
    device = DSATokenToKVPool(16 * PAGE, PAGE, LAYERS)
    split = MLATokenToKVPoolHost(device, 1.0, 0, PAGE, "page_first_kv_split", pin_memory=False,
                                 override_kv_cache_dim=LATENT)
    with pytest.raises(cxlkv.InvalidArgument, match="layout page_first_kv_split is not supported"):
        backend.register_mem_pool_host(split)
    with pytest.raises(cxlkv.InvalidArgument, match="host pool mamba is not supported"):
        backend.register_mem_host_pool_v2(dsa_host_pools("page_first").get_pool(PoolName.KV), PoolName.MAMBA)
    backend.close()


def test_a_missing_endpoint_is_refused_and_the_environment_is_read(daemon: Daemon, model: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CXLKV_ENDPOINT", "CXLKV_TENANT", "CXLKV_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    extra = {"backend_name": "cxlkv", "module_path": "cxlkv.sglang", "class_name": "CxlkvStorage", "interface_v1": 1}
    with pytest.raises(cxlkv.InvalidArgument, match=r"no pool endpoint: set \"endpoint\".*CXLKV_ENDPOINT"):
        StorageBackendFactory.create_backend("dynamic", storage_config(daemon, model, extra=dict(extra)), None)
    monkeypatch.setenv("CXLKV_ENDPOINT", daemon.endpoint)
    monkeypatch.setenv("CXLKV_TENANT", TENANT)
    monkeypatch.setenv("CXLKV_TOKEN", TOKEN)
    backend = CxlkvStorage(storage_config(daemon, model, extra=dict(extra)), {})
    assert (backend.endpoint, backend.tenant) == (daemon.endpoint, TENANT)
    backend.close()
    monkeypatch.setenv("CXLKV_TOKEN", "not-the-token")
    with pytest.raises(cxlkv.Error):  # the daemon refuses the session
        CxlkvStorage(storage_config(daemon, model, extra=dict(extra)), {})


@pytest.mark.parametrize("fields, message", [
    ({"is_mla_model": False}, "is not MLA"),
    ({"pp_size": 2}, "pp_size 2 is not supported"),
    ({"attn_cp_size": 2}, "attn_cp_size 2 is not supported"),
    ({"model_name": None}, "model_name is None"),
])
def test_engine_configurations_one_page_cannot_hold_are_refused(daemon: Daemon, model: str, fields: dict,
                                                                message: str) -> None:
    with pytest.raises(cxlkv.InvalidArgument, match=message):
        CxlkvStorage(storage_config(daemon, model, **fields), {})


def test_a_pool_layout_without_a_latent_stream_is_refused(model: str) -> None:
    gqa = Daemon("gqa", layout="custom:name=gqa,layers=4,page_tokens=64,stream=k/256/256/bulk,stream=v/256/256/bulk")
    try:
        with pytest.raises(cxlkv.InvalidArgument, match="layout gqa with streams k, v"):
            CxlkvStorage(storage_config(gqa, model), {})
    finally:
        gqa.stop()


def test_an_mla_layout_stores_latent_only(model: str) -> None:
    """DeepSeek-V3 (MLA, no indexer): bf16 latent of 576 x 2 B, no INDEXER pool, one-stream pages."""
    mla = Daemon("mla", layout="custom:name=mla,layers=4,page_tokens=64,stream=latent/1152/1152/sparse")
    try:
        backend = CxlkvStorage(storage_config(mla, model), {})
        device = MLATokenToKVPool(16 * PAGE, PAGE, torch.bfloat16, 512, 64, LAYERS)
        host = MLATokenToKVPoolHost(device, 1.0, 0, PAGE, "page_first", pin_memory=False)
        backend.register_mem_pool_host(host)
        with pytest.raises(cxlkv.InvalidArgument, match="layout mla has no indexer stream"):
            backend.register_mem_host_pool_v2(dsa_host_pools("page_first").get_pool(PoolName.INDEXER),
                                              PoolName.INDEXER)
        keys = get_hash_str(request_tokens(17, 2), page_size=PAGE)
        slots = host.alloc(2 * PAGE)
        host.kv_buffer[slots] = torch.randn((2 * PAGE, LAYERS, 1, 576)).to(torch.bfloat16)
        assert backend.batch_set_v1(keys, slots) == [True, True]
        fresh = host.alloc(2 * PAGE)
        assert backend.batch_get_v1(keys, fresh) == [True, True]
        assert torch.equal(host.kv_buffer[fresh], host.kv_buffer[slots])
        backend.close()
    finally:
        mla.stop()


# ---- the generic flat-page path (interface_v1 off) ------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_generic_flat_pages_round_trip(daemon: Daemon, model: str, layout: str) -> None:
    host = dsa_host_pools(layout)
    engine = Engine(storage_config(daemon, model, interface_v1=0), host)
    assert not engine.zero_copy
    keys, _ = engine.query(request_tokens(19, 3))
    slots = host.alloc(3 * PAGE)
    contents = page_contents(3, seed=19)
    put_pages(host, slots, contents)
    assert engine.backup(keys, slots) == 3 * PAGE  # batch_set_v2 (INDEXER), then batch_set of flat pages
    fresh = host.alloc(3 * PAGE)
    assert engine.prefetch(keys, fresh) == 3  # batch_get into dummy pages + set_from_flat_data_page
    assert_same(take_pages(host, fresh), contents, 3)

    page = engine.backend.get(keys[1])  # a new dummy page from the KV pool
    assert torch.equal(page, host.get_data_page(slots[PAGE]))
    assert engine.backend.get(get_hash_str(request_tokens(20, 1), page_size=PAGE)[0]) is None
    assert engine.backend.set(get_hash_str(request_tokens(21, 1), page_size=PAGE)[0], page) is False  # no indexer
    draft = [f"{k}.{PoolName.DRAFT}" for k in keys]  # the controller's generic draft keys: not page hashes
    assert engine.backend.batch_set(draft, [page] * 3) is False
    assert engine.backend.batch_get(draft, [host.get_dummy_flat_data_page() for _ in draft]) == [None] * 3


# ---- threads, stats, lifecycle ------------------------------------------------------------

def test_the_three_engine_threads_at_once(daemon: Daemon, model: str) -> None:
    requests = 12
    host = dsa_host_pools("page_first_direct", pages=4 * requests + 4)
    engine = Engine(storage_config(daemon, model), host)
    written: "queue.Queue[Optional[tuple[list[str], dict]]]" = queue.Queue()
    to_read: "queue.Queue[Optional[tuple[list[str], dict]]]" = queue.Queue()
    failures: list[str] = []

    def backup() -> None:  # backup_thread
        for r in range(requests):
            keys = get_hash_str(request_tokens(100 + r, 2), page_size=PAGE)
            slots = host.alloc(2 * PAGE)
            contents = page_contents(2, seed=100 + r)
            put_pages(host, slots, contents)
            if engine.backup(keys, slots) != 2 * PAGE:
                failures.append(f"backup {r}")
            written.put((keys, contents))
        written.put(None)

    def query() -> None:  # prefetch_thread
        while (item := written.get()) is not None:
            if engine.backend.batch_exists_v2(item[0], [engine.indexer_transfer()]).kv_hit_pages != 2:
                failures.append("query")
            to_read.put(item)
        to_read.put(None)

    def read() -> None:  # prefetch_io_aux thread
        while (item := to_read.get()) is not None:
            fresh = host.alloc(2 * PAGE)
            if engine.prefetch(item[0], fresh) != 2:
                failures.append("prefetch")
            elif not all(torch.equal(take_pages(host, fresh)[s], item[1][s]) for s in ("latent", "indexer")):
                failures.append("bytes")

    threads = [threading.Thread(target=f) for f in (backup, query, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_stats_are_storage_metrics_per_call(daemon: Daemon, model: str) -> None:
    host = dsa_host_pools("page_first_direct")
    engine = Engine(storage_config(daemon, model, enable_storage_metrics=True), host)
    keys, _ = engine.query(request_tokens(23, 3))
    slots = host.alloc(3 * PAGE)
    put_pages(host, slots, page_contents(3, seed=23))
    engine.backup(keys, slots)
    engine.prefetch(keys, host.alloc(3 * PAGE))
    stats = engine.backend.get_stats()
    assert isinstance(stats, StorageMetrics)
    assert stats.backup_pgs == [3]  # the INDEXER call wrote the pages; the KV call found them stored
    assert stats.prefetch_pgs == [3, 3]  # latent (batch_get_v1), then indexer (batch_get_v2)
    assert all(rate > 0 for rate in stats.backup_bandwidth + stats.prefetch_bandwidth)
    assert engine.backend.get_stats() == StorageMetrics()  # drained
    assert CxlkvStorage(storage_config(daemon, model), {}).get_stats() is None  # metrics off


def test_clear_is_refused_and_removes_nothing(daemon: Daemon, model: str) -> None:
    host = dsa_host_pools("page_first")
    engine = Engine(storage_config(daemon, model), host)
    keys, _ = engine.query(request_tokens(29, 1))
    slots = host.alloc(PAGE)
    put_pages(host, slots, page_contents(1, seed=29))
    engine.backup(keys, slots)
    with pytest.raises(NotImplementedError, match=rf"clear\(\) is refused: namespace \({TENANT}, {model}\)"):
        engine.backend.clear()
    assert engine.backend.batch_exists(keys) == 1


def test_after_close_every_call_reports_failure(daemon: Daemon, model: str) -> None:
    host = dsa_host_pools("page_first_direct")
    engine = Engine(storage_config(daemon, model), host)
    keys, _ = engine.query(request_tokens(31, 2))
    slots = host.alloc(2 * PAGE)
    put_pages(host, slots, page_contents(2, seed=31))
    engine.backup(keys, slots)
    engine.backend.close()
    engine.backend.close()  # idempotent
    assert engine.backend.batch_exists(keys) == 0
    assert engine.backend.batch_get_v1(keys, slots) == [False, False]
    assert engine.backend.batch_set_v1(keys, slots) == [False, False]
    assert engine.backend.batch_get_v2([engine.indexer_transfer(keys, slots)]) == {PoolName.INDEXER: [False, False]}
    assert engine.backend.batch_get(keys) == [None, None]


# ---- conformance with the engine's calls ----------------------------------------------------

# Every HiCacheStorage method the engine calls on a backend, with upstream's parameter names, as
# read from sgl-project/sglang d315eb725044e435b146c85488b7c6d9222f7fec (mem_cache/hicache_storage.py;
# call sites in managers/cache_controller.py, mem_cache/hybrid_cache/hybrid_cache_controller.py,
# mem_cache/hiradix_cache.py, mem_cache/unified_radix_cache.py), and how many arguments the
# engine passes (the rest must have defaults).
ENGINE_CALLS = [
    ("register_mem_pool_host", ["mem_pool_host"], 1),
    ("register_mem_host_pool_v2", ["host_pool", "host_pool_name"], 2),
    ("exists", ["key"], 1),
    ("batch_exists", ["keys", "extra_info"], 1),
    ("batch_exists_v2", ["keys", "pool_transfers", "extra_info"], 1),
    ("batch_get_v1", ["keys", "host_indices", "extra_info"], 2),
    ("batch_set_v1", ["keys", "host_indices", "extra_info"], 2),
    ("batch_get_v2", ["transfers", "extra_info"], 1),
    ("batch_set_v2", ["transfers", "extra_info"], 1),
    ("get", ["key", "target_location", "target_sizes"], 1),
    ("batch_get", ["keys", "target_locations", "target_sizes"], 1),
    ("set", ["key", "value", "target_location", "target_sizes"], 1),
    ("batch_set", ["keys", "values", "target_locations", "target_sizes"], 1),
    ("clear", [], 0),
    ("get_stats", [], 0),
    ("close", [], 0),
]


@pytest.mark.parametrize("name, params, passed", ENGINE_CALLS, ids=[c[0] for c in ENGINE_CALLS])
def test_every_engine_call_is_implemented_with_upstreams_parameters(name: str, params: list[str],
                                                                    passed: int) -> None:
    assert name in vars(CxlkvStorage), f"{name} is inherited, not implemented"
    signature = inspect.signature(getattr(CxlkvStorage, name))
    names = [p for p in signature.parameters if p != "self"]
    assert names == params
    signature.bind(None, *range(passed))  # the engine's positional call binds
    if name in vars(HiCacheStorage):  # the stand-in base agrees with the list
        assert [p for p in inspect.signature(getattr(HiCacheStorage, name)).parameters if p != "self"] == params


def test_the_class_is_what_the_dynamic_factory_builds() -> None:
    assert issubclass(CxlkvStorage, HiCacheStorage) and not inspect.isabstract(CxlkvStorage)
    inspect.signature(CxlkvStorage).bind("storage_config", {})  # backend_class(storage_config, kwargs)
