"""Stand-in of sglang.srt.mem_cache.pool_host.base.HostKVCache: host memory of token slots, handed
out page by page (alloc/free), with the page accessors the storage path uses. CPU only: pin_memory
is accepted and ignored, and the device<->host transfers raise (no device in these tests)."""

from __future__ import annotations

import abc
import threading
from typing import Optional

import torch


class HostKVCache(abc.ABC):
    def __init__(self, device_pool, host_to_device_ratio: float, host_size: int, page_size: int, layout: str,
                 pin_memory: bool, device: str, allocator_type: str = "default", dcp_size: int = 1,
                 dcp_rank: int = 0, *, pool_label: str = "kv") -> None:
        self.device_pool = device_pool
        self.page_size = page_size
        self.layout = layout
        self.pin_memory = pin_memory
        self.device = device
        self.dtype = device_pool.store_dtype
        self.start_layer = device_pool.start_layer
        self.end_layer = device_pool.end_layer
        self.dcp_size = dcp_size
        self.pool_label = pool_label
        self.size_per_token = self.get_size_per_token()
        # host_size is in GB, as upstream; 0 sizes the pool as a multiple of the device pool
        tokens = int(host_size * 1e9 // self.size_per_token) if host_size > 0 else \
            int(device_pool.size * host_to_device_ratio)
        self.size = tokens - tokens % page_size
        self.logical_size = self.size
        self.page_num = self.size // page_size
        self.can_use_write_back_jit = False
        self.kv_buffer = self.init_kv_buffer()
        self.lock = threading.RLock()
        self.clear()

    @abc.abstractmethod
    def get_size_per_token(self) -> int: ...

    @abc.abstractmethod
    def init_kv_buffer(self) -> torch.Tensor: ...

    @abc.abstractmethod
    def get_data_page(self, index, flat: bool = True) -> torch.Tensor: ...

    @abc.abstractmethod
    def get_dummy_flat_data_page(self) -> torch.Tensor: ...

    @abc.abstractmethod
    def set_from_flat_data_page(self, index: int, data_page: torch.Tensor) -> None: ...

    def load_to_device_per_layer(self, device_pool, host_indices, device_indices, layer_id, io_backend) -> None:
        raise NotImplementedError("stand-in host pool: no device")

    def backup_from_device_all_layer(self, device_pool, host_indices, device_indices, io_backend) -> None:
        raise NotImplementedError("stand-in host pool: no device")

    def clear(self) -> None:
        self._free_pages = list(range(self.page_num))

    def available_size(self) -> int:
        return len(self._free_pages) * self.page_size

    def alloc(self, need_size: int) -> Optional[torch.Tensor]:
        """need_size token slots, whole pages (int64 CPU); None when the pool is short of pages."""
        assert need_size % self.page_size == 0, f"alloc({need_size}): not a multiple of {self.page_size}"
        with self.lock:
            pages = need_size // self.page_size
            if pages > len(self._free_pages):
                return None
            taken, self._free_pages = self._free_pages[:pages], self._free_pages[pages:]
        slots = [p * self.page_size + t for p in taken for t in range(self.page_size)]
        return torch.tensor(slots, dtype=torch.int64)

    def free(self, indices: torch.Tensor) -> int:
        with self.lock:
            self._free_pages += sorted({int(s) // self.page_size for s in indices.tolist()})
        return len(indices)
