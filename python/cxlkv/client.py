"""Client, WriteLease and ReadLease: the session, write path and read path of libcxlkv for
Python decode and prefill workers. Every method maps to one C ABI call (or one per page and
layer for the batched writes); the checks here only turn Python objects into the pointers and
sizes the library takes, and the library's codes into cxlkv.Error subclasses."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from . import _native as native
from ._buffers import host_buffer, int32_indices, is_torch, new_rows
from .errors import Closed, Error, InvalidArgument, from_code

KEY_BYTES = 32

Key = bytes | bytearray | str
"""A page key: 32 bytes, or SGLang's 64-hex-character SHA-256 string of the same digest."""


def _on_host(data: Any) -> Any:
    """data itself, or a CUDA tensor's host copy (made after the work queued on its stream)."""
    if is_torch(data) and data.device.type == "cuda":
        return data.to("cpu")
    return data


def _check(rc: int) -> None:
    if rc != 0:
        raise from_code(rc, native.last_error())


def key_bytes(key: Key) -> bytes:
    """A page key as 32 bytes: bytes-like values are taken as they are, 64-character strings as hex."""
    if isinstance(key, str):
        if len(key) != 2 * KEY_BYTES:
            raise InvalidArgument(f"page key {key!r}: a hex key has {2 * KEY_BYTES} characters, got {len(key)}")
        try:
            return bytes.fromhex(key)
        except ValueError:
            raise InvalidArgument(f"page key {key!r} is not hexadecimal") from None
    if isinstance(key, (bytes, bytearray, memoryview)):
        if len(key) != KEY_BYTES:
            raise InvalidArgument(f"page key of {len(key)} bytes: {KEY_BYTES} expected")
        return bytes(key)
    raise InvalidArgument(f"page key: bytes or a hex string expected, got {type(key).__name__}")


def _key_array(keys: Iterable[Key]) -> ctypes.Array:
    values = [key_bytes(k) for k in keys]
    array = (native.PageKeyStruct * len(values))()
    for i, value in enumerate(values):
        ctypes.memmove(array[i].bytes, value, KEY_BYTES)
    return array


def _parent(parent: Key | None) -> Any:
    if parent is None:
        return None
    p = native.PageKeyStruct()
    ctypes.memmove(p.bytes, key_bytes(parent), KEY_BYTES)
    return ctypes.byref(p)


@dataclass(frozen=True)
class Stream:
    """One stream of the layout: `sparse` streams are fetched per entry (top-k), bulk ones whole."""
    index: int
    name: str
    entry_bytes: int
    entry_stride: int
    sparse: bool


@dataclass(frozen=True)
class Layout:
    """The pool's layout class (include/cxlkv/layout.h): page tokens, layers and streams."""
    name: str
    page_tokens: int
    layers: int
    streams: tuple[Stream, ...]

    def stream(self, stream: int | str) -> Stream:
        """The stream by index or name; InvalidArgument naming the layout's streams otherwise."""
        for s in self.streams:
            if s.index == stream or s.name == stream:
                return s
        names = ", ".join(s.name for s in self.streams)
        raise InvalidArgument(f"layout {self.name} has no stream {stream!r} (streams: {names})")


@dataclass(frozen=True)
class PoolStats:
    """The daemon's counters."""
    pages_committed: int
    pages_reserved: int
    slabs_total: int
    slabs_free: int
    read_leases: int
    write_leases: int
    lookup_hits: int
    lookup_misses: int
    evictions: int


