"""Stand-in of PoolEntry and HostPoolGroup (sglang.srt.mem_cache.memory_pool_host): the hybrid
stack's host pools by name; the group's page accessors go to the anchor (KV) pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from .hicache_storage import PoolName


@dataclass
class PoolEntry:
    name: PoolName
    host_pool: Any
    device_pool: Any
    layer_mapper: Callable[[int], Optional[int]]
    is_primary_index_anchor: bool = False
    host_evict_fn: Optional[Callable] = None
    device_evict_fn: Optional[Callable] = None
    device_alloc_fn: Optional[Callable] = None
    device_free_fn: Optional[Callable] = None


class HostPoolGroup:
    def __init__(self, entries: list[PoolEntry]) -> None:
        if not entries:
            raise ValueError("HostPoolGroup requires at least one pool entry.")
        self.entries = entries
        self.entry_map = {e.name: e for e in entries}
        self.anchor_entry = next((e for e in entries if e.is_primary_index_anchor), entries[0])
        anchor = self.anchor_entry.host_pool
        self.layout = anchor.layout
        self.page_size = anchor.page_size
        self.device = anchor.device
        self.size = anchor.size
        self.logical_size = anchor.logical_size

    @property
    def kv_buffer(self) -> torch.Tensor:
        return self.anchor_entry.host_pool.kv_buffer

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor_entry.host_pool.dtype

    @property
    def size_per_token(self) -> int:
        return self.anchor_entry.host_pool.size_per_token

    def get_size_per_token(self) -> int:
        return self.anchor_entry.host_pool.get_size_per_token()

    def get_ksize_per_token(self) -> int:
        return self.anchor_entry.host_pool.get_ksize_per_token()

    def get_pool(self, name: PoolName) -> Any:
        return self.entry_map[name].host_pool

    def get_page_buffer_meta(self, indices: torch.Tensor):
        return self.anchor_entry.host_pool.get_page_buffer_meta(indices)

    def available_size(self) -> int:
        return self.anchor_entry.host_pool.available_size()

    def alloc(self, need_size: int) -> Optional[torch.Tensor]:
        return self.anchor_entry.host_pool.alloc(need_size)

    def free(self, indices: torch.Tensor) -> int:
        return self.anchor_entry.host_pool.free(indices)

    def get_data_page(self, index, flat: bool = True) -> torch.Tensor:
        return self.anchor_entry.host_pool.get_data_page(index, flat)

    def get_dummy_flat_data_page(self) -> torch.Tensor:
        return self.anchor_entry.host_pool.get_dummy_flat_data_page()

    def set_from_flat_data_page(self, index: int, data_page: torch.Tensor) -> None:
        self.anchor_entry.host_pool.set_from_flat_data_page(index, data_page)
