"""Specification of cxlkv.vllm, vLLM's V1 KV connector, against a real daemon, driven in the
engine's own call order: a scheduler-side instance and one worker-side instance per TP rank, the
metadata pickled between them, the model runner's hooks around a stand-in forward that writes
each step's tokens into DeepSeek-V3.2-shaped paged caches (MLA uint8 [blocks][64][656], indexer
uint8 [blocks][64][132] block-major). Pages saved by one request come back byte-exact into
another request's blocks; removed pages are a miss, or a load error when they vanish after the
lookup; rank 1 never writes; a mismatched configuration is refused by name; and every method
vLLM calls is implemented or refused with upstream's parameters (commit 9aaf83ef)."""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

STANDINS = str(Path(__file__).resolve().parent / "standins")
if STANDINS not in sys.path:  # shared with the other engines' stand-ins
    sys.path.insert(0, STANDINS)

from vllm.config import CacheConfig, KVTransferConfig, ModelConfig, ParallelConfig, VllmConfig  # noqa: E402
from vllm.distributed import parallel_state  # noqa: E402
from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1, KVConnectorRole  # noqa: E402
from vllm.forward_context import ForwardContext  # noqa: E402
from vllm.v1.core.kv_cache_manager import KVCacheBlocks  # noqa: E402
from vllm.v1.core.sched.output import CachedRequestData, NewRequestData, SchedulerOutput  # noqa: E402
from vllm.v1.request import Request  # noqa: E402

import cxlkv  # noqa: E402
from cxlkv.vllm import CxlkvConnector, CxlkvConnectorMetadata, block_runs  # noqa: E402

from conftest import TENANT, TOKEN, Daemon  # noqa: E402

PAGE, LAYERS, LATENT, INDEXER, K_BYTES = 64, 4, 656, 132, 128
BLOCKS = 64
MLA = "model.layers.{}.self_attn.attn"
INDEXER_CACHE = "model.layers.{}.self_attn.indexer.k_cache"
SCHEDULER, WORKER = KVConnectorRole.SCHEDULER, KVConnectorRole.WORKER


# --- the engine's configuration and its connector factory ------------------------------------

def vllm_config(endpoint: str | None, model: str, *, block_size: int = PAGE, role: str = "kv_both",
                tp: int = 1, extra: dict[str, Any] | None = None, **parallel: int) -> VllmConfig:
    if extra is None:
        extra = {"endpoint": endpoint, "tenant": TENANT, "token": TOKEN}
    return VllmConfig(model_config=ModelConfig(model=model), cache_config=CacheConfig(block_size=block_size),
                      parallel_config=ParallelConfig(tensor_parallel_size=tp, **parallel),
                      kv_transfer_config=KVTransferConfig(kv_connector="CxlkvConnector",
                                                          kv_connector_module_path="cxlkv.vllm", kv_role=role,
                                                          kv_connector_extra_config=extra))


def make_connector(config: VllmConfig, role: KVConnectorRole, rank: int = 0) -> KVConnectorBase_V1:
    """What KVConnectorFactory.create_connector does for an out-of-tree module path."""
    kv = config.kv_transfer_config
    cls = getattr(importlib.import_module(kv.kv_connector_module_path), kv.kv_connector)
    assert "kv_cache_config" in inspect.signature(cls.__init__).parameters  # the factory's supports_kw check
    parallel_state.set_tensor_model_parallel(rank, config.parallel_config.tensor_parallel_size)
    return cls(config, role, None)


# --- a stand-in model runner: paged caches and a forward that writes each step's tokens ------

