"""cxlkv.sglang: SGLang's HiCache L3 storage backend on a cxlkv pool, for DeepSeek-V3.2 (DSA) and
other MLA models. SGLang's HiCacheController and HybridCacheController call it; it maps their
host pools and page hashes onto cxlkv's write and read paths (client.py) and keeps no pool state
of its own.

Loading (SGLang's `dynamic` backend; the class is built as CxlkvStorage(storage_config, {})):

    --hicache-storage-backend dynamic --hicache-mem-layout page_first_direct
    --hicache-storage-backend-extra-config '{"backend_name": "cxlkv", "module_path": "cxlkv.sglang",
        "class_name": "CxlkvStorage", "interface_v1": 1, "endpoint": "unix:/run/cxlkv/pool.sock",
        "tenant": "...", "token": "..."}'

`endpoint`, `tenant` and `token` come from the extra config, else from $CXLKV_ENDPOINT,
$CXLKV_TENANT and $CXLKV_TOKEN; a missing endpoint is cxlkv.InvalidArgument (a ValueError). The
cxlkv namespace is (tenant, storage_config.model_name): every TP rank of one model shares it.
`interface_v1: 1` selects the zero-copy calls (batch_get_v1/batch_set_v1); without it SGLang uses
the generic flat-page calls (batch_get/batch_set), which work too, with one copy.

What is stored. One cxlkv page = one SGLang page of 64 tokens = one record holding every stream of
the pool's layout: "latent" (the MLA KV host pool, kv_cache_dim x dtype bytes per token and layer,
656 B for DeepSeek-V3.2's FP8 cache) and, in a DSA layout, "indexer" (the DSA indexer host pool's
per-(page, layer) block of 132 x 64 bytes, stored as the indexer stream's page run, bytes as they
are). SGLang's page hashes (64-hex SHA-256 strings) are the cxlkv keys as they are.

Host pool layouts, per (page, layer) run of page_tokens entries:
  KV      layer_first        [layer_num, size, 1, dim]               zero-copy (contiguous run)
          page_first_direct  [page_num, layer_num, page_size, 1, dim] zero-copy (contiguous run)
          page_first         [size, layer_num, 1, dim]               strided: one copy per run
  INDEXER page_first(_direct) [page_num, layer_num, 1, 132*page_size] zero-copy
          layer_first         [layer_num, page_num, 132*page_size]   zero-copy
Any other layout (page_first_kv_split, page_head) is refused when the pool is registered, with
an error naming it; so are a page size, layer count or bytes per token that differ from the
pool's layout (both values named).

Design decisions:
- DSA write rule. SGLang writes INDEXER (batch_set_v2) before KV (batch_set_v1 or batch_set), in
  separate calls. Whichever call comes first writes the whole page, latent from the registered
  KV host pool and indexer from the registered INDEXER host pool at the same host slots, in one
  write lease; the second finds the page cached and reports True. cxlkv commits a page only
  when every (stream, layer) run is written, so a page whose indexer is missing is never
  committed and never a hit. A write that cannot supply every stream (no INDEXER pool
  registered, or the generic flat-page batch_set on a page nobody wrote yet) writes nothing
  and reports False for those pages.
- Parent keys. reserve(keys, parent) records keys[i-1] as page i's parent; the daemon uses it
  only to link committed pages for leaf-first eviction and in the page record. lookup matches
  on the keys alone (they are chained hashes, so a key already names its whole prefix): a
  wrong or zero parent can never make a wrong hit. The parent of a call's first page is
  extra_info.prefix_keys[-1] when SGLang passes prefix keys
  (hicache_storage_pass_prefix_keys), else unknown and given as the root; within a call each
  run of 128 pages is chained to the previous one.
- Tensor parallelism. MLA/DSA KV is the same on every TP rank and SGLang lets only TP rank 0
  write (backup_skip). Keys carry no rank suffix, so rank 1.. reads and hits what rank 0 wrote.
  Models whose KV is sharded over ranks (not MLA), pipeline stages (pp_size > 1, each holding
  some layers of a page) and attention context parallelism (attn_cp_size > 1, each holding a
  slice of a page) are refused at construction.
- Failures. The engine's storage threads die on an exception, so the I/O calls never raise:
  a cxlkv.Error (pool exhausted, daemon gone, a key that is not a page hash such as the
  generic draft keys "<hash>.draft") is logged and reported as False (or None, or a miss) for
  the pages it concerns. Configuration errors raise cxlkv.InvalidArgument at construction or
  registration, where SGLang aborts the attach.

Thread-safety: SGLang calls from its prefetch, prefetch-I/O and backup threads at once. The
cxlkv Client is thread-safe and every call holds its own lease; close() waits for the calls in
flight."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence

from sglang.srt.mem_cache.hicache_storage import (HiCacheStorage, HiCacheStorageConfig, HiCacheStorageExtraInfo,
                                                  PoolHitPolicy, PoolName, PoolTransfer, PoolTransferResult)

from .client import Client, Layout, ReadLease, WriteLease
from .errors import Closed, Error, InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = ["CxlkvStorage"]

logger = logging.getLogger(__name__)

PAGES_PER_LEASE = 128
"""Pages per cxlkv lookup or write lease: SGLang's own batch (STORAGE_BATCH_SIZE), which bounds
the slabs one lease holds and stays far below the daemon's max_keys (16384 by default)."""

