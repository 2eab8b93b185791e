"""Pointers into the caller's numpy arrays and torch tensors, checked before any library call:
dtype, shape, contiguity, device and writability. No data is copied here: the library reads
or writes the caller's memory in place (zero-copy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidArgument


def is_torch(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "torch"


def describe(obj: Any) -> str:
    if is_torch(obj):
        return f"torch.Tensor(dtype={obj.dtype}, shape={tuple(obj.shape)}, device={obj.device})"
    if isinstance(obj, np.ndarray):
        return f"numpy.ndarray(dtype={obj.dtype}, shape={obj.shape})"
    return type(obj).__name__


def host_buffer(obj: Any, *, nbytes: int, writable: bool, what: str) -> int:
    """The address of obj's bytes: a C-contiguous CPU numpy array or torch tensor of exactly
    `nbytes` bytes (any dtype). Raises InvalidArgument naming what is wrong."""
    if is_torch(obj):
        if obj.device.type != "cpu":
            raise InvalidArgument(f"{what}: {describe(obj)} is on {obj.device}; this call takes CPU "
                                  "memory (GPU tensors go through the GPU path)")
        if not obj.is_contiguous():
            raise InvalidArgument(f"{what}: {describe(obj)} is not contiguous")
        size = obj.numel() * obj.element_size()
        address = obj.data_ptr()
    elif isinstance(obj, np.ndarray):
        if not obj.flags.c_contiguous:
            raise InvalidArgument(f"{what}: {describe(obj)} is not C-contiguous")
        if writable and not obj.flags.writeable:
            raise InvalidArgument(f"{what}: {describe(obj)} is read-only")
        size = obj.nbytes
        address = obj.ctypes.data
    else:
        raise InvalidArgument(f"{what}: a numpy array or torch tensor is needed, got {describe(obj)}")
    if size != nbytes:
        raise InvalidArgument(f"{what}: {describe(obj)} holds {size} bytes, {nbytes} expected")
    return address


def int32_indices(obj: Any, what: str) -> tuple[int, int]:
    """(address, k) of a 1-D C-contiguous int32 CPU array or tensor of top-k indices."""
    if is_torch(obj):
        import torch
        if obj.dtype != torch.int32:
            raise InvalidArgument(f"{what}: indices must be int32, got {describe(obj)}")
        if obj.dim() != 1:
            raise InvalidArgument(f"{what}: indices must be 1-D, got {describe(obj)}")
        k = int(obj.shape[0])
    elif isinstance(obj, np.ndarray):
        if obj.dtype != np.int32:
            raise InvalidArgument(f"{what}: indices must be int32, got {describe(obj)}")
        if obj.ndim != 1:
            raise InvalidArgument(f"{what}: indices must be 1-D, got {describe(obj)}")
        k = int(obj.shape[0])
    else:
        raise InvalidArgument(f"{what}: indices must be a numpy array or torch tensor, got {describe(obj)}")
    return host_buffer(obj, nbytes=4 * k, writable=False, what=what), k


def new_rows(like: Any, rows: int, row_bytes: int) -> Any:
    """An uninitialised [rows][row_bytes] uint8 buffer of the same kind (numpy or torch CPU) as `like`."""
    if is_torch(like):
        import torch
        return torch.empty((rows, row_bytes), dtype=torch.uint8)
    return np.empty((rows, row_bytes), dtype=np.uint8)
