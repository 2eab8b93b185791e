"""cxlkv: the KV-cache pool on CXL memory for sparse-attention serving, from Python.

A thin, typed layer over libcxlkv's C ABI (include/cxlkv/cxlkv.h), zero-copy into numpy arrays
and torch CPU tensors:

    import cxlkv
    with cxlkv.Client("unix:/run/cxlkv/pool.sock", "tenant", "token", "deepseek-v3.2") as c:
        keys = c.page_keys(tokens)
        with c.lookup(keys) as lease:
            rows = lease.gather_topk("latent", layer, topk_indices)   # [k][656] uint8

Over a cluster (endpoint "etcd://HOST:PORT/NAME"), cxlkv.route(tokens, workers, cluster=...,
tenant=..., model=...) tells a scheduler how much of a prompt the memory nodes hold and which of
its decode workers sits nearest.

Errors raise cxlkv.Error subclasses carrying the library's code and message."""

from .client import Client, Key, Layout, PoolStats, ReadLease, Stream, WriteLease, key_bytes
from .route import RankedWorker, Route, Router, namespace_id, prompt_keys, route
from .errors import (AlreadyExists, Busy, Closed, Corrupt, Error, Exhausted, Expired, InvalidArgument, IoError,
                     Mismatch, NotFound, PermissionDenied, Protocol, Unavailable)

__all__ = [
    "Client", "Key", "RankedWorker", "Route", "Router", "namespace_id", "prompt_keys", "route", "Layout", "PoolStats", "ReadLease", "Stream", "WriteLease", "key_bytes",
    "Error", "AlreadyExists", "Busy", "Closed", "Corrupt", "Exhausted", "Expired", "InvalidArgument",
    "IoError", "Mismatch", "NotFound", "PermissionDenied", "Protocol", "Unavailable",
]