# The engine's pool -> the cxlkv stream holding it.
STREAM_OF_POOL = {PoolName.KV: "latent", PoolName.INDEXER: "indexer"}
POOL_OF_STREAM = {stream: pool for pool, stream in STREAM_OF_POOL.items()}

KV_LAYOUTS = ("layer_first", "page_first", "page_first_direct")
INDEXER_LAYOUTS = ("layer_first", "page_first", "page_first_direct")


# ---- configuration -------------------------------------------------------------------------

def connection_settings(storage_config: HiCacheStorageConfig) -> tuple[str, str, str]:
    """(endpoint, tenant, token) from the extra config, else $CXLKV_ENDPOINT / _TENANT / _TOKEN."""
    extra = storage_config.extra_config or {}

    def setting(key: str, env: str) -> str:
        value = extra.get(key)
        return str(value) if value not in (None, "") else os.environ.get(env, "")

    endpoint = setting("endpoint", "CXLKV_ENDPOINT")
    if not endpoint:
        raise InvalidArgument('cxlkv.sglang: no pool endpoint: set "endpoint" in '
                              "--hicache-storage-backend-extra-config (e.g. \"unix:/run/cxlkv/pool.sock\") "
                              "or $CXLKV_ENDPOINT")
    return endpoint, setting("tenant", "CXLKV_TENANT"), setting("token", "CXLKV_TOKEN")


def check_engine_config(storage_config: HiCacheStorageConfig) -> str:
    """The model namespace; refuses engine configurations whose pages one cxlkv page cannot hold."""
    c = storage_config
    if not c.is_mla_model:
        raise InvalidArgument("cxlkv.sglang stores MLA/DSA KV, the same on every TP rank; this model's KV pool "
                              f"is not MLA (is_mla_model={c.is_mla_model}): each of its {c.tp_size} TP ranks "
                              "holds other heads")
    if c.pp_size > 1:
        raise InvalidArgument(f"cxlkv.sglang: pp_size {c.pp_size} is not supported: a cxlkv page holds every "
                              "layer, a pipeline stage only some")
    if c.attn_cp_size > 1:
        raise InvalidArgument(f"cxlkv.sglang: attn_cp_size {c.attn_cp_size} is not supported: each context-"
                              "parallel rank holds a slice of every page")
    if not c.model_name:
        raise InvalidArgument(f"cxlkv.sglang: model_name is {c.model_name!r}: cxlkv namespaces pages by "
                              "(tenant, model), and pages of different models must never share one")
    return c.model_name


def check_pool_layout(layout: Layout, endpoint: str) -> None:
    """The pool's streams must be latent and, optionally, indexer: the two pools SGLang has."""
    names = [s.name for s in layout.streams]
    unknown = [n for n in names if n not in POOL_OF_STREAM]
    if "latent" not in names or unknown:
        raise InvalidArgument(f"cxlkv.sglang: the pool at {endpoint} has layout {layout.name} with streams "
                              f"{', '.join(names)}; SGLang's host pools fill 'latent' (KV) and 'indexer' "
                              "(INDEXER) only")


