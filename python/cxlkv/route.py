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
from typing import Callable, Mapping, Sequence

import numpy as np

from . import _native as native
from .client import Key, _check, _key_array
from .errors import Closed, InvalidArgument

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


def _prompt(tokens: Sequence[int] | np.ndarray | None, keys: Sequence[Key] | None, tenant: str, model: str,
            page_tokens: int) -> list[bytes] | list[Key]:
    if (tokens is None) == (keys is None):
        raise InvalidArgument("route: give the prompt as tokens or as keys=, one of them")
    return prompt_keys(tokens, tenant, model, page_tokens) if tokens is not None else list(keys or [])


def _ask(call: Callable[..., int], workers: Workers | None,
         key_list: list[bytes] | list[Key]) -> Route:
    """Runs call(keys, affinities, n_affinities, answer, capacity, needed) of the C ABI with the workers'
    affinities, growing the answer buffer until it fits, and reads its JSON."""
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
    needed = ctypes.c_size_t()
    capacity = 4096
    while True:
        answer = ctypes.create_string_buffer(capacity)
        rc = call(array, len(key_list), affinities, len(entries), answer, capacity, ctypes.byref(needed))
        if rc == 0 or needed.value + 1 <= capacity:
            break
        capacity = needed.value + 1  # the answer did not fit: once more, with room for it
    _check(rc)
    j = json.loads(answer.value.decode())
    return Route(j["prefix_pages"], j["cached_pages"], dict(j["nodes"]),
                 [RankedWorker(w["name"], float(w["score"]), int(w["local_pages"])) for w in j["workers"]])


def route(tokens: Sequence[int] | np.ndarray | None = None, workers: Workers | None = None, *, cluster: str,
          tenant: str = "", model: str = "", keys: Sequence[Key] | None = None, page_tokens: int = 64,
          timeout_ms: int = 2000) -> Route:
    """How much of a prompt the cluster at `cluster` ("etcd://HOST:PORT/NAME") holds for the namespace
    (tenant, model), where, and `workers` ranked by locality. Give the prompt as token ids, or as
    its page keys (`keys=`, e.g. an engine's own hashes, first page first). Reads etcd twice per
    call: a scheduler routing every request keeps a Router instead."""
    key_list = _prompt(tokens, keys, tenant, model, page_tokens)
    ns = namespace_id(tenant, model)
    return _ask(lambda *a: native.lib.cxlkv_route(cluster.encode(), ns, a[0], a[1], a[2], a[3], timeout_ms, *a[4:]),
                workers, key_list)


class Router:
    """route() for a scheduler that asks per request (route.h, PrefixRouter): keeps each namespace's
    directory summaries for up to max_age_ms (0: read every call), so etcd sees one read per
    namespace per max_age_ms however many requests are routed; answers may be that much older.
    May be shared by threads; close() must not race the other calls on it. A context manager, or
    call close()."""

    def __init__(self, cluster: str, *, max_age_ms: int = 1000, timeout_ms: int = 2000) -> None:
        handle = ctypes.c_void_p()
        _check(native.lib.cxlkv_router_open(cluster.encode(), int(timeout_ms), int(max_age_ms), ctypes.byref(handle)))
        self._handle: int | None = handle.value
        self.cluster = cluster

    def _h(self) -> int:
        if self._handle is None:
            raise Closed(f"router of {self.cluster} is closed")
        return self._handle

    def route(self, tokens: Sequence[int] | np.ndarray | None = None, workers: Workers | None = None, *,
              tenant: str = "", model: str = "", keys: Sequence[Key] | None = None, page_tokens: int = 64) -> Route:
        """As cxlkv.route, from the summaries this router keeps while they are fresh enough."""
        key_list = _prompt(tokens, keys, tenant, model, page_tokens)
        ns, handle = namespace_id(tenant, model), self._h()
        return _ask(lambda *a: native.lib.cxlkv_router_route(handle, ns, *a), workers, key_list)

    @property
    def directory_reads(self) -> int:
        """etcd reads of a namespace's summaries so far."""
        return int(native.lib.cxlkv_router_directory_reads(self._h()))

    def close(self) -> None:
        if self._handle is not None:
            native.lib.cxlkv_router_close(self._handle)
            self._handle = None

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass
