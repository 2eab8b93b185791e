"""cxlkv.route: how many leading pages of a prompt a cluster's memory nodes hold, on which nodes,
and a scheduler's decode workers ranked by their affinity to those nodes. One call of the C
ABI's cxlkv_route (include/cxlkv/route.h), which reads the prefix directory the daemons publish
in etcd; it talks to no daemon. The answer is advice (summaries trail the pools by a few seconds
and count whole chunks): a worker then reads through a lookup, which is exact."""

from __future__ import annotations

import ctypes
import json
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from . import _native as native
from .client import Key, _check, _key_array
from .errors import InvalidArgument

Workers = Mapping[str, Mapping[str, float]]
"""Decode workers by name, each with its affinity to memory nodes: {"decode-0": {"mem-a": 1.0}}."""


@dataclass(frozen=True)
class RankedWorker:
    name: str
    score: float       # sum over nodes of the cached pages there x the worker's affinity
    local_pages: int   # cached pages on nodes the worker has an affinity > 0 to


@dataclass(frozen=True)
class Route:
    prefix_pages: int                     # whole pages of the prompt
    cached_pages: int                     # the leading pages the directory says are cached
    nodes: dict[str, int] = field(default_factory=dict)          # of those, pages per node
    workers: list[RankedWorker] = field(default_factory=list)    # best first

    @property
    def best(self) -> str | None:
        """The name of the best-placed worker, or None when no worker was given."""
        return self.workers[0].name if self.workers else None


def namespace_id(tenant: str, model: str) -> int:
    """The namespace id of (tenant, model): what the pool scopes keys by."""
    return int(native.lib.cxlkv_namespace_of(tenant.encode(), model.encode()))


def prompt_keys(tokens: Sequence[int] | np.ndarray, tenant: str, model: str, page_tokens: int = 64) -> list[bytes]:
    """Keys of the whole pages of tokens in the namespace (tenant, model), as Client.page_keys makes them."""
    if page_tokens <= 0:
        raise InvalidArgument(f"page_tokens must be > 0, got {page_tokens}")
    array = np.ascontiguousarray(np.asarray(tokens, dtype=np.int32))
    pages = array.size // page_tokens
    out = (native.PageKeyStruct * max(pages, 1))()
    native.lib.cxlkv_prefix_page_keys(namespace_id(tenant, model), page_tokens,
                                      array.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), array.size, None, out,
                                      pages)
    return [bytes(out[i].bytes) for i in range(pages)]


def route(tokens: Sequence[int] | np.ndarray | None = None, workers: Workers | None = None, *, cluster: str,
          tenant: str = "", model: str = "", keys: Sequence[Key] | None = None, page_tokens: int = 64,
          timeout_ms: int = 2000) -> Route:
    """How much of a prompt the cluster at `cluster` ("etcd://HOST:PORT/NAME") holds for the namespace
    (tenant, model), where, and `workers` ranked by locality. Give the prompt as token ids, or as
    its page keys (`keys=`, e.g. an engine's own hashes, first page first)."""
    if (tokens is None) == (keys is None):
        raise InvalidArgument("route: give the prompt as tokens or as keys=, one of them")
    key_list = prompt_keys(tokens, tenant, model, page_tokens) if tokens is not None else list(keys or [])
    entries = []
    for worker, affinity in (workers or {}).items():
        if not affinity:
            entries.append((worker, None, 0.0))
        for node, weight in affinity.items():
            if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise InvalidArgument(f"route: worker {worker!r}: affinity to {node!r} must be a finite number >= 0, "
                                      f"got {weight!r}")
            entries.append((worker, node, float(weight)))
    # The encoded names live in `names` until the call returns: the structs hold bare pointers.
    names = [(worker.encode(), node.encode() if node else None) for worker, node, _ in entries]
    affinities = (native.RouteAffinityStruct * max(len(entries), 1))()
    for i, ((worker_b, node_b), (_, _, weight)) in enumerate(zip(names, entries)):
        affinities[i].worker = worker_b
        affinities[i].node = node_b
        affinities[i].weight = weight
    array = _key_array(key_list)
    ns = namespace_id(tenant, model)
    needed = ctypes.c_size_t()
    capacity = 4096
    while True:
        answer = ctypes.create_string_buffer(capacity)
        rc = native.lib.cxlkv_route(cluster.encode(), ns, array, len(key_list), affinities, len(entries), timeout_ms,
                                    answer, capacity, ctypes.byref(needed))
        if rc == 0 or needed.value + 1 <= capacity:
            break
        capacity = needed.value + 1  # the answer did not fit: once more, with room for it
    _check(rc)
    j = json.loads(answer.value.decode())
    return Route(j["prefix_pages"], j["cached_pages"], dict(j["nodes"]),
                 [RankedWorker(w["name"], float(w["score"]), int(w["local_pages"])) for w in j["workers"]])
