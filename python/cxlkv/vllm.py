"""cxlkv.vllm: vLLM's V1 KV connector over a cxlkv pool, for DeepSeek-V3.2's MLA cache.

Owns the mapping of vLLM's paged caches onto cxlkv calls, and nothing of the pool itself: which
whole 64-token pages of a prompt the pool holds (scheduler side), and the copies between pool
pages and vLLM's blocks (worker side). vLLM loads it out of tree and calls it; nothing in cxlkv
calls it:

    vllm serve deepseek-ai/DeepSeek-V3.2 --kv-cache-dtype fp8 --kv-transfer-config '{
      "kv_connector": "CxlkvConnector", "kv_connector_module_path": "cxlkv.vllm", "kv_role": "kv_both",
      "kv_connector_extra_config": {"endpoint": "unix:/run/cxlkv/pool.sock", "tenant": "t", "token": "s"}}'

endpoint, tenant and token come from kv_connector_extra_config, else from CXLKV_ENDPOINT,
CXLKV_TENANT and CXLKV_TOKEN; the pool namespace's model is extra config "model", else
model_config.model (not the served name: two deployments may serve different weights under one
name, and sharing pages between them would be wrong).

What maps to what (DeepSeek-V3.2 with --kv-cache-dtype fp8, FLASHMLA_SPARSE):
- `model.layers.{i}.self_attn.attn`, uint8 [blocks][64][656] (fp8_ds_mla), is the pool's `latent`
  stream of layer i; `model.layers.{i}.self_attn.indexer.k_cache`, uint8 [blocks][64][132], is its
  `indexer` stream. A pool page is one vLLM block: 64 tokens, the same block ids for both. The
  indexer block is block-major inside (64 x 128 fp8 keys, then 64 x 4 fp32 scales), so it is
  copied whole, bytes as they are; a pool indexer page run is exactly those 8,448 bytes.
- Page keys are cxlkv's chained keys of the prompt's tokens (Client.page_keys), computed by the
  scheduler and carried to the workers in the metadata. vLLM's own block hashes are not used: they
  are seeded per process unless PYTHONHASHSEED is fixed, so two engines would not agree. Requests
  whose cache depends on more than their tokens (multimodal inputs, a LoRA adapter, a cache salt,
  prompt embeddings) are neither looked up nor saved.

Synchronous by design: get_num_new_matched_tokens says False (no async load). start_load_kv copies
every layer, indexer included, before the forward (the indexer of layer i reads its cache before
the MLA layer's wait_for_layer_load hook would run), and wait_for_save writes after it. The
per-layer hooks do nothing, so FULL CUDA graphs (which skip them) lose nothing.

Tensor parallel: the MLA latent and indexer caches are replicated on every TP rank (one KV head),
so every rank loads and only TP rank 0 writes. The rank is vLLM's TP group rank
(vllm.distributed.parallel_state.get_tensor_model_parallel_rank(), initialized before vLLM builds
the worker's connector). Decode/prefill context parallelism split the tokens across ranks and are
refused; pipeline parallelism fails the layer-count check (a stage holds only some layers)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch

from vllm.distributed.kv_transfer.kv_connector.v1.base import (KVConnectorBase_V1, KVConnectorMetadata,
                                                                KVConnectorRole)

from ._buffers import describe
from .client import Client, Layout, ReadLease
from .errors import Error, InvalidArgument

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

logger = logging.getLogger(__name__)

__all__ = ["CxlkvConnector", "CxlkvConnectorMetadata", "PageLoad", "PageSave", "PoolSettings"]


# ---------------------------------------------------------------------------------------------
# Configuration

@dataclass(frozen=True)
class PoolSettings:
    """Where the pool is and whose namespace this engine's pages live in."""
    endpoint: str
    tenant: str
    token: str
    model: str

    @classmethod
    def of(cls, vllm_config: "VllmConfig") -> "PoolSettings":
        """From kv_connector_extra_config, else the CXLKV_* environment; refuses a missing endpoint."""
        extra = vllm_config.kv_transfer_config

        def setting(key: str, env: str) -> str:
            return str(extra.get_from_extra_config(key, None) or os.environ.get(env, ""))

        endpoint = setting("endpoint", "CXLKV_ENDPOINT")
        if not endpoint:
            raise InvalidArgument('cxlkv.vllm: no pool endpoint: set kv_connector_extra_config {"endpoint": '
                                  '"unix:/run/cxlkv/pool.sock"} or CXLKV_ENDPOINT')
        model = str(extra.get_from_extra_config("model", None) or vllm_config.model_config.model or "")
        if not model:
            raise InvalidArgument("cxlkv.vllm: no model for the pool namespace: model_config.model is empty; "
                                  'set kv_connector_extra_config {"model": ...}')
        return cls(endpoint, setting("tenant", "CXLKV_TENANT"), setting("token", "CXLKV_TOKEN"), model)

    def connect(self) -> Client:
        return Client(self.endpoint, self.tenant, self.token, self.model)