class Client:
    """One session with a cxlkv-poold (include/cxlkv/client.h) and its mapping of the region.

    Client("unix:/run/cxlkv/pool.sock", tenant="t", token="secret", model="deepseek-v3.2") connects,
    says hello and maps the region. Use it as a context manager, or call close(). One Client may be
    shared by threads; close() must not race the other calls on it. Leases it returned stay valid
    after close() until they are released. read_only=True makes it a reader session (decode
    workers): lookups and reads only, the region mapped read-only; reserve raises PermissionDenied.
    Client("tls:HOST:PORT", ..., tls_ca_file="ca.pem") speaks TLS to a daemon whose TCP listener has
    a certificate, checked against that CA file (default: the system's trusted CAs).
    Client("etcd://HOST:PORT/NAME", ...) connects to every memory node of a cluster (docs/cluster.md):
    the same calls, with prefixes placed over the nodes and leases that span them."""

    def __init__(self, endpoint: str, tenant: str = "", token: str = "", model: str = "", *,
                 want_fd: bool = True, region_path: str | None = None, io_timeout_ms: int = 0,
                 read_only: bool = False, tls_ca_file: str | None = None) -> None:
        options = native.OptionsStruct(endpoint.encode(), tenant.encode(), token.encode(), model.encode(),
                                       1 if want_fd else 0, region_path.encode() if region_path else None,
                                       int(io_timeout_ms), 1 if read_only else 0,
                                       tls_ca_file.encode() if tls_ca_file else None)
        handle = ctypes.c_void_p()
        _check(native.lib.cxlkv_connect(ctypes.byref(options), ctypes.byref(handle)))
        self._handle: int | None = handle.value
        lib, h = native.lib, self._handle
        streams = tuple(
            Stream(s, lib.cxlkv_stream_name(h, s).decode(), lib.cxlkv_entry_bytes(h, s),
                   lib.cxlkv_entry_stride(h, s), lib.cxlkv_stream_sparse(h, s) == 1)
            for s in range(lib.cxlkv_stream_count(h)))
        self.layout = Layout(lib.cxlkv_layout_name(h).decode(), lib.cxlkv_page_tokens(h), lib.cxlkv_layers(h),
                             streams)
        self.namespace_id: int = lib.cxlkv_namespace_id(h)
        self.endpoint = endpoint
        self.model = model

    def _h(self) -> int:
        if self._handle is None:
            raise Closed(f"client of {self.endpoint} is closed")
        return self._handle

    def close(self) -> None:
        """Disconnects; open leases keep the session alive until they are released."""
        handle, self._handle = getattr(self, "_handle", None), None  # None too when __init__ failed
        if handle is not None:
            native.lib.cxlkv_disconnect(handle)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"layout {self.layout.name}"
        return f"cxlkv.Client({self.endpoint!r}, {state})"

    def page_keys(self, tokens: Sequence[int] | np.ndarray, parent: Key | None = None) -> list[bytes]:
        """Keys (32 bytes each) of the whole pages of `tokens` in this namespace, chained from parent."""
        array = np.ascontiguousarray(np.asarray(tokens, dtype=np.int32))
        pages = array.size // self.layout.page_tokens
        out = (native.PageKeyStruct * max(pages, 1))()
        n = native.lib.cxlkv_page_keys(self._h(), array.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), array.size,
                                       _parent(parent), out, pages)
        return [bytes(out[i].bytes) for i in range(min(n, pages))]

    def reserve(self, keys: Sequence[Key], parent: Key | None = None) -> "WriteLease":
        """A write lease on slots for keys[i] = page i of a run whose previous page is `parent`."""
        array = _key_array(keys)
        handle = ctypes.c_void_p()
        _check(native.lib.cxlkv_reserve(self._h(), _parent(parent), array, len(array), ctypes.byref(handle)))
        return WriteLease(self, handle.value)

    def lookup(self, keys: Sequence[Key]) -> "ReadLease":
        """The longest committed prefix of keys, pinned by a read lease (0 pages when the first misses)."""
        array = _key_array(keys)
        handle = ctypes.c_void_p()
        _check(native.lib.cxlkv_lookup(self._h(), array, len(array), ctypes.byref(handle)))
        return ReadLease(self, handle.value)

    def remove(self, keys: Sequence[Key]) -> int:
        """Frees the committed, unpinned pages among keys; returns how many."""
        array = _key_array(keys)
        removed = ctypes.c_uint32()
        _check(native.lib.cxlkv_remove(self._h(), array, len(array), ctypes.byref(removed)))
        return removed.value

    def stats(self) -> PoolStats:
        """The daemon's counters."""
        s = native.StatsStruct()
        _check(native.lib.cxlkv_get_stats(self._h(), ctypes.byref(s)))
        return PoolStats(*(getattr(s, name) for name, _ in native.StatsStruct._fields_))