def new_caches(seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """One worker's paged caches, filled with noise so that a load which writes nothing shows."""
    g = torch.Generator().manual_seed(seed)
    caches = {}
    for i in range(LAYERS):
        for name, width in ((MLA.format(i), LATENT), (INDEXER_CACHE.format(i), INDEXER)):
            caches[name] = torch.randint(0, 256, (BLOCKS, PAGE, width), dtype=torch.uint8, generator=g).to(device)
    return caches


def token_bytes(tokens: np.ndarray, positions: np.ndarray, layer: int, width: int, salt: int) -> torch.Tensor:
    """A token's cache bytes: a function of its id, position and layer, as a model's would be of its prefix."""
    j = np.arange(width)
    rows = (tokens[:, None] * 7 + positions[:, None] * 13 + j[None, :] * 3 + layer * 101 + salt) % 256
    return torch.from_numpy(rows.astype(np.uint8))


def forward(caches: dict[str, torch.Tensor], tokens: list[int], block_ids: list[int], start: int, end: int) -> None:
    """Writes tokens [start, end) as vLLM's kernels do: MLA rows per slot, and the indexer block
    block-major (token t's 128 fp8 keys at t*128, its 4-byte scale at 64*128 + t*4)."""
    for pos0 in range(start // PAGE * PAGE, end, PAGE):
        lo, hi = max(start, pos0), min(end, pos0 + PAGE)
        block, offsets = block_ids[pos0 // PAGE], np.arange(lo, hi) - pos0
        ids, positions = np.asarray(tokens[lo:hi]), np.arange(lo, hi)
        for layer in range(LAYERS):
            mla = caches[MLA.format(layer)]
            mla[block, torch.from_numpy(offsets)] = token_bytes(ids, positions, layer, LATENT, 1).to(mla.device)
            flat = caches[INDEXER_CACHE.format(layer)][block].view(-1)
            keys = token_bytes(ids, positions, layer, K_BYTES, 2).to(flat.device)
            scales = token_bytes(ids, positions, layer, 4, 3).to(flat.device)
            for t, o in enumerate(offsets):
                flat[o * K_BYTES:(o + 1) * K_BYTES] = keys[t]
                flat[PAGE * K_BYTES + o * 4:PAGE * K_BYTES + o * 4 + 4] = scales[t]


def cache_layers() -> list[str]:
    return [name for i in range(LAYERS) for name in (MLA.format(i), INDEXER_CACHE.format(i))]


@dataclass
class Worker:
    connector: KVConnectorBase_V1
    caches: dict[str, torch.Tensor]
    load_errors: list[set[int]] = field(default_factory=list)


@dataclass
class Running:
    request: Request
    block_ids: list[int]
    computed: int = 0


class Engine:
    """vLLM's calls to a KV connector, in its order: the scheduler's per waiting request
    (get_num_new_matched_tokens, update_state_after_alloc), build_connector_meta once per step,
    the metadata pickled to every worker, then the model runner's lifecycle around the forward."""

    def __init__(self, config: VllmConfig, ranks: int = 1, device: str = "cpu") -> None:
        self.scheduler = make_connector(config, SCHEDULER)
        self.workers = []
        for rank in range(ranks):
            worker = Worker(make_connector(config, WORKER, rank), new_caches(100 + rank, device))
            worker.connector.register_kv_caches(worker.caches)
            self.workers.append(worker)
        # Free blocks in runs of 1 to 4 consecutive ids, in no order: loads copy runs and single blocks.
        starts = np.random.default_rng(5).permutation(BLOCKS // 4)
        self.free = [b for s in starts for b in range(4 * s, 4 * s + 1 + s % 4)]
        self.running: dict[str, Running] = {}

    def allocate(self, n: int) -> list[int]:
        taken, self.free = self.free[:n], self.free[n:]
        assert len(taken) == n, "the test engine ran out of blocks"
        return taken

    def admit(self, request: Request, chunk: int | None = None) -> tuple[int, int, list[int]]:
        """The scheduler taking a waiting request: its external tokens, the tokens it computes this
        step (at most `chunk`), and blocks for both, as allocate_slots gives them."""
        external, load_async = self.scheduler.get_num_new_matched_tokens(request, 0)
        assert load_async is False and 0 <= external
        assert external < request.num_tokens  # the scheduler asserts a token is left to compute
        scheduled = min(request.num_tokens - external, chunk or request.num_tokens)
        blocks = self.allocate(-(-(external + scheduled) // PAGE))
        self.scheduler.update_state_after_alloc(request, KVCacheBlocks((blocks,)), external)
        return external, scheduled, blocks

    def schedule(self, new: list[Request], chunk: int | None = None, resumed: list[Request] = (),
                 continuing: dict[str, int] | None = None) -> tuple[SchedulerOutput, Any]:
        """One step: new (and resumed) requests admitted, continuing ones given more tokens; the
        step's metadata as the workers receive it."""
        new_reqs, cached, scheduled = [], CachedRequestData.make_empty(), {}
        for request in new:
            external, scheduled[request.request_id], blocks = self.admit(request, chunk)
            self.running[request.request_id] = Running(request, blocks, external)
            new_reqs.append(NewRequestData(request.request_id, request.prompt_token_ids, [], None, None, (blocks,),
                                           external, None))
        for request in resumed:
            external, scheduled[request.request_id], blocks = self.admit(request)
            self.running[request.request_id] = Running(request, blocks, external)
            self._cached(cached, request.request_id, (blocks,), external, resumed=True)
        for req_id, tokens in (continuing or {}).items():
            run = self.running[req_id]
            more = self.allocate(-(-(run.computed + tokens) // PAGE) - len(run.block_ids))
            run.block_ids += more
            self._cached(cached, req_id, (more,) if more else None, run.computed, resumed=False)
            scheduled[req_id] = tokens
        output = SchedulerOutput(new_reqs, cached, scheduled, sum(scheduled.values()))
        meta = self.scheduler.build_connector_meta(output)
        assert isinstance(meta, CxlkvConnectorMetadata)
        output.kv_connector_metadata = meta
        return output, pickle.loads(pickle.dumps(meta))  # to the worker processes

    @staticmethod
    def _cached(cached: CachedRequestData, req_id: str, block_ids: Any, computed: int, resumed: bool) -> None:
        cached.req_ids.append(req_id)
        cached.new_token_ids.append([])
        cached.new_block_ids.append(block_ids)
        cached.num_computed_tokens.append(computed)
        cached.num_output_tokens.append(0)
        if resumed:
            cached.resumed_req_ids.add(req_id)

    def execute(self, output: SchedulerOutput, meta: Any, ranks: list[int] | None = None) -> None:
        """The model runner on each rank: load, forward with the per-layer hooks, save, report."""
        for rank in range(len(self.workers)) if ranks is None else ranks:
            worker = self.workers[rank]
            c = worker.connector
            c.handle_preemptions(meta)
            c.bind_connector_metadata(meta)
            attn_metadata = {name: object() for name in cache_layers()}
            c.start_load_kv(ForwardContext(no_compile_layers={}, attn_metadata=attn_metadata))
            for layer in range(LAYERS):
                c.wait_for_layer_load(MLA.format(layer))
            for req_id, tokens in output.num_scheduled_tokens.items():
                run = self.running[req_id]
                forward(worker.caches, run.request.all_token_ids, run.block_ids, run.computed, run.computed + tokens)
            for layer in range(LAYERS):
                c.save_kv_layer(MLA.format(layer), worker.caches[MLA.format(layer)], attn_metadata[MLA.format(layer)])
            c.wait_for_save()
            assert c.get_finished(output.finished_req_ids) == (None, None)
            worker.load_errors.append(c.get_block_ids_with_load_errors())
            c.clear_connector_metadata()

    def step(self, new: list[Request], **kwargs: Any) -> Any:
        output, meta = self.schedule(new, **kwargs)
        self.execute(output, meta)
        self.advance(output)
        return meta

    def advance(self, output: SchedulerOutput) -> None:
        for req_id, tokens in output.num_scheduled_tokens.items():
            self.running[req_id].computed += tokens

    def finish(self, req_id: str) -> None:
        run = self.running.pop(req_id)
        assert self.scheduler.request_finished(run.request, run.block_ids) == (False, None)

    def close(self) -> None:
        for worker in self.workers:
            worker.connector.shutdown()
        self.scheduler.shutdown()


@pytest.fixture
def engine_of(daemon: Daemon, client: cxlkv.Client):
    """Engines on the test's own namespace (the `client` fixture's model)."""
    engines: list[Engine] = []

    def make(ranks: int = 1, device: str = "cpu", **kwargs: Any) -> Engine:
        engines.append(Engine(vllm_config(daemon.endpoint, client.model, tp=ranks, **kwargs), ranks, device))
        return engines[-1]
    yield make
    for e in engines:
        e.close()


def prompt(n: int, seed: int, shared: list[int] | None = None) -> list[int]:
    """n tokens: `shared` first, then ids of the seed's own."""
    head = list(shared or [])
    return head + list(range(seed * 10000 + len(head), seed * 10000 + n))


def pool_pages(client: cxlkv.Client, tokens: list[int]) -> int:
    with client.lookup(client.page_keys(tokens)) as lease:
        return lease.pages


def assert_same_blocks(caches: dict[str, torch.Tensor], blocks: list[int], like: list[int],
                       other: dict[str, torch.Tensor] | None = None) -> None:
    """caches[blocks[i]] == (other or caches)[like[i]], byte for byte, every layer, both streams."""
    other = caches if other is None else other
    for name in cache_layers():
        for b, a in zip(blocks, like):
            assert torch.equal(caches[name][b], other[name][a]), f"{name}: block {b} != block {a}"


# --- the engine's round trip ------------------------------------------------------------------

# The CUDA path (cxlkv.gpu into CUDA caches) runs where a GPU is; the CPU path everywhere.
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path runs on a GPU machine")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


@pytest.mark.parametrize("device", DEVICES)
def test_a_prompt_is_saved_and_a_shared_prefix_comes_back_byte_exact(engine_of, client: cxlkv.Client,
                                                                     device: str) -> None:
    engine = engine_of(device=device)
    a = Request("a", prompt(200, 1))  # 3 whole pages + 8 tokens
    meta = engine.step([a])
    assert meta.loads == [] and [len(s.keys) for s in meta.saves] == [3]
    assert engine.running["a"].computed == 200
    assert pool_pages(client, a.prompt_token_ids) == 3
    w = engine.workers[0]
    a_blocks = engine.running["a"].block_ids
    with client.lookup(client.page_keys(a.prompt_token_ids)) as lease:  # the pool holds the blocks as they are
        for layer in range(LAYERS):
            assert torch.equal(torch.from_numpy(lease.fetch_pages("latent", layer)).view(3, PAGE, LATENT),
                               w.caches[MLA.format(layer)][a_blocks[:3]].cpu())
            assert torch.equal(torch.from_numpy(lease.fetch_pages("indexer", layer)).view(3, PAGE, INDEXER),
                               w.caches[INDEXER_CACHE.format(layer)][a_blocks[:3]].cpu())

    b = Request("b", prompt(300, 2, shared=a.prompt_token_ids[:150]))  # shares 2 whole pages with a
    assert engine.scheduler.get_num_new_matched_tokens(b, 0) == (128, False)
    output, meta = engine.schedule([b])
    b_blocks = engine.running["b"].block_ids
    assert [(load.req_id, load.block_ids) for load in meta.loads] == [("b", b_blocks[:2])]
    assert set(b_blocks).isdisjoint(a_blocks)
    before = {name: w.caches[name][b_blocks[:2]].clone() for name in cache_layers()}
    engine.execute(output, meta)
    engine.advance(output)
    assert w.load_errors[-1] == set()
    assert_same_blocks(w.caches, b_blocks[:2], a_blocks[:2])
    assert not all(torch.equal(before[n], w.caches[n][b_blocks[:2]]) for n in cache_layers())
    # b computed the rest, and its own whole pages after the loaded ones were saved from page 2 on
    b_keys = client.page_keys(b.prompt_token_ids)
    assert [(s.req_id, s.parent, s.keys) for s in meta.saves] == [("b", b_keys[1], b_keys[2:4])]
    assert pool_pages(client, b.prompt_token_ids) == 4


def test_the_match_is_whole_pages_never_the_whole_prompt_and_has_no_side_effects(engine_of,
                                                                                  client: cxlkv.Client) -> None:
    engine = engine_of()
    a = Request("a", prompt(128, 3))
    engine.step([a])
    assert pool_pages(client, a.prompt_token_ids) == 2
    sched = engine.scheduler
    same = Request("same", list(a.prompt_token_ids))
    assert sched.get_num_new_matched_tokens(same, 0) == (64, False)  # (128 - 1) // 64 pages: one token left
    longer = Request("longer", a.prompt_token_ids + [7])
    assert sched.get_num_new_matched_tokens(longer, 0) == (128, False)
    assert sched.get_num_new_matched_tokens(longer, 64) == (64, False)  # beyond the local hit only
    assert sched.get_num_new_matched_tokens(longer, 128) == (0, False)
    assert sched.get_num_new_matched_tokens(Request("short", a.prompt_token_ids[:64]), 0) == (0, False)
    assert sched.get_num_new_matched_tokens(Request("other", prompt(200, 4)), 0) == (0, False)
    # asked again, the same; nothing remembered, nothing left pinned
    assert sched.get_num_new_matched_tokens(longer, 0) == (128, False)
    empty = SchedulerOutput([], CachedRequestData.make_empty(), {}, 0)
    assert sched.build_connector_meta(empty) == CxlkvConnectorMetadata()
    assert client.remove(client.page_keys(a.prompt_token_ids)) == 2  # pinned pages would not be removed


def test_removed_pages_are_a_miss_and_pages_vanished_before_the_load_are_load_errors(engine_of,
                                                                                     client: cxlkv.Client) -> None:
    engine = engine_of()
    a = Request("a", prompt(200, 5))
    engine.step([a])
    keys = client.page_keys(a.prompt_token_ids)
    assert client.remove(keys[1:]) == 2
    assert engine.scheduler.get_num_new_matched_tokens(Request("b", a.prompt_token_ids + [1]), 0) == (64, False)
    assert client.remove(keys[:1]) == 1
    assert engine.scheduler.get_num_new_matched_tokens(Request("b", a.prompt_token_ids + [1]), 0) == (0, False)

    a2 = Request("a2", prompt(200, 6))
    engine.step([a2])
    a2_blocks = engine.running["a2"].block_ids
    c = Request("c", a2.prompt_token_ids + [1, 2, 3])
    output, meta = engine.schedule([c])  # the scheduler saw 3 pages...
    c_blocks = engine.running["c"].block_ids
    assert meta.loads[0].block_ids == c_blocks[:3]
    assert client.remove(client.page_keys(a2.prompt_token_ids)[1:]) == 2  # ...two vanish before the load
    engine.execute(output, meta)
    w = engine.workers[0]
    assert w.load_errors[-1] == set(c_blocks[1:3])
    assert_same_blocks(w.caches, c_blocks[:1], a2_blocks[:1])  # the page still there is loaded
    assert w.connector.get_block_ids_with_load_errors() == set()  # reported once, in its pass


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_parallel_rank_0_writes_and_every_rank_loads(engine_of, client: cxlkv.Client, device: str) -> None:
    engine = engine_of(ranks=2, device=device)
    a = Request("a", prompt(200, 7))
    output, meta = engine.schedule([a])
    engine.execute(output, meta, ranks=[1])
    assert pool_pages(client, a.prompt_token_ids) == 0  # rank 1 computed and saved nothing to the pool
    engine.execute(output, meta, ranks=[0])
    engine.advance(output)
    assert pool_pages(client, a.prompt_token_ids) == 3
    a_blocks = engine.running["a"].block_ids
    r0, r1 = engine.workers
    assert_same_blocks(r1.caches, a_blocks[:3], a_blocks[:3], other=r0.caches)  # replicated caches

    b = Request("b", a.prompt_token_ids[:192] + [9])
    engine.step([b])
    b_blocks = engine.running["b"].block_ids
    for w in (r0, r1):
        assert w.load_errors[-1] == set()
        assert_same_blocks(w.caches, b_blocks[:3], a_blocks[:3], other=r0.caches)


def test_chunked_prefill_saves_each_chunks_whole_pages(engine_of, client: cxlkv.Client) -> None:
    engine = engine_of()
    a = Request("a", prompt(200, 8))
    meta = engine.step([a], chunk=100)
    assert [len(s.keys) for s in meta.saves] == [1]  # tokens 64..99 are not a whole page yet
    assert pool_pages(client, a.prompt_token_ids) == 1
    meta = engine.step([], continuing={"a": 100})
    keys = client.page_keys(a.prompt_token_ids)
    assert [(s.parent, s.keys) for s in meta.saves] == [(keys[0], keys[1:3])]
    a_blocks = engine.running["a"].block_ids
    assert meta.saves[0].block_ids == a_blocks[1:3]  # the second page's block came with this step
    assert pool_pages(client, a.prompt_token_ids) == 3
    a.append_output_token_ids(42)
    meta = engine.step([], continuing={"a": 1})  # decoding: the prompt is saved, nothing more
    assert meta.saves == []
    engine.finish("a")

    b = Request("b", a.prompt_token_ids + [5])
    engine.step([b])
    assert engine.workers[0].load_errors[-1] == set()
    assert_same_blocks(engine.workers[0].caches, engine.running["b"].block_ids[:3], a_blocks[:3])


def test_a_resumed_request_loads_into_its_new_blocks(engine_of, client: cxlkv.Client) -> None:
    engine = engine_of()
    a = Request("a", prompt(200, 9))
    engine.step([a])
    a_blocks = engine.running["a"].block_ids
    b = Request("b", a.prompt_token_ids[:128] + [1, 2])
    engine.step([b])
    b.append_output_token_ids([3, 4])  # decoded, then preempted: its blocks are gone
    del engine.running["b"]
    meta = engine.step([], resumed=[b])
    resumed = engine.running["b"].block_ids
    assert [(load.req_id, load.block_ids) for load in meta.loads] == [("b", resumed[:2])]
    assert engine.workers[0].load_errors[-1] == set()
    assert_same_blocks(engine.workers[0].caches, resumed[:2], a_blocks[:2])


def test_only_prompts_whose_cache_is_their_tokens_are_shared(engine_of, daemon: Daemon,
                                                             client: cxlkv.Client) -> None:
    engine = engine_of()
    a = Request("a", prompt(200, 10))
    engine.step([a])
    sched = engine.scheduler
    tokens = a.prompt_token_ids + [1]
    assert sched.get_num_new_matched_tokens(Request("plain", tokens), 0) == (192, False)
    for other in (Request("salted", tokens, cache_salt="s"), Request("lora", tokens, lora_request=object()),
                  Request("image", tokens, mm_features=[object()]),
                  Request("embeds", None, prompt_embeds=torch.zeros(len(tokens), 8))):
        assert sched.get_num_new_matched_tokens(other, 0) == (0, False), other.request_id
    salted = Request("salted2", prompt(200, 11), cache_salt="s")
    assert engine.step([salted]).saves == []
    assert pool_pages(client, salted.prompt_token_ids) == 0
    # another model is another namespace
    other_model = make_connector(vllm_config(daemon.endpoint, client.model + "-other"), SCHEDULER)
    try:
        assert other_model.get_num_new_matched_tokens(Request("plain", tokens), 0) == (0, False)
    finally:
        other_model.shutdown()


def test_a_consumer_only_loads_and_a_producer_only_saves(engine_of, client: cxlkv.Client) -> None:
    consumer = engine_of(role="kv_consumer")
    a = Request("a", prompt(200, 12))
    assert consumer.step([a]).saves == []
    assert pool_pages(client, a.prompt_token_ids) == 0
    producer = engine_of(role="kv_producer")
    producer.step([a])
    assert pool_pages(client, a.prompt_token_ids) == 3
    assert producer.scheduler.get_num_new_matched_tokens(Request("b", a.prompt_token_ids + [1]), 0) == (0, False)
    assert consumer.scheduler.get_num_new_matched_tokens(Request("b", a.prompt_token_ids + [1]), 0) == (192, False)


def test_steps_without_loads_or_a_forward_do_nothing(engine_of) -> None:
    engine = engine_of()
    c = engine.workers[0].connector
    c.start_load_kv(ForwardContext(no_compile_layers={}, attn_metadata=None))  # nothing bound
    c.wait_for_save()
    c.bind_connector_metadata(CxlkvConnectorMetadata())
    c.start_load_kv(ForwardContext(no_compile_layers={}, attn_metadata=None))  # kv_connector_no_forward
    c.clear_connector_metadata()
    assert c.get_block_ids_with_load_errors() == set()
    with pytest.raises(RuntimeError, match="build_connector_meta is a scheduler-side call"):
        c.build_connector_meta(SchedulerOutput([], CachedRequestData.make_empty(), {}, 0))
    with pytest.raises(RuntimeError, match="register_kv_caches is a worker-side call"):
        engine.scheduler.register_kv_caches({})


def test_block_runs_are_consecutive_block_ids() -> None:
    assert block_runs([]) == []
    assert block_runs([4, 5, 6, 9, 2, 3]) == [(0, 4, 3), (3, 9, 1), (4, 2, 2)]
    assert block_runs([7, 7]) == [(0, 7, 1), (1, 7, 1)]


# --- configuration refused by name ------------------------------------------------------------

def caches_with(**change: Any) -> dict[str, torch.Tensor]:
    caches = {name: torch.zeros((4, PAGE, LATENT if "indexer" not in name else INDEXER), dtype=torch.uint8)
              for name in cache_layers()}
    if "block_size" in change:
        caches = {n: torch.zeros((4, change["block_size"], c.shape[2]), dtype=torch.uint8) for n, c in caches.items()}
    if "bf16_latent" in change:
        for i in range(LAYERS):
            caches[MLA.format(i)] = torch.zeros((4, PAGE, 576), dtype=torch.bfloat16)
    if "layers" in change:
        caches = {n: c for n, c in caches.items() if int(n.split(".")[2]) < change["layers"]}
    if "no_indexer" in change:
        caches = {n: c for n, c in caches.items() if "indexer" not in n}
    if "extra_layer" in change:
        caches["model.layers.0.mlp.experts"] = torch.zeros((4, PAGE, LATENT), dtype=torch.uint8)
    if "strided" in change:
        caches[MLA.format(0)] = torch.zeros((4, PAGE, 2 * LATENT), dtype=torch.uint8)[:, :, :LATENT]
    return caches


@pytest.mark.parametrize("change, message", [
    ({"block_size": 16}, r"model.layers.\d.self_attn.(attn|indexer.k_cache) has 16-token blocks, the pool's pages "
                         r"\(layout pytest\) are 64 tokens: serve with --block-size 64"),
    ({"bf16_latent": True}, r"model.layers.0.self_attn.attn is .*bfloat16.*: 1152 B per token, the pool's latent "
                            r"entries \(layout pytest\) are 656 B .*--kv-cache-dtype fp8"),
    ({"layers": 3}, r"registered 3 layers of model.layers.\{i\}.self_attn.attn .*layout pytest has 4 layers"),
    ({"no_indexer": True}, r"registered 0 layers of model.layers.\{i\}.self_attn.indexer.k_cache"),
    ({"extra_layer": True}, r"'model.layers.0.mlp.experts' is neither an MLA layer"),
    ({"strided": True}, r"model.layers.0.self_attn.attn is .* not contiguous"),
])
def test_a_cache_that_does_not_match_the_pool_is_refused(engine_of, daemon: Daemon, client: cxlkv.Client,
                                                         change: dict[str, Any], message: str) -> None:
    worker = make_connector(vllm_config(daemon.endpoint, client.model), WORKER)
    try:
        with pytest.raises(cxlkv.InvalidArgument, match=message):
            worker.register_kv_caches(caches_with(**change))
    finally:
        worker.shutdown()


def test_a_wrong_engine_configuration_is_refused(daemon: Daemon, client: cxlkv.Client,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(cxlkv.InvalidArgument, match="block size 16, the pool's pages .* are 64 tokens"):
        make_connector(vllm_config(daemon.endpoint, client.model, block_size=16), SCHEDULER)
    for var in ("CXLKV_ENDPOINT", "CXLKV_TENANT", "CXLKV_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for role in (SCHEDULER, WORKER):
        with pytest.raises(cxlkv.InvalidArgument,
                           match='no pool endpoint: set kv_connector_extra_config .*"endpoint".* or CXLKV_ENDPOINT'):
            make_connector(vllm_config(None, client.model, extra={"tenant": TENANT, "token": TOKEN}), role)
    with pytest.raises(cxlkv.InvalidArgument, match="decode_context_parallel_size = 2"):
        make_connector(vllm_config(daemon.endpoint, client.model, tp=2, decode_context_parallel_size=2), WORKER)
    with pytest.raises(cxlkv.PermissionDenied):
        make_connector(vllm_config(None, client.model, extra={"endpoint": daemon.endpoint, "tenant": TENANT,
                                                              "token": "wrong"}), SCHEDULER)
    with pytest.raises(ValueError, match="kv_transfer_config must be set"):
        CxlkvConnector(VllmConfig(), SCHEDULER)
    # the environment stands in for the extra config
    monkeypatch.setenv("CXLKV_ENDPOINT", daemon.endpoint)
    monkeypatch.setenv("CXLKV_TENANT", TENANT)
    monkeypatch.setenv("CXLKV_TOKEN", TOKEN)
    make_connector(vllm_config(None, client.model, extra={}), SCHEDULER).shutdown()


def test_a_pool_layout_with_streams_vllm_does_not_hold_is_refused() -> None:
    split = Daemon("vllm-split", layout="custom:name=pytest-split,layers=4,page_tokens=64,stream=latent/640/640/sparse,"
                                        "stream=latent_scales/16/16/bulk,stream=indexer/132/132/bulk")
    try:
        worker = make_connector(vllm_config(split.endpoint, "split"), WORKER)
        with pytest.raises(cxlkv.InvalidArgument, match="layout pytest-split has stream.s. latent_scales"):
            worker.register_kv_caches(caches_with())
        worker.shutdown()
    finally:
        split.stop()


# --- conformance: every method vLLM calls (base.py at 9aaf83ef502fc37bc647f6e474314d48ba36cd1c) -

# name -> upstream parameters (self/cls left out); "property" for properties.
ENGINE_CALLS: dict[str, list[str] | str] = {
    "__init__": ["vllm_config", "role", "kv_cache_config"],
    "prefer_cross_layer_blocks": "property",
    "role": "property",
    # worker side
    "register_kv_caches": ["kv_caches"],
    "register_cross_layers_kv_cache": ["kv_cache", "attn_backend"],
    "set_host_xfer_buffer_ops": ["copy_operation"],
    "handle_preemptions": ["kv_connector_metadata"],
    "bind_connector_metadata": ["connector_metadata"],
    "start_load_kv": ["forward_context", "kwargs"],
    "wait_for_layer_load": ["layer_name"],
    "save_kv_layer": ["layer_name", "kv_layer", "attn_metadata", "kwargs"],
    "wait_for_save": [],
    "get_finished": ["finished_req_ids"],
    "get_block_ids_with_load_errors": [],
    "get_kv_connector_stats": [],
    "get_kv_connector_kv_cache_events": [],
    "build_connector_worker_meta": [],
    "get_handshake_metadata": [],
    "clear_connector_metadata": [],
    "has_connector_metadata": [],
    "shutdown": [],
    # scheduler side
    "bind_gpu_block_pool": ["gpu_block_pool"],
    "get_num_new_matched_tokens": ["request", "num_computed_tokens"],
    "update_state_after_alloc": ["request", "blocks", "num_external_tokens"],
    "build_connector_meta": ["scheduler_output"],
    "on_new_request": ["request"],
    "update_connector_output": ["connector_output"],
    "request_finished": ["request", "block_ids"],
    "take_events": [],
    "get_finished_count": [],
    "set_xfer_handshake_metadata": ["metadata"],
    "reset_cache": [],
    # class methods
    "get_required_kvcache_layout": ["vllm_config"],
    "requires_piecewise_for_cudagraph": ["extra_config"],
    "build_kv_connector_stats": ["data"],
    "build_prom_metrics": ["vllm_config", "metric_types", "labelnames", "per_engine_labelvalues"],
}
# Calls this connector answers itself, those it refuses, and those whose base default is its answer
# (checked by calling them below).
OWN = {"__init__", "register_kv_caches", "set_host_xfer_buffer_ops", "handle_preemptions", "start_load_kv",
       "wait_for_layer_load", "save_kv_layer", "wait_for_save", "get_finished", "get_block_ids_with_load_errors",
       "shutdown", "get_num_new_matched_tokens", "update_state_after_alloc", "build_connector_meta",
       "request_finished", "reset_cache", "requires_piecewise_for_cudagraph"}
REFUSED = {"register_cross_layers_kv_cache": ((torch.zeros(1), object),
                                              "cross-layer KV cache blocks are not supported")}
INHERITED = {
    "prefer_cross_layer_blocks": False, "get_kv_connector_stats": None, "get_kv_connector_kv_cache_events": None,
    "build_connector_worker_meta": None, "get_handshake_metadata": None, "bind_gpu_block_pool": None,
    "on_new_request": None, "update_connector_output": None, "take_events": (), "get_finished_count": None,
    "set_xfer_handshake_metadata": None, "get_required_kvcache_layout": None, "build_kv_connector_stats": None,
    "build_prom_metrics": None,
}
BASE_MACHINERY = {"role", "bind_connector_metadata", "clear_connector_metadata", "has_connector_metadata"}


def parameters(cls: type, name: str) -> list[str] | str:
    attr = inspect.getattr_static(cls, name)
    if isinstance(attr, property):
        return "property"
    bound = getattr(cls, name)
    names = list(inspect.signature(bound).parameters)
    return names[1:] if inspect.isfunction(bound) else names  # a plain function still has self


def test_every_method_vllm_calls_has_upstreams_parameters_and_an_answer(engine_of) -> None:
    assert set(ENGINE_CALLS) == OWN | set(REFUSED) | set(INHERITED) | BASE_MACHINERY
    assert KVConnectorBase_V1.__abstractmethods__ <= OWN and not CxlkvConnector.__abstractmethods__
    for name, expected in ENGINE_CALLS.items():
        assert parameters(KVConnectorBase_V1, name) == expected, f"stand-in base: {name}"
        assert parameters(CxlkvConnector, name) == expected, f"CxlkvConnector.{name}"
        if name in OWN or name in REFUSED:
            assert name in CxlkvConnector.__dict__, f"{name} is not answered by CxlkvConnector itself"
    engine = engine_of()
    for side in (engine.scheduler, engine.workers[0].connector):
        for name, (args, message) in REFUSED.items():
            with pytest.raises(NotImplementedError, match=f"cxlkv.vllm: {message}"):
                getattr(side, name)(*args)
        calls = {"bind_gpu_block_pool": (object(),), "on_new_request": (Request("r", [1]),),
                 "update_connector_output": (object(),), "set_xfer_handshake_metadata": ({},),
                 "get_required_kvcache_layout": (side._vllm_config,), "build_prom_metrics": ({}, {}, [], {})}
        for name, value in INHERITED.items():
            attr = getattr(side, name)
            got = attr if name == "prefer_cross_layer_blocks" else attr(*calls.get(name, ()))
            assert got == value, name
        assert side.reset_cache() is False  # a shared pool is not cleared by one engine
        assert type(side).requires_piecewise_for_cudagraph({}) is False
    assert engine.workers[0].connector.get_finished({"x"}) == (None, None)
    assert engine.scheduler.request_finished(Request("r", [1]), [0]) == (False, None)