# ---------------------------------------------------------------------------------------------
# Metadata: what the scheduler tells the workers each step (pickled across processes)

@dataclass
class PageLoad:
    """Pool pages keys[i] into vLLM block block_ids[i] of every layer, both streams."""
    req_id: str
    keys: list[bytes]
    block_ids: list[int]


@dataclass
class PageSave:
    """vLLM blocks block_ids[i] of every layer into pool page keys[i]; `parent` is the key of the
    page before keys[0] (None at the prompt's start)."""
    req_id: str
    parent: bytes | None
    keys: list[bytes]
    block_ids: list[int]


@dataclass
class CxlkvConnectorMetadata(KVConnectorMetadata):
    """One step's loads (run in start_load_kv) and saves (run in wait_for_save)."""
    loads: list[PageLoad] = field(default_factory=list)
    saves: list[PageSave] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Scheduler side

def cacheable_prompt(request: "Request") -> list[int] | None:
    """The prompt's tokens when its KV depends on them alone, else None."""
    if request.prompt_token_ids is None:  # prompt embeddings
        return None
    if getattr(request, "mm_features", None) or getattr(request, "lora_request", None) is not None \
            or getattr(request, "cache_salt", None) is not None:
        return None
    return list(request.prompt_token_ids)


@dataclass
class _Allocated:
    """A request scheduled from the waiting queue this step (update_state_after_alloc)."""
    prompt: list[int]
    block_ids: list[int]
    external_tokens: int


@dataclass
class _Prefill:
    """A prompt being computed: its page keys, its blocks so far, and the pages already saved."""
    keys: list[bytes]
    block_ids: list[int]
    saved: int


def computed_tokens_of(scheduler_output: "SchedulerOutput") -> dict[str, int]:
    """Tokens each scheduled request had computed (local + external) before this step."""
    computed = {r.req_id: r.num_computed_tokens for r in scheduler_output.scheduled_new_reqs}
    cached = scheduler_output.scheduled_cached_reqs
    computed.update(zip(cached.req_ids, cached.num_computed_tokens))
    return computed


