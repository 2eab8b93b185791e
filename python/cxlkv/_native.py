"""The C ABI of libcxlkv (include/cxlkv/cxlkv.h) through ctypes: library loading and the
signature of every function this package calls. Nothing else in the package touches ctypes
declarations; everything here is one-to-one with the header. ctypes releases the GIL for the
duration of every foreign call, so gathers, fetches and commits run without it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import POINTER, c_char_p, c_int, c_int32, c_size_t, c_uint16, c_uint32, c_uint64, c_void_p


class PageKeyStruct(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint8 * 32)]


class OptionsStruct(ctypes.Structure):
    _fields_ = [
        ("endpoint", c_char_p),
        ("tenant", c_char_p),
        ("token", c_char_p),
        ("model", c_char_p),
        ("want_fd", c_int),
        ("region_path", c_char_p),
        ("io_timeout_ms", c_int),
        ("read_only", c_int),
        ("tls_ca_file", c_char_p),
    ]


class StatsStruct(ctypes.Structure):
    _fields_ = [(name, c_uint64) for name in (
        "pages_committed", "pages_reserved", "slabs_total", "slabs_free", "read_leases",
        "write_leases", "lookup_hits", "lookup_misses", "evictions")]


class PlacementStruct(ctypes.Structure):
    _fields_ = [
        ("slab_offset", c_uint64),
        ("generation", c_uint64),
        ("slab", c_uint32),
        ("position", c_uint16),
        ("flags", c_uint16),
    ]


class RouteAffinityStruct(ctypes.Structure):
    _fields_ = [("worker", c_char_p), ("node", c_char_p), ("weight", ctypes.c_double)]


def _library_path() -> str:
    """CXLKV_LIBRARY, else the path recorded at build or install time, else the linker's search."""
    explicit = os.environ.get("CXLKV_LIBRARY")
    if explicit:
        return explicit
    try:
        from . import _libpath  # written by python/meson.build
        if os.path.exists(_libpath.LIBRARY):
            return _libpath.LIBRARY
    except ImportError:
        pass
    found = ctypes.util.find_library("cxlkv")
    if found:
        return found
    raise ImportError("cxlkv: libcxlkv.so not found: set CXLKV_LIBRARY to its path, or install it "
                      "(meson install) where the dynamic linker finds it")


lib = ctypes.CDLL(_library_path())

_client = c_void_p
_write_lease = c_void_p
_read_lease = c_void_p
_key_p = POINTER(PageKeyStruct)

_SIGNATURES = {
    "cxlkv_last_error": (c_char_p, []),
    "cxlkv_connect": (c_int, [POINTER(OptionsStruct), POINTER(c_void_p)]),
    "cxlkv_disconnect": (None, [_client]),
    "cxlkv_namespace_id": (c_uint64, [_client]),
    "cxlkv_page_tokens": (c_uint32, [_client]),
    "cxlkv_layers": (c_uint32, [_client]),
    "cxlkv_stream_index": (c_int, [_client, c_char_p]),
    "cxlkv_entry_bytes": (c_uint32, [_client, c_int]),
    "cxlkv_layout_name": (c_char_p, [_client]),
    "cxlkv_stream_count": (c_int, [_client]),
    "cxlkv_stream_name": (c_char_p, [_client, c_int]),
    "cxlkv_entry_stride": (c_uint32, [_client, c_int]),
    "cxlkv_stream_sparse": (c_int, [_client, c_int]),
    "cxlkv_get_stats": (c_int, [_client, POINTER(StatsStruct)]),
    "cxlkv_remove": (c_int, [_client, _key_p, c_size_t, POINTER(c_uint32)]),
    "cxlkv_page_keys": (c_size_t, [_client, POINTER(c_int32), c_size_t, _key_p, _key_p, c_size_t]),
    "cxlkv_namespace_of": (c_uint64, [c_char_p, c_char_p]),
    "cxlkv_prefix_page_keys": (c_size_t, [c_uint64, c_uint32, POINTER(c_int32), c_size_t, _key_p, _key_p, c_size_t]),
    "cxlkv_route": (c_int, [c_char_p, c_uint64, _key_p, c_size_t, POINTER(RouteAffinityStruct), c_size_t, c_int,
                            c_void_p, c_size_t, POINTER(c_size_t)]),
    "cxlkv_router_open": (c_int, [c_char_p, c_int, c_int, POINTER(c_void_p)]),
    "cxlkv_router_route": (c_int, [c_void_p, c_uint64, _key_p, c_size_t, POINTER(RouteAffinityStruct), c_size_t,
                                   c_void_p, c_size_t, POINTER(c_size_t)]),
    "cxlkv_router_directory_reads": (c_uint64, [c_void_p]),
    "cxlkv_router_close": (None, [c_void_p]),
    "cxlkv_reserve": (c_int, [_client, _key_p, _key_p, c_size_t, POINTER(c_void_p)]),
    "cxlkv_write_lease_pages": (c_uint32, [_write_lease]),
    "cxlkv_write_lease_writable": (c_int, [_write_lease, c_uint32]),
    "cxlkv_write_entries": (c_int, [_write_lease, c_uint32, c_int, c_uint32, c_void_p, c_uint32]),
    "cxlkv_commit": (c_int, [_client, _write_lease, POINTER(c_uint32)]),
    "cxlkv_abort": (c_int, [_client, _write_lease]),
    "cxlkv_write_lease_free": (None, [_write_lease]),
    "cxlkv_lookup": (c_int, [_client, _key_p, c_size_t, POINTER(c_void_p)]),
    "cxlkv_read_lease_pages": (c_uint32, [_read_lease]),
    "cxlkv_read_lease_nodes": (c_uint32, [_read_lease]),
    "cxlkv_read_lease_placements": (c_size_t, [_read_lease, POINTER(PlacementStruct), c_size_t]),
    "cxlkv_read_lease_id": (c_uint64, [_read_lease]),
    "cxlkv_gather_topk": (c_int, [_read_lease, c_int, c_uint32, c_void_p, c_int, c_void_p]),
    "cxlkv_fetch_pages": (c_int, [_read_lease, c_int, c_uint32, c_uint32, c_uint32, c_void_p]),
    "cxlkv_read_lease_check_reuse": (c_int, [_read_lease]),
    "cxlkv_renew": (c_int, [_read_lease, POINTER(c_uint32)]),
    "cxlkv_release": (c_int, [_read_lease]),
    "cxlkv_read_lease_free": (None, [_read_lease]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes


def last_error() -> str:
    message = lib.cxlkv_last_error()
    return message.decode("utf-8", "replace") if message else ""