class WriteLease:
    """Slots reserved for a run of pages (include/cxlkv/write_lease.h). Write every (stream, layer)
    of each writable page, then commit(). As a context manager it aborts when the block raises or
    ends without commit(), so nothing half-written is ever published."""

    def __init__(self, client: Client, handle: int) -> None:
        self._client = client  # the session outlives the lease
        self._handle: int | None = handle
        self.pages: int = native.lib.cxlkv_write_lease_pages(handle)
        self._open = True

    def _h(self) -> int:
        if self._handle is None or not self._open:
            raise Closed("write lease is already committed or aborted")
        return self._handle

    def writable(self, page: int) -> bool:
        """False for pages already cached or being written elsewhere: writes to them are no-ops."""
        return bool(native.lib.cxlkv_write_lease_writable(self._h(), page))

    def write(self, page: int, stream: int | str, layer: int, data: Any) -> None:
        """Writes one (stream, layer) run of a page: page_tokens packed entries, from a numpy array or
        a torch tensor (CPU or CUDA) of exactly page_tokens x entry_bytes bytes. A CUDA tensor is
        copied to host memory first, in the order of torch's current stream, then written like any
        other: non-temporal stores into the slab, fenced at commit (DESIGN.md, coherence rule 1)."""
        s = self._client.layout.stream(stream)
        tokens = self._client.layout.page_tokens
        data = _on_host(data)
        address = host_buffer(data, nbytes=tokens * s.entry_bytes, writable=False,
                              what=f"write(page {page}, stream {s.name}, layer {layer})")
        _check(native.lib.cxlkv_write_entries(self._h(), page, s.index, layer, address, tokens))

    def write_pages(self, stream: int | str, data: Any, first_page: int = 0) -> None:
        """Writes every layer of one stream for pages first_page.. from data shaped
        [pages][layers][page_tokens][entry_bytes] (any dtype with that many bytes per page), CPU or
        CUDA (copied to host memory first, as write() does)."""
        data = _on_host(data)
        s = self._client.layout.stream(stream)
        layout = self._client.layout
        run = layout.page_tokens * s.entry_bytes
        page_bytes = layout.layers * run
        what = f"write_pages(stream {s.name})"
        total = data.numel() * data.element_size() if hasattr(data, "element_size") else getattr(data, "nbytes", -1)
        if total <= 0 or total % page_bytes:
            raise InvalidArgument(f"{what}: {total} bytes is not a whole number of pages of {page_bytes} bytes")
        pages = total // page_bytes
        if first_page < 0 or first_page + pages > self.pages:
            raise InvalidArgument(f"{what}: pages {first_page}..{first_page + pages - 1} past the lease's {self.pages}")
        base = host_buffer(data, nbytes=total, writable=False, what=what)
        h = self._h()
        for p in range(pages):
            for layer in range(layout.layers):
                _check(native.lib.cxlkv_write_entries(h, first_page + p, s.index, layer,
                                                      base + p * page_bytes + layer * run, layout.page_tokens))

    def commit(self) -> int:
        """Fences the writes and publishes every writable page; returns how many were committed."""
        committed = ctypes.c_uint32()
        _check(native.lib.cxlkv_commit(self._client._h(), self._h(), ctypes.byref(committed)))
        self._open = False
        return committed.value

    def abort(self) -> None:
        """Returns the slots; nothing of this lease is published."""
        if self._handle is not None and self._open:
            self._open = False
            _check(native.lib.cxlkv_abort(self._client._h(), self._handle))

    def __enter__(self) -> "WriteLease":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._open:
            try:
                self.abort()
            except Error:
                if exc[0] is None:
                    raise

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            native.lib.cxlkv_write_lease_free(handle)  # aborts a lease still open