class _SchedulerSide:
    """Lookups of a prompt's whole pages, and the step's loads and saves as metadata."""

    def __init__(self, client: Client, load: bool, save: bool) -> None:
        self._client = client
        self._page_tokens = client.layout.page_tokens
        self._load, self._save = load, save
        self._allocated: dict[str, _Allocated] = {}
        self._prefills: dict[str, _Prefill] = {}

    def matched_tokens(self, request: "Request", num_computed_tokens: int) -> tuple[int, bool]:
        # Whole pages of the prompt but its last token: the engine must compute at least one.
        prompt = cacheable_prompt(request) if self._load else None
        if not prompt:
            return 0, False
        usable = (len(prompt) - 1) // self._page_tokens * self._page_tokens
        if usable <= num_computed_tokens:
            return 0, False
        try:
            with self._client.lookup(self._client.page_keys(prompt[:usable])) as lease:
                hit = lease.prefix_tokens
        except Error as e:  # a pool out of reach is a miss, not a failed request
            logger.warning("cxlkv.vllm: lookup of request %s failed, treated as a miss: %s", request.request_id, e)
            return 0, False
        return max(hit - num_computed_tokens, 0), False

    def allocated(self, request: "Request", blocks: "KVCacheBlocks", num_external_tokens: int) -> None:
        prompt = cacheable_prompt(request)
        if prompt is None or len(prompt) < self._page_tokens:
            return
        self._allocated[request.request_id] = _Allocated(prompt, list(blocks.get_block_ids()[0]),
                                                         num_external_tokens)

    def metadata(self, scheduler_output: "SchedulerOutput") -> CxlkvConnectorMetadata:
        meta = CxlkvConnectorMetadata()
        computed = computed_tokens_of(scheduler_output)
        for req_id, alloc in self._allocated.items():
            if req_id in computed:
                self._start(req_id, alloc, computed[req_id], meta)
        self._allocated.clear()
        self._extend_blocks(scheduler_output)
        if self._save:
            for req_id in [r for r in self._prefills if r in computed]:
                self._save_ready_pages(req_id, computed[req_id] + scheduler_output.num_scheduled_tokens.get(req_id, 0),
                                       meta)
        else:
            self._prefills.clear()
        return meta

    def _start(self, req_id: str, alloc: _Allocated, computed: int, meta: CxlkvConnectorMetadata) -> None:
        """A request new (or resumed) this step: its load, and its prompt's saves from here on."""
        keys = self._client.page_keys(alloc.prompt)
        loaded_end = 0
        if alloc.external_tokens > 0:
            first, loaded_end = (computed - alloc.external_tokens) // self._page_tokens, computed // self._page_tokens
            meta.loads.append(PageLoad(req_id, keys[first:loaded_end], alloc.block_ids[first:loaded_end]))
        # Pages before the load's end were in the pool at lookup; earlier ones (a local hit) may not be,
        # and reserve flags the ones it already holds.
        self._prefills[req_id] = _Prefill(keys, alloc.block_ids, loaded_end)

    def _extend_blocks(self, scheduler_output: "SchedulerOutput") -> None:
        cached = scheduler_output.scheduled_cached_reqs
        for req_id, new_ids in zip(cached.req_ids, cached.new_block_ids):
            prefill = self._prefills.get(req_id)
            if prefill is not None and new_ids is not None and req_id not in cached.resumed_req_ids:
                prefill.block_ids.extend(new_ids[0])

    def _save_ready_pages(self, req_id: str, computed_end: int, meta: CxlkvConnectorMetadata) -> None:
        """The prompt pages whole once this step has run, not saved yet."""
        prefill = self._prefills[req_id]
        ready = min(computed_end // self._page_tokens, len(prefill.keys), len(prefill.block_ids))
        if ready > prefill.saved:
            parent = prefill.keys[prefill.saved - 1] if prefill.saved else None
            meta.saves.append(PageSave(req_id, parent, prefill.keys[prefill.saved:ready],
                                       prefill.block_ids[prefill.saved:ready]))
            prefill.saved = ready
        if prefill.saved == len(prefill.keys):
            del self._prefills[req_id]

    def finished(self, req_id: str) -> None:
        self._allocated.pop(req_id, None)
        self._prefills.pop(req_id, None)


# ---------------------------------------------------------------------------------------------
# Worker side

# vLLM's names of DeepSeek-V3.2's cache layers (deepseek_v2.py), by the pool stream they map to.
LAYER_NAMES = {
    "latent": re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn\.attn$"),
    "indexer": re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn\.indexer\.k_cache$"),
}
VLLM_NAMES = {"latent": "model.layers.{i}.self_attn.attn", "indexer": "model.layers.{i}.self_attn.indexer.k_cache"}
# What fixes a wrong per-token size, by stream.
ENTRY_HINT = {"latent": " (DeepSeek-V3.2's fp8_ds_mla cache is 656 B: serve with --kv-cache-dtype fp8)", "indexer": ""}


def _stream_of(name: str) -> tuple[str, int]:
    for stream, pattern in LAYER_NAMES.items():
        m = pattern.search(name)
        if m:
            return stream, int(m.group(1))
    raise InvalidArgument(f"cxlkv.vllm: KV cache layer {name!r} is neither an MLA layer "
                          f"({VLLM_NAMES['latent']}) nor an indexer cache ({VLLM_NAMES['indexer']})")


def _check_cache(name: str, cache: torch.Tensor, stream: str, layout: Layout) -> None:
    """A cache must be [blocks][page_tokens][entry bytes], contiguous, as the pool's stream is."""
    entry = layout.stream(stream).entry_bytes
    if cache.dim() != 3:
        raise InvalidArgument(f"cxlkv.vllm: {name} is {describe(cache)}: a [blocks][block size][entry] cache "
                              "is expected")
    if cache.shape[1] != layout.page_tokens:
        raise InvalidArgument(f"cxlkv.vllm: {name} has {cache.shape[1]}-token blocks, the pool's pages (layout "
                              f"{layout.name}) are {layout.page_tokens} tokens: serve with --block-size "
                              f"{layout.page_tokens}")
    token_bytes = cache.shape[2] * cache.element_size()
    if token_bytes != entry:
        raise InvalidArgument(f"cxlkv.vllm: {name} is {describe(cache)}: {token_bytes} B per token, the pool's "
                              f"{stream} entries (layout {layout.name}) are {entry} B{ENTRY_HINT[stream]}")
    if not cache.is_contiguous():
        raise InvalidArgument(f"cxlkv.vllm: {name} is {describe(cache)} and not contiguous")


def paged_caches(kv_caches: dict[str, torch.Tensor], layout: Layout) -> dict[str, list[torch.Tensor]]:
    """vLLM's caches by pool stream, each a list indexed by layer; refuses any mismatch with the
    pool's layout, naming both sides."""
    unmapped = [s.name for s in layout.streams if s.name not in LAYER_NAMES]
    if unmapped:
        raise InvalidArgument(f"cxlkv.vllm: the pool's layout {layout.name} has stream(s) {', '.join(unmapped)} that "
                              f"vLLM's caches do not hold as such; this connector fills {' and '.join(LAYER_NAMES)} "
                              "(layout deepseek-v3.2)")
    by_stream: dict[str, dict[int, torch.Tensor]] = {s.name: {} for s in layout.streams}
    for name, cache in kv_caches.items():
        stream, layer = _stream_of(name)
        if stream not in by_stream:
            raise InvalidArgument(f"cxlkv.vllm: {name} needs a {stream!r} stream; the pool's layout {layout.name} "
                                  f"has {', '.join(by_stream)}")
        _check_cache(name, cache, stream, layout)
        by_stream[stream][layer] = cache
    for stream, layers in by_stream.items():
        if sorted(layers) != list(range(layout.layers)):
            raise InvalidArgument(f"cxlkv.vllm: the engine registered {len(layers)} layers of {VLLM_NAMES[stream]} "
                                  f"(i in {sorted(layers)[:8]}{'...' if len(layers) > 8 else ''}), the pool's layout "
                                  f"{layout.name} has {layout.layers} layers (0..{layout.layers - 1})")
    caches = {stream: [layers[i] for i in range(layout.layers)] for stream, layers in by_stream.items()}
    devices = {str(c.device) for layers in caches.values() for c in layers}
    if len(devices) > 1:
        raise InvalidArgument(f"cxlkv.vllm: the KV caches are on several devices: {', '.join(sorted(devices))}")
    return caches


def block_runs(block_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first index, first block, count) of each run of consecutive block ids, so a run of pages is
    one copy into cache[block:block + count]."""
    runs: list[tuple[int, int, int]] = []
    for i, block in enumerate(block_ids):
        if runs and runs[-1][1] + runs[-1][2] == block:
            first, start, count = runs[-1]
            runs[-1] = (first, start, count + 1)
        else:
            runs.append((i, block, 1))
    return runs


def blocks_on_host(cache: torch.Tensor, block_ids: Sequence[int]) -> Sequence[torch.Tensor]:
    """cache[block] for each block, in host memory: views of a CPU cache, one copy of a CUDA one."""
    if cache.device.type == "cpu":
        return [cache[b] for b in block_ids]
    index = torch.tensor(list(block_ids), dtype=torch.long, device=cache.device)
    return cache.index_select(0, index).cpu().unbind(0)


def tensor_parallel_rank() -> int:
    """This worker's rank in vLLM's tensor-parallel group."""
    from vllm.distributed.parallel_state import get_tensor_model_parallel_rank
    return int(get_tensor_model_parallel_rank())


def refuse_split_tokens(vllm_config: "VllmConfig") -> None:
    """Context parallelism spreads one request's tokens over ranks: a rank's blocks are not whole pages."""
    parallel = vllm_config.parallel_config
    for knob in ("decode_context_parallel_size", "prefill_context_parallel_size"):
        size = getattr(parallel, knob, 1)
        if size != 1:
            raise InvalidArgument(f"cxlkv.vllm: {knob} = {size}: each rank then holds part of a request's tokens, "
                                  "and the pool stores whole pages; serve with context parallelism off")


class _WorkerSide:
    """Copies between pool pages and vLLM's paged caches: loads on every rank, saves on rank 0."""

    def __init__(self, client: Client, rank: int) -> None:
        self._client = client
        self.rank = rank
        self._caches: dict[str, list[torch.Tensor]] | None = None
        self._gpu: Any = None
        self._load_errors: set[int] = set()

    def register(self, kv_caches: dict[str, torch.Tensor]) -> None:
        caches = paged_caches(kv_caches, self._client.layout)
        if caches[self._client.layout.streams[0].name][0].device.type == "cuda":
            from .gpu import GpuPool  # libcxlkv_gpu: only where CUDA is
            self._gpu = GpuPool(self._client)
        self._caches = caches

    def _registered(self) -> dict[str, list[torch.Tensor]]:
        if self._caches is None:
            raise RuntimeError("cxlkv.vllm: the worker has no KV caches yet: register_kv_caches was not called")
        return self._caches

    def load(self, loads: Iterable[PageLoad]) -> None:
        for load in loads:
            self._load(load)

    def _load(self, load: PageLoad) -> None:
        caches = self._registered()
        try:
            lease = self._client.lookup(load.keys)
        except Error as e:
            logger.warning("cxlkv.vllm: lookup for request %s failed, its blocks are load errors: %s", load.req_id, e)
            self._load_errors.update(load.block_ids)
            return
        try:
            present = min(lease.pages, len(load.keys))  # pages evicted or removed since the scheduler's lookup
            self._load_errors.update(load.block_ids[present:])
            for first, block, count in block_runs(load.block_ids[:present]):
                for stream, layers in caches.items():
                    for layer, cache in enumerate(layers):
                        self._fetch(lease, stream, layer, first, first + count, cache[block:block + count])
        except Error as e:
            logger.warning("cxlkv.vllm: load for request %s failed, its blocks are load errors: %s", load.req_id, e)
            self._load_errors.update(load.block_ids)
        finally:
            if self._gpu is not None:  # the lease pins the pages the queued copies read
                torch.cuda.current_stream().synchronize()
            lease.release()

    def _fetch(self, lease: ReadLease, stream: str, layer: int, p0: int, p1: int, out: torch.Tensor) -> None:
        if out.device.type == "cuda":
            self._gpu.fetch_pages(lease, stream, layer, out, p0, p1)
        else:
            lease.fetch_pages(stream, layer, p0, p1, out=out)

    def save(self, saves: Iterable[PageSave]) -> None:
        if self.rank != 0:  # the caches are replicated: rank 0's copy is every rank's
            return
        for save in saves:
            self._save(save)

    def _save(self, save: PageSave) -> None:
        caches = self._registered()
        try:
            with self._client.reserve(save.keys, save.parent) as lease:
                # Pages already cached or being written elsewhere are not writable: they are skipped.
                pages = [p for p in range(min(lease.pages, len(save.block_ids))) if lease.writable(p)]
                blocks = [save.block_ids[p] for p in pages]
                for stream, layers in caches.items():
                    for layer, cache in enumerate(layers):
                        for page, rows in zip(pages, blocks_on_host(cache, blocks)):
                            lease.write(page, stream, layer, rows)
                lease.commit()
        except Error as e:  # a full pool or a lost daemon costs the pages, never the request
            logger.warning("cxlkv.vllm: save of request %s (%d pages) failed: %s", save.req_id, len(save.keys), e)

    def take_load_errors(self) -> set[int]:
        errors, self._load_errors = self._load_errors, set()
        return errors

    def close(self) -> None:
        if self._gpu is not None:
            self._gpu.close()
            self._gpu = None


# ---------------------------------------------------------------------------------------------
# The connector vLLM instantiates: one per scheduler, one per worker

class CxlkvConnector(KVConnectorBase_V1):
    """vLLM's KV connector over a cxlkv pool (module docstring: configuration, mapping, design).
    The scheduler-side instance answers the scheduler's calls and the worker-side one the model
    runner's; a call meant for the other side raises RuntimeError naming it."""

    def __init__(self, vllm_config: "VllmConfig", role: KVConnectorRole,
                 kv_cache_config: "KVCacheConfig | None" = None) -> None:
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        settings = PoolSettings.of(vllm_config)
        self._scheduler: _SchedulerSide | None = None
        self._worker: _WorkerSide | None = None
        if role == KVConnectorRole.WORKER:
            refuse_split_tokens(vllm_config)
            rank = tensor_parallel_rank()
            self._client = settings.connect()
            self._worker = _WorkerSide(self._client, rank)
        else:
            self._client = settings.connect()
            block_size = vllm_config.cache_config.block_size
            if block_size != self._client.layout.page_tokens:
                self._client.close()
                raise InvalidArgument(f"cxlkv.vllm: block size {block_size}, the pool's pages (layout "
                                      f"{self._client.layout.name}) are {self._client.layout.page_tokens} tokens: "
                                      f"serve with --block-size {self._client.layout.page_tokens}")
            config = self._kv_transfer_config
            self._scheduler = _SchedulerSide(self._client, load=config.is_kv_consumer, save=config.is_kv_producer)

    def _scheduler_side(self, method: str) -> _SchedulerSide:
        if self._scheduler is None:
            raise RuntimeError(f"cxlkv.vllm: {method} is a scheduler-side call, made on the {self.role.name} connector")
        return self._scheduler

    def _worker_side(self, method: str) -> _WorkerSide:
        if self._worker is None:
            raise RuntimeError(f"cxlkv.vllm: {method} is a worker-side call, made on the {self.role.name} connector")
        return self._worker

    def _bound(self) -> CxlkvConnectorMetadata | None:
        if not self.has_connector_metadata():
            return None
        meta = self._get_connector_metadata()
        if not isinstance(meta, CxlkvConnectorMetadata):
            raise TypeError(f"cxlkv.vllm: bound metadata is {type(meta).__name__}, CxlkvConnectorMetadata expected")
        return meta

    # --- worker side

    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]):
        """Maps each MLA and indexer cache to its pool stream and layer; refuses a layout mismatch."""
        self._worker_side("register_kv_caches").register(kv_caches)

    def register_cross_layers_kv_cache(self, kv_cache: torch.Tensor, attn_backend: type):
        """Refused: the pool's streams are per layer (and vLLM's V3.2 indexer backend refuses the
        cross-layer layout); prefer_cross_layer_blocks is False, so vLLM never asks for it."""
        raise NotImplementedError("cxlkv.vllm: cross-layer KV cache blocks are not supported; the connector "
                                  "maps per-layer caches (register_kv_caches)")

    def set_host_xfer_buffer_ops(self, copy_operation: Any):
        """Nothing to set: there is no host staging buffer; the pool is mapped memory."""
        return

    def handle_preemptions(self, kv_connector_metadata: KVConnectorMetadata):
        """Nothing to do: saves finish in the step's wait_for_save, so none is in flight when vLLM
        frees a preempted request's blocks."""
        return

    def start_load_kv(self, forward_context: "ForwardContext", **kwargs: Any) -> None:
        """Copies every bound load's pages into vLLM's blocks, every layer and both streams, before
        the forward. It reads nothing of forward_context (its attn_metadata is None on steps with
        no forward), only the bound metadata; with none bound it does nothing."""
        meta = self._bound()
        if meta is not None and meta.loads:
            self._worker_side("start_load_kv").load(meta.loads)

    def wait_for_layer_load(self, layer_name: str) -> None:
        """Nothing to wait for: start_load_kv returns with every layer loaded."""
        return

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: Any, **kwargs: Any) -> None:
        """Nothing per layer: wait_for_save writes every layer of a page under one write lease (a page
        is published whole), and this hook does not run under FULL CUDA graphs."""
        return

    def wait_for_save(self):
        """Writes the bound saves' pages (rank 0 only): reserve, every layer of both streams from the
        registered caches, commit."""
        meta = self._bound()
        if meta is not None and meta.saves:
            self._worker_side("wait_for_save").save(meta.saves)

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        """(None, None): loads and saves are synchronous, nothing finishes later."""
        return None, None

    def get_block_ids_with_load_errors(self) -> set[int]:
        """Blocks whose pages vanished (evicted or removed) between the scheduler's lookup and the load,
        since the last call."""
        return self._worker_side("get_block_ids_with_load_errors").take_load_errors()

    def shutdown(self):
        """Releases the GPU mapping and disconnects."""
        if self._worker is not None:
            self._worker.close()
        self._client.close()

    # --- scheduler side

    def get_num_new_matched_tokens(self, request: "Request", num_computed_tokens: int) -> tuple[int | None, bool]:
        """Tokens of the request's whole prompt pages the pool holds past num_computed_tokens, never
        its last token; (n, False): loaded synchronously. No side effects (one lookup, released)."""
        return self._scheduler_side("get_num_new_matched_tokens").matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request: "Request", blocks: "KVCacheBlocks", num_external_tokens: int):
        """Remembers the request's blocks for this step's load (num_external_tokens > 0) and saves."""
        self._scheduler_side("update_state_after_alloc").allocated(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: "SchedulerOutput") -> KVConnectorMetadata:
        """This step's loads and saves (the prompt pages whole once the step has run)."""
        return self._scheduler_side("build_connector_meta").metadata(scheduler_output)

    def request_finished(self, request: "Request", block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        """(False, None): nothing is in flight, vLLM may free the blocks now."""
        self._scheduler_side("request_finished").finished(request.request_id)
        return False, None

    def reset_cache(self) -> bool | None:
        """False: the pool is shared by engines and tenants and is not cleared from here
        (Client.remove frees chosen pages)."""
        return False

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config: dict[str, Any]) -> bool:
        """False: the per-layer hooks do nothing, so FULL CUDA graphs skipping them lose nothing."""
        return False
