"""The GPU data path from Python (include/cxlkv/cxlkv_gpu.h over gpu.h): gathers of a batch of
(request, layer) items into torch CUDA tensors in one launch, whole-page fetches of bulk streams,
hot buffers and their step, split rows. Every call is queued on a CUDA stream, by default torch's
current one, and returns at once; the caller orders its attention kernel after it on that stream.
SparseDecodeFetcher is the DSA fetch hook: a decode batch's top-k positions into FlashMLA's packed
sparse-decode rows, the prefix from the pool and the tail from the caller's tensors.
Needs libcxlkv_gpu (built where CUDA is) and torch with CUDA."""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_int, c_int32, c_size_t, c_uint32, c_void_p
from dataclasses import dataclass
from typing import Any, Sequence

from . import _native as native
from .client import Client, ReadLease, _check
from .errors import Closed, InvalidArgument
from ._buffers import describe, is_torch


class _Splice(ctypes.Structure):
    _fields_ = [("side_bytes", c_uint32), ("side_at", c_uint32)]


class _SparseRequest(ctypes.Structure):
    _fields_ = [("table", c_void_p), ("tail", c_void_p), ("tail_layer_bytes", ctypes.c_uint64),
                ("tail_capacity", c_uint32)]


class _GatherItem(ctypes.Structure):
    _fields_ = [("table", c_void_p), ("layer", c_uint32), ("k", c_uint32), ("indices", c_void_p),
                ("out", c_void_p), ("side", c_void_p)]