def _expect(what: str, engine: Any, pool: Any, layout: Layout) -> None:
    if engine != pool:
        raise InvalidArgument(f"cxlkv.sglang: {what}: the host pool has {engine}, the cxlkv pool's layout "
                              f"{layout.name} has {pool}")


# ---- host pools: which tensor holds a (page, layer) run -------------------------------------

def unwrap_anchor(host_pool: Any) -> Any:
    """The KV pool itself: SGLang passes a HostPoolGroup for hybrid stacks (DSA), whose anchor it is."""
    anchor = getattr(host_pool, "anchor_entry", None)
    return anchor.host_pool if anchor is not None else host_pool


class HostPages:
    """One engine host pool seen as cxlkv page runs: block(slot)[layer] is the tensor holding the
    (page, layer) run of the page starting at host token slot `slot`, page_tokens x entry_bytes
    bytes (contiguous, or strided when `zero_copy` is False)."""

    def __init__(self, pool: Any, buffer: "torch.Tensor", layout_name: str, page_tokens: int,
                 block_of: Callable[["torch.Tensor", int], "torch.Tensor"], zero_copy: bool) -> None:
        self.pool = pool
        self.layout_name = layout_name
        self.page_tokens = page_tokens
        self.zero_copy = zero_copy
        self._buffer = buffer
        self._block_of = block_of
        self._slots = int(pool.size)

    def block(self, slot: int) -> "torch.Tensor":
        if slot % self.page_tokens or not 0 <= slot <= self._slots - self.page_tokens:
            raise InvalidArgument(f"host slot {slot} is not the start of a page of {self.page_tokens} tokens "
                                  f"in a host pool of {self._slots} slots")
        return self._block_of(self._buffer, slot)


def kv_host_pages(host_pool: Any, layout: Layout) -> HostPages:
    """The MLA KV host pool as latent runs; refuses a layout or shape the cxlkv pool cannot hold."""
    pool = unwrap_anchor(host_pool)
    name = pool.layout
    if name not in KV_LAYOUTS:
        raise InvalidArgument(f"cxlkv.sglang: KV host pool layout {name} is not supported "
                              f"(supported: {', '.join(KV_LAYOUTS)})")
    _expect("page size in tokens", pool.page_size, layout.page_tokens, layout)
    _expect("layers", pool.layer_num, layout.layers, layout)
    buffer = pool.kv_buffer
    if buffer.device.type != "cpu":
        raise InvalidArgument(f"cxlkv.sglang: the KV host pool's buffer is on {buffer.device}, host memory expected")
    entry = layout.stream("latent").entry_bytes
    per_token = pool.kv_cache_dim * buffer.element_size()
    if per_token != entry:
        raise InvalidArgument(f"cxlkv.sglang: KV bytes per token and layer: the host pool has kv_cache_dim "
                              f"{pool.kv_cache_dim} x {buffer.dtype} = {per_token} B, the cxlkv pool's layout "
                              f"{layout.name} has latent entries of {entry} B")
    tokens = layout.page_tokens
    if name == "layer_first":      # [layer, slot, 1, dim]: the page's slots in each layer
        return HostPages(pool, buffer, name, tokens, lambda b, s: b[:, s:s + tokens], True)
    if name == "page_first":       # [slot, layer, 1, dim]: token-major, a run is strided by layer_num
        return HostPages(pool, buffer, name, tokens, lambda b, s: b[s:s + tokens].transpose(0, 1), False)
    return HostPages(pool, buffer, name, tokens, lambda b, s: b[s // tokens], True)  # [page, layer, tok, 1, dim]


def indexer_host_pages(host_pool: Any, layout: Layout) -> HostPages:
    """The DSA indexer host pool as indexer runs (its per-(page, layer) block, bytes as they are)."""
    name = host_pool.layout
    if name not in INDEXER_LAYOUTS:
        raise InvalidArgument(f"cxlkv.sglang: INDEXER host pool layout {name} is not supported "
                              f"(supported: {', '.join(INDEXER_LAYOUTS)})")
    names = [s.name for s in layout.streams]
    if "indexer" not in names:
        raise InvalidArgument(f"cxlkv.sglang: an INDEXER host pool was registered but the cxlkv pool's layout "
                              f"{layout.name} has no indexer stream (streams: {', '.join(names)})")
    _expect("page size in tokens", host_pool.page_size, layout.page_tokens, layout)
    _expect("layers", host_pool.layer_num, layout.layers, layout)
    buffer = host_pool.index_k_with_scale_buffer
    entry = layout.stream("indexer").entry_bytes
    per_token = host_pool.indexer_size_per_token * buffer.element_size()
    if per_token != entry:
        raise InvalidArgument(f"cxlkv.sglang: indexer bytes per token and layer: the host pool has {per_token} B, "
                              f"the cxlkv pool's layout {layout.name} has indexer entries of {entry} B")
    tokens = layout.page_tokens
    if name == "layer_first":      # [layer, page, 132 x page_size]
        return HostPages(host_pool, buffer, name, tokens, lambda b, s: b[:, s // tokens], True)
    return HostPages(host_pool, buffer, name, tokens, lambda b, s: b[s // tokens], True)  # [page, layer, 1, ...]


def flat_page_block(flat: "torch.Tensor", kv: HostPages, layout: Layout) -> "torch.Tensor":
    """A flat page of SGLang's generic path (get_data_page / get_dummy_flat_data_page) as a block
    [layer] -> run: token-major for page_first, layer-major otherwise, as the KV host pool lays it."""
    page_bytes = layout.layers * layout.page_tokens * layout.stream("latent").entry_bytes
    nbytes = flat.numel() * flat.element_size()
    if nbytes != page_bytes or not flat.is_contiguous():
        raise InvalidArgument(f"flat page of {nbytes} B (contiguous: {flat.is_contiguous()}): a contiguous "
                              f"page of {page_bytes} B expected")
    if kv.layout_name == "page_first":
        return flat.view(layout.page_tokens, layout.layers, -1).transpose(0, 1)
    return flat.view(layout.layers, layout.page_tokens, -1)


# ---- runs <-> leases ----------------------------------------------------------------------

def write_run(lease: WriteLease, page: int, stream: str, layer: int, run: "torch.Tensor") -> None:
    lease.write(page, stream, layer, run if run.is_contiguous() else run.contiguous())


def fetch_run(lease: ReadLease, page: int, stream: str, layer: int, run: "torch.Tensor") -> None:
    if run.is_contiguous():
        lease.fetch_pages(stream, layer, page, page + 1, out=run)
    else:  # page_first KV: the run is strided in the host pool
        packed = run.new_empty(run.shape)
        lease.fetch_pages(stream, layer, page, page + 1, out=packed)
        run.copy_(packed)


Blocks = Callable[[int], "torch.Tensor"]
"""Page i of a call -> its block ([layer] -> run) of one stream."""


def host_indices_slots(keys: Sequence[str], host_indices: Any, page_tokens: int) -> list[int]:
    """The host token slot where each key's page starts (SGLang passes page_tokens slots per key)."""
    count = 0 if host_indices is None else int(host_indices.numel())
    if count != len(keys) * page_tokens:
        raise InvalidArgument(f"{count} host indices for {len(keys)} pages of {page_tokens} tokens "
                              f"({len(keys) * page_tokens} expected)")
    return [int(s) for s in host_indices[::page_tokens].tolist()]


# ---- the client shared by the engine's threads ---------------------------------------------

class OpenClient:
    """The Client and the calls in flight on it: close() waits for them, since a Client's close
    must not race its other calls."""

    def __init__(self, client: Client) -> None:
        self._client: Client | None = client
        self._in_flight = 0
        self._idle = threading.Condition()

    @contextlib.contextmanager
    def use(self) -> Iterator[Client]:
        with self._idle:
            if self._client is None:
                raise Closed("cxlkv.sglang: the backend is closed")
            client = self._client
            self._in_flight += 1
        try:
            yield client
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def close(self) -> None:
        with self._idle:
            client, self._client = self._client, None
            self._idle.wait_for(lambda: self._in_flight == 0)
        if client is not None:
            client.close()


class Throughput:
    """Pages and GB/s of each prefetch and backup call since the last get_stats(), as SGLang's
    StorageMetrics carries them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, tuple[list[int], list[float]]] = {"prefetch": ([], []), "backup": ([], [])}

    def add(self, kind: str, pages: int, page_bytes: int, seconds: float) -> None:
        if pages == 0:
            return
        with self._lock:
            counts, rates = self._calls[kind]
            counts.append(pages)
            rates.append(pages * page_bytes / 1e9 / max(seconds, 1e-9))

    def drain_into(self, metrics: Any) -> Any:
        with self._lock:
            metrics.prefetch_pgs.extend(self._calls["prefetch"][0])
            metrics.prefetch_bandwidth.extend(self._calls["prefetch"][1])
            metrics.backup_pgs.extend(self._calls["backup"][0])
            metrics.backup_bandwidth.extend(self._calls["backup"][1])
            self._calls = {"prefetch": ([], []), "backup": ([], [])}
        return metrics


def _parent_key(extra_info: Optional[HiCacheStorageExtraInfo]) -> Optional[str]:
    """The page before a call's first key, when SGLang passes the prefix keys; None (root) otherwise."""
    prefix = extra_info.prefix_keys if extra_info is not None else None
    return prefix[-1] if prefix else None


# ---- the backend ---------------------------------------------------------------------------

class CxlkvStorage(HiCacheStorage):
    """SGLang HiCacheStorage on a cxlkv pool (module docstring: layouts, write rule, TP)."""

    def __init__(self, storage_config: HiCacheStorageConfig, backend_kwargs: Optional[dict] = None) -> None:
        """Connects to the pool. backend_kwargs is the factory's **kwargs dict (always {} from the
        controller), unused. Raises cxlkv.InvalidArgument for a missing endpoint or an engine
        configuration cxlkv pages cannot hold; the library's errors for a refused connection."""
        self.storage_config = storage_config
        model = check_engine_config(storage_config)
        endpoint, tenant, token = connection_settings(storage_config)
        client = Client(endpoint, tenant, token, model)
        try:
            check_pool_layout(client.layout, endpoint)
        except InvalidArgument:
            client.close()
            raise
        self.layout: Layout = client.layout
        self.endpoint = endpoint
        self.tenant = tenant
        self.model = model
        self._client = OpenClient(client)
        self._kv: HostPages | None = None
        self._indexer: HostPages | None = None
        self._metrics = bool(storage_config.enable_storage_metrics)
        self._throughput = Throughput()
        self._page_bytes = {s.name: self.layout.layers * self.layout.page_tokens * s.entry_bytes
                            for s in self.layout.streams}
        logger.info("cxlkv.sglang: pool %s, layout %s, namespace (%s, %s), TP rank %d of %d", endpoint,
                    self.layout.name, tenant, model, storage_config.tp_rank, storage_config.tp_size)

    # -- registration (attach time) --

    def register_mem_pool_host(self, mem_pool_host: Any) -> None:
        """The KV host pool (a HostPoolGroup for DSA: its KV anchor is used). Raises
        cxlkv.InvalidArgument for a layout, page size, layer count or bytes per token the pool's
        layout does not have."""
        kv = kv_host_pages(mem_pool_host, self.layout)
        super().register_mem_pool_host(mem_pool_host)
        self._kv = kv

    def register_mem_host_pool_v2(self, host_pool: Any, host_pool_name: PoolName) -> None:
        """KV or INDEXER host pool of the hybrid stack; any other pool (MAMBA, SWA, DRAFT, ...) has
        no stream in a cxlkv page and is refused with cxlkv.InvalidArgument."""
        if host_pool_name == PoolName.KV:
            self._kv = kv_host_pages(host_pool, self.layout)
        elif host_pool_name == PoolName.INDEXER:
            self._indexer = indexer_host_pages(host_pool, self.layout)
        else:
            raise InvalidArgument(f"cxlkv.sglang: host pool {host_pool_name} is not supported: a cxlkv page of "
                                  f"layout {self.layout.name} holds the KV and INDEXER pools only")
        super().register_mem_host_pool_v2(host_pool, host_pool_name)

    # -- existence --

    def exists(self, key: str) -> bool:
        """Whether the page of `key` is stored (committed, with every stream)."""
        return self.batch_exists([key]) == 1

    def batch_exists(self, keys: List[str], extra_info: Optional[HiCacheStorageExtraInfo] = None) -> int:
        """How many leading keys are stored: cxlkv's longest committed prefix."""
        try:
            with self._client.use() as client:
                return self._stored_prefix(client, keys)
        except Error as e:
            self._log_failure("batch_exists", len(keys), e)
            return 0

    def batch_exists_v2(self, keys: List[str], pool_transfers: Optional[List[PoolTransfer]] = None,
                        extra_info: Optional[HiCacheStorageExtraInfo] = None) -> PoolTransferResult:
        """The usable KV prefix with the extra pools' hits. A stored page holds every stream of
        the layout, so the INDEXER pool hits exactly where KV does (under either hit policy); a
        pool cxlkv does not store hits nothing."""
        kv_pages = self.batch_exists(keys, extra_info)
        hits: dict[str, int] = {PoolName.KV: kv_pages}
        usable = kv_pages
        for transfer in pool_transfers or []:
            stored = STREAM_OF_POOL.get(transfer.name) in self._page_bytes
            if not stored:
                logger.error("cxlkv.sglang batch_exists_v2: pool %s is not stored in layout %s", transfer.name,
                             self.layout.name)
            hits[transfer.name] = kv_pages if stored else 0
            usable = min(usable, hits[transfer.name])
        return PoolTransferResult(usable, hits)

    # -- zero-copy path (interface_v1) --

    def batch_get_v1(self, keys: List[str], host_indices: "torch.Tensor",
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> List[bool]:
        """Reads the latent of each stored leading page into the KV host pool at host_indices
        (page i at host_indices[i * page_size]); one bool per key, True for the hit prefix."""
        return self._read_into_host("batch_get_v1", keys, host_indices, self._kv, "latent")

    def batch_set_v1(self, keys: List[str], host_indices: "torch.Tensor",
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> List[bool]:
        """Writes each page whole (latent and indexer, from the registered host pools at
        host_indices); pages already stored are True without a write."""
        return self._write_from_host("batch_set_v1", keys, host_indices, _parent_key(extra_info))

    # -- multi-pool path (DSA: KV + INDEXER) --

    def batch_get_v2(self, transfers: List[PoolTransfer],
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> dict[str, List[bool]]:
        """Reads each transfer's stream (INDEXER -> indexer, KV -> latent) into its host pool;
        {transfer.name: one bool per key}."""
        results: dict[str, List[bool]] = {}
        for t in transfers:
            keys = list(t.keys or [])
            pages = {PoolName.KV: self._kv, PoolName.INDEXER: self._indexer}.get(t.name)
            stream = STREAM_OF_POOL.get(t.name)
            if stream is None:
                logger.error("cxlkv.sglang batch_get_v2: pool %s is not stored", t.name)
                results[t.name] = [False] * len(keys)
            else:
                results[t.name] = self._read_into_host("batch_get_v2", keys, t.host_indices, pages, stream)
        return results

    def batch_set_v2(self, transfers: List[PoolTransfer],
                     extra_info: Optional[HiCacheStorageExtraInfo] = None) -> dict[str, List[bool]]:
        """The DSA write rule: an INDEXER (or KV) transfer writes its pages whole, latent and
        indexer from the registered pools at the transfer's host slots, so the KV write that
        follows finds them stored. {transfer.name: one bool per key}."""
        results: dict[str, List[bool]] = {}
        for t in transfers:
            keys = list(t.keys or [])
            if t.name not in STREAM_OF_POOL:
                logger.error("cxlkv.sglang batch_set_v2: pool %s is not stored", t.name)
                results[t.name] = [False] * len(keys)
            else:
                results[t.name] = self._write_from_host("batch_set_v2", keys, t.host_indices,
                                                        _parent_key(extra_info))
        return results

    # -- generic path (flat pages) --

    def get(self, key: str, target_location: Optional[Any] = None,
            target_sizes: Optional[Any] = None) -> "torch.Tensor | None":
        """The page's latent in a flat page (target_location, else a new one from the KV host
        pool's get_dummy_flat_data_page()), ordered as the KV host pool's layout; None on a miss."""
        return self.batch_get([key], None if target_location is None else [target_location])[0]

    def batch_get(self, keys: List[str], target_locations: Optional[Any] = None,
                  target_sizes: Optional[Any] = None) -> "List[torch.Tensor | None]":
        """get() per key: the flat pages of the stored leading pages, None from the first miss."""
        out: "List[torch.Tensor | None]" = [None] * len(keys)
        start = time.perf_counter()

        def fill(lease: ReadLease, page: int, i: int) -> None:
            self._fetch_block(lease, page, "latent", blocks[i])
            out[i] = targets[i]

        try:
            kv = self._need(self._kv, "KV", "batch_get")
            targets = list(target_locations) if target_locations is not None else \
                [kv.pool.get_dummy_flat_data_page() for _ in keys]
            if len(targets) != len(keys):
                raise InvalidArgument(f"{len(targets)} target locations for {len(keys)} keys")
            blocks = [flat_page_block(t, kv, self.layout) for t in targets]
            with self._client.use() as client:
                self._visit_stored(client, keys, fill)
        except Error as e:
            self._log_failure("batch_get", out.count(None), e)
        self._record("prefetch", len(keys) - out.count(None), self._page_bytes["latent"], start)
        return out

    def set(self, key: str, value: Optional[Any] = None, target_location: Optional[Any] = None,
            target_sizes: Optional[Any] = None) -> bool:
        """Stores a flat page's latent under key (see batch_set)."""
        return self.batch_set([key], [value])

    def batch_set(self, keys: List[str], values: Optional[Any] = None, target_locations: Optional[Any] = None,
                  target_sizes: Optional[Any] = None) -> bool:
        """Stores flat pages (get_data_page(..., flat=True)) under keys; True when every page is
        stored. A flat page carries latent only: on a layout with an indexer stream it succeeds
        for pages batch_set_v2 already wrote and fails for the others (DSA write rule)."""
        try:
            kv = self._need(self._kv, "KV", "batch_set")
            blocks = [flat_page_block(v, kv, self.layout) for v in (values or [])]
            if len(blocks) != len(keys):
                raise InvalidArgument(f"{len(blocks)} values for {len(keys)} keys")
        except Error as e:
            self._log_failure("batch_set", len(keys), e)
            return False
        return all(self._write("batch_set", keys, {"latent": blocks.__getitem__}, parent=None))

    # -- lifecycle --

    def clear(self) -> None:
        """Refused (NotImplementedError): the namespace (tenant, model) is shared by every rank and
        engine serving the model; pages leave by the pool's LRU eviction or Client.remove(keys)."""
        raise NotImplementedError(f"cxlkv.sglang: clear() is refused: namespace ({self.tenant}, {self.model}) on "
                                  f"{self.endpoint} is shared by every rank and engine of the model; pages leave "
                                  "by the pool's eviction or cxlkv.Client.remove(keys). Nothing was removed")

    def get_stats(self) -> Any:
        """SGLang's StorageMetrics (pages and GB/s per call since the last call) when the engine
        enabled storage metrics, else None."""
        if not self._metrics:
            return None
        from sglang.srt.observability.metrics_collector import StorageMetrics  # only the metrics path needs it
        return self._throughput.drain_into(StorageMetrics())

    def close(self) -> None:
        """Waits for the calls in flight, then disconnects; later calls report failures. Idempotent."""
        self._client.close()

    # -- internals --

    def _need(self, pages: HostPages | None, pool: str, op: str) -> HostPages:
        if pages is None:
            raise InvalidArgument(f"{op}: no {pool} host pool is registered")
        return pages

    def _visit_stored(self, client: Client, keys: Sequence[str], visit: Callable[[ReadLease, int, int], None]) -> int:
        """Calls visit(lease, page in the lease, key index) for each stored leading page, one read
        lease per PAGES_PER_LEASE keys up to the first miss; returns how many pages are stored."""
        stored = 0
        for first in range(0, len(keys), PAGES_PER_LEASE):
            run = keys[first:first + PAGES_PER_LEASE]
            with client.lookup(run) as lease:
                for j in range(lease.pages):
                    visit(lease, j, first + j)
                stored += lease.pages
            if lease.pages < len(run):
                break
        return stored

    def _stored_prefix(self, client: Client, keys: Sequence[str]) -> int:
        return self._visit_stored(client, keys, lambda lease, j, i: None)

    def _fetch_block(self, lease: ReadLease, page: int, stream: str, block: "torch.Tensor") -> None:
        for layer in range(self.layout.layers):
            fetch_run(lease, page, stream, layer, block[layer])

    def _read_into_host(self, op: str, keys: Sequence[str], host_indices: Any, pages: HostPages | None,
                        stream: str) -> List[bool]:
        start = time.perf_counter()
        done = [False] * len(keys)

        def fill(lease: ReadLease, page: int, i: int) -> None:
            self._fetch_block(lease, page, stream, host.block(slots[i]))
            done[i] = True

        try:
            host = self._need(pages, POOL_OF_STREAM[stream].name, op)
            slots = host_indices_slots(keys, host_indices, self.layout.page_tokens)
            with self._client.use() as client:
                self._visit_stored(client, keys, fill)
        except Error as e:
            self._log_failure(op, done.count(False), e)
        self._record("prefetch", done.count(True), self._page_bytes[stream], start)
        return done

    def _write_from_host(self, op: str, keys: Sequence[str], host_indices: Any, parent: Optional[str]) -> List[bool]:
        try:
            slots = host_indices_slots(keys, host_indices, self.layout.page_tokens)
        except Error as e:
            self._log_failure(op, len(keys), e)
            return [False] * len(keys)
        sources: dict[str, Blocks] = {}
        for stream, host in (("latent", self._kv), ("indexer", self._indexer)):
            if host is not None and stream in self._page_bytes:
                sources[stream] = lambda i, host=host: host.block(slots[i])
        return self._write(op, keys, sources, parent)

    def _write(self, op: str, keys: Sequence[str], sources: dict[str, Blocks], parent: Optional[str]) -> List[bool]:
        """Writes keys' pages whole from sources (stream -> page i -> block), PAGES_PER_LEASE per
        lease, each lease chained to the previous one; stops at the first lease that fails."""
        start = time.perf_counter()
        results: List[bool] = []
        written = 0
        missing = [s.name for s in self.layout.streams if s.name not in sources]
        try:
            with self._client.use() as client:
                for first in range(0, len(keys), PAGES_PER_LEASE):
                    run = keys[first:first + PAGES_PER_LEASE]
                    run_parent = parent if first == 0 else keys[first - 1]
                    stored, new = self._write_lease(client, run, run_parent, first, sources, missing, op)
                    results += stored
                    written += new
                    if not all(stored):
                        break
        except Error as e:
            self._log_failure(op, len(keys) - len(results), e)
        self._record("backup", written, sum(self._page_bytes.values()), start)
        return results + [False] * (len(keys) - len(results))

    def _write_lease(self, client: Client, keys: Sequence[str], parent: Optional[str], first: int,
                     sources: dict[str, Blocks], missing: list[str], op: str) -> tuple[List[bool], int]:
        """One write lease: (one bool per key, pages newly committed). Pages cxlkv flags cached or
        in flight elsewhere are True without a write; with a stream missing, nothing is written."""
        with client.reserve(keys, parent=parent) as lease:
            writable = [lease.writable(j) for j in range(len(keys))]
            if missing and any(writable):
                pools = " or ".join(POOL_OF_STREAM[s].name for s in missing)
                logger.error("cxlkv.sglang %s: %d pages not stored: no %s host pool registered to write their "
                             "%s stream from (a page is stored whole or not at all)", op, sum(writable), pools,
                             " and ".join(missing))
                return [not w for w in writable], 0  # the lease aborts on leaving the block
            for j, w in enumerate(writable):
                if w:
                    for stream, blocks_of in sources.items():
                        block = blocks_of(first + j)
                        for layer in range(self.layout.layers):
                            write_run(lease, j, stream, layer, block[layer])
            return [True] * len(keys), lease.commit()

    def _record(self, kind: str, pages: int, page_bytes: int, start: float) -> None:
        if self._metrics:
            self._throughput.add(kind, pages, page_bytes, time.perf_counter() - start)

    def _log_failure(self, op: str, pages: int, error: Error) -> None:
        logger.warning("cxlkv.sglang %s: %d pages failed: %s", op, pages, error)