class ReadLease:
    """Committed pages of a prefix pinned for a TTL, and the reads over them
    (include/cxlkv/read_lease.h). release() (or leaving the with-block) unpins them; the object's
    memory lives until no reference is left, so a thread still gathering never reads freed state."""

    def __init__(self, client: Client, handle: int) -> None:
        self._client = client
        self._handle = handle
        self._released = False
        self._lock = threading.Lock()
        self.pages: int = native.lib.cxlkv_read_lease_pages(handle)
        self.prefix_tokens: int = self.pages * client.layout.page_tokens
        self.id: int = native.lib.cxlkv_read_lease_id(handle)
        #: memory nodes the pages are on: 1, or more for a Client over a cluster (etcd://)
        self.nodes: int = native.lib.cxlkv_read_lease_nodes(handle)

    def _h(self) -> int:
        if self._released:
            raise Closed(f"read lease {self.id} is released")
        return self._handle

    def block_table(self) -> np.ndarray:
        """Where each page lives: int64 [pages][4] of (slab_offset, position, generation, slab),
        slab_offset into the region of the lease's one memory node. A lease over several nodes has
        no such table (its pages are in several regions): InvalidArgument names the node count."""
        if self.nodes > 1:
            raise InvalidArgument(f"block_table: the lease spans {self.nodes} memory nodes; a block table "
                                  "addresses one node's region (docs/cluster.md)")
        out = (native.PlacementStruct * max(self.pages, 1))()
        native.lib.cxlkv_read_lease_placements(self._h(), out, self.pages)
        table = np.empty((self.pages, 4), dtype=np.int64)
        for i in range(self.pages):
            table[i] = (out[i].slab_offset, out[i].position, out[i].generation, out[i].slab)
        return table

    def gather_topk(self, stream: int | str, layer: int, indices: Any, out: Any = None) -> Any:
        """HOT. Copies the entries of (stream, layer) named by indices (int32, FlashMLA's convention:
        page x page_tokens + offset; -1 leaves its row untouched) into out, [k][entry_bytes], in
        place: a CPU numpy array or torch tensor (a new uint8 one of indices' kind when None).
        Any index < -1 or past the prefix raises InvalidArgument and out is untouched."""
        s = self._client.layout.stream(stream)
        what = f"gather_topk(stream {s.name}, layer {layer})"
        address, k = int32_indices(indices, what)
        if out is None:
            out = new_rows(indices, k, s.entry_bytes)
        dst = host_buffer(out, nbytes=k * s.entry_bytes, writable=True, what=what)
        _check(native.lib.cxlkv_gather_topk(self._h(), s.index, layer, address, k, dst))
        return out

    def fetch_pages(self, stream: int | str, layer: int, p0: int = 0, p1: int | None = None, out: Any = None) -> Any:
        """Copies the whole (stream, layer) of pages [p0, p1) into out, packed
        [(p1 - p0) x page_tokens][entry_bytes] (a new numpy uint8 array when None)."""
        s = self._client.layout.stream(stream)
        p1 = self.pages if p1 is None else p1
        if not 0 <= p0 <= p1 <= self.pages:
            raise InvalidArgument(f"fetch_pages: pages [{p0}, {p1}) outside the lease's [0, {self.pages})")
        rows = (p1 - p0) * self._client.layout.page_tokens
        if out is None:
            out = np.empty((rows, s.entry_bytes), dtype=np.uint8)
        dst = host_buffer(out, nbytes=rows * s.entry_bytes, writable=True,
                          what=f"fetch_pages(stream {s.name}, layer {layer})")
        _check(native.lib.cxlkv_fetch_pages(self._h(), s.index, layer, p0, p1, dst))
        return out

    def check_reuse(self) -> None:
        """Raises cxlkv.Expired once a slab of the lease's pages was freed or reused (its TTL ran
        out, or the daemon restarted and evicted it). gather_topk and fetch_pages check this
        themselves; call it after GPU copies from the lease (cxlkv.gpu) have completed, before
        using their rows."""
        _check(native.lib.cxlkv_read_lease_check_reuse(self._h()))

    def renew(self) -> int:
        """Extends the lease; returns its new TTL in milliseconds."""
        ttl = ctypes.c_uint32()
        _check(native.lib.cxlkv_renew(self._h(), ctypes.byref(ttl)))
        return ttl.value

    def release(self) -> None:
        """Unpins the pages; later reads raise Closed. It must not race a gather or fetch on this
        lease in another thread (or a GPU launch still reading it): those read pages it unpins."""
        with self._lock:
            if self._released:
                return
            self._released = True
        _check(native.lib.cxlkv_release(self._handle))

    def __enter__(self) -> "ReadLease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            native.lib.cxlkv_read_lease_free(handle)