def _load() -> ctypes.CDLL:
    path = os.environ.get("CXLKV_GPU_LIBRARY")
    if not path:
        try:
            from . import _libpath
            path = getattr(_libpath, "GPU_LIBRARY", "")
        except ImportError:
            path = ""
    if not path or not os.path.exists(path):
        path = os.path.join(os.path.dirname(native._library_path()), "libcxlkv_gpu.so.0")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"cxlkv.gpu: libcxlkv_gpu not loadable ({e}); it is built only where CUDA is; "
                          "set CXLKV_GPU_LIBRARY to its path") from None
    sig = {
        "cxlkv_gpu_attach": (c_int, [c_void_p, POINTER(c_void_p)]),
        "cxlkv_gpu_detach": (None, [c_void_p]),
        "cxlkv_gpu_upload": (c_int, [c_void_p, c_void_p, c_int, POINTER(c_void_p)]),
        "cxlkv_gpu_table_pages": (c_uint32, [c_void_p]),
        "cxlkv_gpu_table_free": (None, [c_void_p]),
        "cxlkv_gpu_gather_topk": (c_int, [c_void_p, POINTER(_GatherItem), c_size_t, c_void_p, POINTER(_Splice)]),
        "cxlkv_gpu_bad_index_count": (c_int, [c_void_p, POINTER(c_uint32)]),
        "cxlkv_gpu_reused_count": (c_int, [c_void_p, POINTER(c_uint32)]),
        "cxlkv_gpu_set_reuse_check": (c_int, [c_void_p, c_int]),
        "cxlkv_gpu_check_reads": (c_int, [c_void_p, c_void_p]),
        "cxlkv_gpu_fetch_pages": (c_int, [c_void_p, c_void_p, c_int, c_uint32, c_uint32, c_uint32, c_void_p, c_void_p]),
        "cxlkv_gpu_make_hot_buffer": (c_int, [c_void_p, c_void_p, c_uint32, c_uint32, c_uint32, POINTER(_Splice),
                                              c_void_p, POINTER(c_void_p)]),
        "cxlkv_gpu_hot_buffer_free": (None, [c_void_p]),
        "cxlkv_gpu_hot_capacity": (c_uint32, [c_void_p]),
        "cxlkv_gpu_hot_rows": (c_void_p, [c_void_p]),
        "cxlkv_gpu_hot_row_of": (c_void_p, [c_void_p]),
        "cxlkv_gpu_hot_step": (c_int, [c_void_p, POINTER(c_void_p), POINTER(c_void_p), POINTER(c_uint32), c_size_t,
                                       c_int32, c_void_p]),
        "cxlkv_gpu_hot_last_counts": (c_int, [c_void_p, POINTER(c_uint32), POINTER(c_uint32)]),
        "cxlkv_gpu_sparse_fetcher_create": (c_int, [c_void_p, POINTER(_SparseRequest), c_size_t, c_uint32, c_uint32,
                                                    POINTER(c_void_p)]),
        "cxlkv_gpu_sparse_fetcher_free": (None, [c_void_p]),
        "cxlkv_gpu_sparse_set_tail_tokens": (c_int, [c_void_p, POINTER(c_uint32), c_size_t]),
        "cxlkv_gpu_sparse_fetch": (c_int, [c_void_p, c_uint32, c_void_p, c_void_p, c_void_p]),
        "cxlkv_gpu_sparse_hot_counts": (c_int, [c_void_p, c_uint32, c_uint32, POINTER(c_uint32), POINTER(c_uint32)]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


_lib: ctypes.CDLL | None = None


def _gpu() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _cuda(tensor: Any, what: str, *, nbytes: int | None = None, int32_1d: bool = False) -> int:
    """The device address of a contiguous CUDA tensor, checked; InvalidArgument naming the problem."""
    if not is_torch(tensor):
        raise InvalidArgument(f"{what}: a torch CUDA tensor is needed, got {describe(tensor)}")
    import torch
    if tensor.device.type != "cuda":
        raise InvalidArgument(f"{what}: {describe(tensor)} is not on a CUDA device")
    if not tensor.is_contiguous():
        raise InvalidArgument(f"{what}: {describe(tensor)} is not contiguous")
    if int32_1d and (tensor.dtype != torch.int32 or tensor.dim() != 1):
        raise InvalidArgument(f"{what}: indices must be a 1-D int32 tensor, got {describe(tensor)}")
    size = tensor.numel() * tensor.element_size()
    if nbytes is not None and size != nbytes:
        raise InvalidArgument(f"{what}: {describe(tensor)} holds {size} bytes, {nbytes} expected")
    return tensor.data_ptr()


def _stream(stream: Any) -> int | None:
    """A cudaStream_t: torch's current stream when None, a torch.cuda.Stream, or a raw handle."""
    if stream is None:
        import torch
        return torch.cuda.current_stream().cuda_stream or None
    if hasattr(stream, "cuda_stream"):
        return stream.cuda_stream or None
    return int(stream) or None


@dataclass(frozen=True)
class Splice:
    """Split rows (gpu.h GpuRowSplice): side_bytes from an item's side array put in at side_at."""
    side_bytes: int = 0
    side_at: int = 0


@dataclass
class GatherItem:
    """One (request, layer) of a gather: indices [k] int32 CUDA, out [k][row bytes] CUDA."""
    table: "GpuTable"
    layer: int
    indices: Any
    out: Any
    side: Any = None


class GpuTable:
    """One stream's block table of a read lease, in GPU memory. Keeps its lease alive."""

    def __init__(self, pool: "GpuPool", lease: ReadLease, stream: int, handle: int) -> None:
        self._pool, self.lease, self.stream, self._handle = pool, lease, stream, handle
        self.pages: int = _gpu().cxlkv_gpu_table_pages(handle)
        self.entry_bytes: int = pool.client.layout.stream(stream).entry_bytes

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and _lib is not None:
            _lib.cxlkv_gpu_table_free(handle)


class HotBuffer:
    """A GPU hot buffer for one (request, layer) (gpu.h GpuHotBuffer): rows kept across steps."""

    def __init__(self, table: GpuTable, handle: int, max_k: int, row_bytes: int) -> None:
        self.table, self._handle, self.max_k, self.row_bytes = table, handle, max_k, row_bytes
        self.capacity: int = _gpu().cxlkv_gpu_hot_capacity(handle)

    def rows(self) -> Any:
        """The [capacity][row bytes] uint8 CUDA tensor of cached rows (a view, no copy)."""
        return _device_view(_gpu().cxlkv_gpu_hot_rows(self._handle), (self.capacity, self.row_bytes), "uint8")

    def row_of(self) -> Any:
        """[max_k] int32 CUDA tensor: the row holding top-k slot i's entry after the last step."""
        return _device_view(_gpu().cxlkv_gpu_hot_row_of(self._handle), (self.max_k,), "int32")

    def last_counts(self) -> tuple[int, int]:
        """(hits, misses) of the last step; synchronizes."""
        hits, misses = c_uint32(), c_uint32()
        _check(_gpu().cxlkv_gpu_hot_last_counts(self._handle, ctypes.byref(hits), ctypes.byref(misses)))
        return hits.value, misses.value

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and _lib is not None:
            _lib.cxlkv_gpu_hot_buffer_free(handle)


def _device_view(address: int, shape: tuple[int, ...], dtype: str) -> Any:
    """A torch tensor over GPU memory the library owns, through the CUDA array interface."""
    import torch

    class _Array:
        __cuda_array_interface__ = {"shape": shape, "typestr": "|u1" if dtype == "uint8" else "<i4",
                                    "data": (address, False), "version": 3, "strides": None}
    return torch.as_tensor(_Array(), device="cuda")


class GatherBatch:
    """A decode step's gather prepared once: items i = (tables[i], layers[i]) write rows into
    out[i] ([items][k][row bytes], CUDA). run(indices) then gathers all of them in one launch from an
    [items][k] int32 CUDA tensor; nothing is built per item per step, so the Python cost of a step
    is one library call."""

    def __init__(self, pool: "GpuPool", tables: Sequence[GpuTable], layers: Sequence[int], out: Any, *,
                 splice: Splice | None = None, sides: Sequence[Any] | None = None) -> None:
        n = len(tables)
        if n == 0 or len(layers) != n or (sides is not None and len(sides) != n):
            raise InvalidArgument(f"GatherBatch: {n} tables, {len(layers)} layers"
                                  f"{'' if sides is None else f', {len(sides)} side arrays'}: one each per item")
        if not is_torch(out) or out.dim() != 3 or out.shape[0] != n:
            raise InvalidArgument(f"GatherBatch: out must be a [{n}][k][row bytes] CUDA tensor, got {describe(out)}")
        self.k, row = int(out.shape[1]), int(out.shape[2]) * out.element_size()
        extra = splice.side_bytes if splice else 0
        for t in tables:
            if t.entry_bytes + extra != row:
                raise InvalidArgument(f"GatherBatch: rows of {row} bytes, the table's are {t.entry_bytes + extra}")
        base = _cuda(out, "GatherBatch out")
        self._pool, self._tables, self._out, self._sides = pool, list(tables), out, sides
        self._items = (_GatherItem * n)()
        for i, (t, layer) in enumerate(zip(tables, layers)):
            self._items[i].table, self._items[i].layer, self._items[i].k = t._handle, layer, self.k
            self._items[i].out = base + i * self.k * row
            self._items[i].side = _cuda(sides[i], f"GatherBatch side {i}") if sides is not None else None
        self._splice = ctypes.byref(_Splice(splice.side_bytes, splice.side_at)) if splice else None
        self._indices_base: int | None = None
        self._indices: Any = None

    def run(self, indices: Any, *, stream: Any = None) -> Any:
        """HOT. Gathers every item's k indices (row i of indices) in one launch; returns out."""
        self._bind(indices)
        _check(_gpu().cxlkv_gpu_gather_topk(self._pool._h(), self._items, len(self._items), _stream(stream),
                                            self._splice))
        return self._out

    def _bind(self, indices: Any) -> None:
        # A new indices tensor (another address) re-points the items; the same one costs nothing.
        if indices is not self._indices or indices.data_ptr() != self._indices_base:
            n = len(self._items)
            if not is_torch(indices) or tuple(indices.shape) != (n, self.k):
                raise InvalidArgument(f"GatherBatch.run: indices must be [{n}][{self.k}] int32, got {describe(indices)}")
            base = _cuda(indices, "GatherBatch.run indices")
            import torch
            if indices.dtype != torch.int32:
                raise InvalidArgument(f"GatherBatch.run: indices must be int32, got {describe(indices)}")
            for i in range(n):
                self._items[i].indices = base + 4 * i * self.k
            self._indices, self._indices_base = indices, base


class GpuPool:
    """The client's mapping registered with CUDA (gpu.h GpuPool). The client must stay open."""

    def __init__(self, client: Client) -> None:
        handle = c_void_p()
        _check(_gpu().cxlkv_gpu_attach(client._h(), ctypes.byref(handle)))
        self.client, self._handle = client, handle.value

    def _h(self) -> int:
        if self._handle is None:
            raise Closed("GPU pool is detached")
        return self._handle

    def close(self) -> None:
        """Unregisters the mapping."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _gpu().cxlkv_gpu_detach(handle)

    def __enter__(self) -> "GpuPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def upload(self, lease: ReadLease, stream: int | str) -> GpuTable:
        """The lease's block table of `stream` in GPU memory (once per lease; synchronous)."""
        s = self.client.layout.stream(stream)
        handle = c_void_p()
        _check(_gpu().cxlkv_gpu_upload(self._h(), lease._h(), s.index, ctypes.byref(handle)))
        return GpuTable(self, lease, s.index, handle.value)

    def gather_topk(self, items: Sequence[GatherItem], *, splice: Splice | None = None, stream: Any = None) -> None:
        """HOT. Gathers every item in one launch on `stream` (torch's current by default). Indices past
        an item's prefix are not read, their rows untouched, and counted (bad_index_count)."""
        if not items:
            return
        row_extra = splice.side_bytes if splice else 0
        batch = (_GatherItem * len(items))()
        for i, it in enumerate(items):
            what = f"gather_topk item {i}"
            k = int(it.indices.shape[0]) if is_torch(it.indices) and it.indices.dim() == 1 else -1
            batch[i].table = it.table._handle
            batch[i].layer = it.layer
            batch[i].indices = _cuda(it.indices, what, int32_1d=True)
            batch[i].k = k
            batch[i].out = _cuda(it.out, what, nbytes=k * (it.table.entry_bytes + row_extra))
            batch[i].side = _cuda(it.side, what) if it.side is not None else None
        sp = ctypes.byref(_Splice(splice.side_bytes, splice.side_at)) if splice else None
        _check(_gpu().cxlkv_gpu_gather_topk(self._h(), batch, len(items), _stream(stream), sp))

    def batch(self, tables: Sequence[GpuTable], layers: Sequence[int], out: Any, *, splice: Splice | None = None,
              sides: Sequence[Any] | None = None) -> GatherBatch:
        """A gather of many (table, layer) items prepared once and run each step (GatherBatch)."""
        return GatherBatch(self, tables, layers, out, splice=splice, sides=sides)

    def bad_index_count(self) -> int:
        """Indices past their prefix since the last call (synchronize the stream first); clears it."""
        n = c_uint32()
        _check(_gpu().cxlkv_gpu_bad_index_count(self._h(), ctypes.byref(n)))
        return n.value

    def reused_count(self) -> int:
        """Outputs poisoned (every byte 0xFF) since the last call because their lease's slabs were
        freed or reused while read (synchronize the stream first); clears it. Non-zero: look the
        prefix up again."""
        n = c_uint32()
        _check(_gpu().cxlkv_gpu_reused_count(self._h(), ctypes.byref(n)))
        return n.value

    _REUSE_CHECK_MODES = {"off": 0, "after": 1, "overlapped": 2, "per-step": 3}

    def set_reuse_check(self, mode: str) -> None:
        """How the reuse check runs (gpu.h GpuPool::ReuseCheck): "overlapped" (the default) or
        "after" check after each read; "per-step" only queues the checks, and check_reads() runs
        them all at once (once per decode step: trust the step only where reused_count() then
        reads 0); "off" only to measure the check's cost."""
        if mode not in self._REUSE_CHECK_MODES:
            raise InvalidArgument(f"set_reuse_check: mode {mode!r} is none of {', '.join(self._REUSE_CHECK_MODES)}")
        _check(_gpu().cxlkv_gpu_set_reuse_check(self._h(), self._REUSE_CHECK_MODES[mode]))

    def check_reads(self, *, stream: Any = None) -> None:
        """Per-step mode: launches the checks queued on the stream as one, asynchronously."""
        _check(_gpu().cxlkv_gpu_check_reads(self._h(), _stream(stream)))

    def fetch_pages(self, lease: ReadLease, stream: int | str, layer: int, out: Any, p0: int = 0,
                    p1: int | None = None, *, cuda_stream: Any = None) -> Any:
        """The whole (stream, layer) of pages [p0, p1) into out (CUDA), packed [tokens][entry_bytes]."""
        s = self.client.layout.stream(stream)
        p1 = lease.pages if p1 is None else p1
        nbytes = (p1 - p0) * self.client.layout.page_tokens * s.entry_bytes
        dst = _cuda(out, f"fetch_pages(stream {s.name}, layer {layer})", nbytes=nbytes)
        _check(_gpu().cxlkv_gpu_fetch_pages(self._h(), lease._h(), s.index, layer, p0, p1, dst, _stream(cuda_stream)))
        return out

    def hot_buffer(self, table: GpuTable, layer: int, capacity_rows: int, max_k: int, *,
                   splice: Splice | None = None, side: Any = None) -> HotBuffer:
        """A hot buffer over a latent table for `layer` (capacity_rows >= 2 x max_k)."""
        handle = c_void_p()
        sp = ctypes.byref(_Splice(splice.side_bytes, splice.side_at)) if splice else None
        side_ptr = _cuda(side, "hot_buffer side") if side is not None else None
        _check(_gpu().cxlkv_gpu_make_hot_buffer(self._h(), table._handle, layer, capacity_rows, max_k, sp, side_ptr,
                                                ctypes.byref(handle)))
        return HotBuffer(table, handle.value, max_k, table.entry_bytes + (splice.side_bytes if splice else 0))

    def hot_step(self, steps: Sequence[tuple[HotBuffer, Any]], step: int, *, stream: Any = None) -> None:
        """One decode step of every (buffer, indices) in one launch; `step` grows by one each call."""
        n = len(steps)
        buffers, indices, ks = (c_void_p * n)(), (c_void_p * n)(), (c_uint32 * n)()
        for i, (buffer, idx) in enumerate(steps):
            buffers[i] = buffer._handle
            indices[i] = _cuda(idx, f"hot_step item {i}", int32_1d=True)
            ks[i] = int(idx.shape[0])
        _check(_gpu().cxlkv_gpu_hot_step(self._h(), buffers, indices, ks, n, step, _stream(stream)))


class SparseDecodeFetcher:
    """The DSA fetch hook of one decode batch (gpu.h GpuSparseFetcher).

    Request r's sequence is its cached prefix (read lease leases[r], prefix_tokens[r] tokens in the
    pool) followed by its tail: the tokens decoded since, whose latent rows the caller keeps in
    tails[r], a uint8 CUDA tensor [layers][tail capacity][row bytes] (row bytes: the latent
    stream's entry, 656 for DeepSeek-V3.2). Each layer of a step, fetch(layer, topk) takes the
    engine's top-k positions, an int32 CUDA tensor [requests][k] (FlashMLA's convention: position
    in the sequence, -1 none), and fills out [requests][k][row bytes]: row i of a request is the
    entry at its position i, from the pool for prefix positions (through a hot buffer per
    (request, layer) when hot_rows > 0, so entries kept from earlier steps are not fetched again),
    from the tail otherwise. That is FlashMLA's packed sparse-decode layout: its attention reads
    row i wherever topk[i] >= 0. Rows of -1 positions are left untouched; positions past prefix +
    tail are too, and counted (GpuPool.bad_index_count). Each call is one library call that queues
    three launches on the stream (torch's current by default) and returns at once.

    When a tail fills a whole page, commit it to the pool with Client.reserve and
    WriteLease.write_pages (CUDA tensors are accepted) so a later request reuses it."""

    def __init__(self, pool: GpuPool, leases: Sequence[ReadLease], tails: Sequence[Any], k: int, *,
                 hot_rows: int = 0, stream: int | str = "latent") -> None:
        if len(leases) != len(tails) or not leases:
            raise InvalidArgument(f"SparseDecodeFetcher: {len(leases)} leases and {len(tails)} tails: one each per request")
        layout = pool.client.layout
        self.row_bytes: int = layout.stream(stream).entry_bytes
        self.k, self.requests = int(k), len(leases)
        self.tables = [pool.upload(lease, stream) for lease in leases]
        self.prefix_tokens: list[int] = [t.pages * layout.page_tokens for t in self.tables]
        self.tail_capacity: list[int] = []
        reqs = (_SparseRequest * self.requests)()
        for r, tail in enumerate(tails):
            what = f"SparseDecodeFetcher tail {r}"
            if not is_torch(tail) or tail.dim() != 3 or tail.shape[0] != layout.layers or \
                    tail.shape[2] * tail.element_size() != self.row_bytes:
                raise InvalidArgument(f"{what}: a [{layout.layers}][capacity][{self.row_bytes} B] CUDA tensor is needed, "
                                      f"got {describe(tail)}")
            reqs[r].table, reqs[r].tail = self.tables[r]._handle, _cuda(tail, what)
            reqs[r].tail_capacity = int(tail.shape[1])
            reqs[r].tail_layer_bytes = int(tail.shape[1]) * self.row_bytes
            self.tail_capacity.append(int(tail.shape[1]))
        handle = c_void_p()
        _check(_gpu().cxlkv_gpu_sparse_fetcher_create(pool._h(), reqs, self.requests, self.k, hot_rows,
                                                      ctypes.byref(handle)))
        self._pool, self._tails, self._handle = pool, list(tails), handle.value
        self.hot_rows = hot_rows
        self.tail_tokens: list[int] = [0] * self.requests
        self._tail_counts = (c_uint32 * self.requests)()
        self._topk: Any = None
        self._out: Any = None

    def set_tail_tokens(self, counts: Sequence[int]) -> None:
        """Tokens in each request's tail (at most its capacity), used from the next fetch on."""
        if len(counts) != self.requests:
            raise InvalidArgument(f"set_tail_tokens: {len(counts)} counts for {self.requests} requests")
        for r, n in enumerate(counts):
            if n < 0:
                raise InvalidArgument(f"set_tail_tokens: request {r}: {n} tokens")
            self._tail_counts[r] = n
        _check(_gpu().cxlkv_gpu_sparse_set_tail_tokens(self._h(), self._tail_counts, self.requests))
        self.tail_tokens = list(counts)

    def fetch(self, layer: int, topk: Any, out: Any = None, *, stream: Any = None) -> Any:
        """HOT. One layer of a step: topk [requests][k] int32 CUDA into out [requests][k][row bytes]
        uint8 CUDA (allocated when None); returns out. A tensor seen on the last call is not checked
        again."""
        if topk is not self._topk:
            self._topk = None
            if not is_torch(topk) or tuple(topk.shape) != (self.requests, self.k):
                raise InvalidArgument(f"fetch: topk must be [{self.requests}][{self.k}] int32, got {describe(topk)}")
            import torch
            if topk.dtype != torch.int32:
                raise InvalidArgument(f"fetch: topk must be int32, got {describe(topk)}")
            _cuda(topk, "fetch topk")
            self._topk = topk
        if out is None:
            import torch
            out = torch.empty((self.requests, self.k, self.row_bytes), dtype=torch.uint8, device=topk.device)
        elif out is not self._out:
            self._out = None
            _cuda(out, "fetch out", nbytes=self.requests * self.k * self.row_bytes)
            self._out = out
        self._pool._h()  # a detached pool's mapping is gone: refuse before the library reads it
        _check(_gpu().cxlkv_gpu_sparse_fetch(self._h(), layer, topk.data_ptr(), out.data_ptr(), _stream(stream)))
        return out

    def check_reuse(self) -> None:
        """Raises cxlkv.Expired when a request's prefix slab was freed or reused (its lease ran out)
        while the fetches read it. Call it once a step's fetches have completed on the stream
        (e.g. after the step's synchronize). The GPU has already poisoned (0xFF) the rows read
        from such slabs and counted them (GpuPool.reused_count); this names the request's lease."""
        for table in self.tables:
            table.lease.check_reuse()

    def hot_counts(self, request: int, layer: int) -> tuple[int, int]:
        """(hits, misses) of (request, layer)'s hot buffer at its last step; synchronizes."""
        hits, misses = c_uint32(), c_uint32()
        _check(_gpu().cxlkv_gpu_sparse_hot_counts(self._h(), request, layer, ctypes.byref(hits), ctypes.byref(misses)))
        return hits.value, misses.value

    def _h(self) -> int:
        if self._handle is None:
            raise Closed("sparse fetcher is closed")
        return self._handle

    def close(self) -> None:
        """Frees the hot buffers and the fetcher's GPU memory."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and _lib is not None:
            _lib.cxlkv_gpu_sparse_fetcher_free(handle)

    def __enter__(self) -> "SparseDecodeFetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
