"""Stand-in of sglang.srt.mem_cache.pool_host.dsa.DSAIndexerPoolHost: DeepSeek-V3.2's indexer keys
on the host, sharing the KV anchor's slot numbering (page = slot // page_size). Per token and
layer index_head_dim + index_head_dim // quant_block_size * 4 bytes (132); buffer
  layer_first               [layer_num, page_num, 132 * page_size]
  page_first(_direct)       [page_num, layer_num, 1, 132 * page_size]"""

from __future__ import annotations

import torch

from ..memory_pool import DSATokenToKVPool
from .base import HostKVCache


class DSAIndexerPoolHost(HostKVCache):
    def __init__(self, device_pool: DSATokenToKVPool, anchor_host, layout: str, pin_memory: bool = True,
                 device: str = "cpu", allocator_type: str = "default") -> None:
        self.device_pool = device_pool
        self.page_size = anchor_host.page_size
        self.layout = layout
        self.pin_memory = pin_memory
        self.device = device
        self.dtype = device_pool.store_dtype
        self.start_layer = device_pool.start_layer
        self.end_layer = device_pool.end_layer
        self.mtp_draft_device_pools = anchor_host.mtp_draft_device_pools
        self.layer_num = device_pool.layer_num + len(self.mtp_draft_device_pools)
        self.index_head_dim = device_pool.index_head_dim
        self.indexer_quant_block_size = device_pool.quant_block_size
        self.indexer_dtype = DSATokenToKVPool.index_k_with_scale_buffer_dtype
        self.indexer_size_per_token = self.index_head_dim + self.index_head_dim // self.indexer_quant_block_size * 4
        self.size = anchor_host.size
        self.logical_size = self.size
        self.page_num = anchor_host.page_num
        item = torch.tensor([], dtype=self.indexer_dtype).element_size()
        self.indexer_page_stride_size = self.indexer_size_per_token * self.page_size * item
        self.size_per_token = self.get_size_per_token()
        self.can_use_write_back_jit = False
        self.init_kv_buffer()
        self.lock = anchor_host.lock
        self.clear()

    def get_size_per_token(self) -> int:
        return self.indexer_size_per_token * self.layer_num * torch.tensor([], dtype=self.indexer_dtype).element_size()

    def get_ksize_per_token(self) -> int:
        return self.get_size_per_token()

    def init_kv_buffer(self) -> torch.Tensor:
        if self.layout == "layer_first":
            shape = (self.layer_num, self.page_num, self.indexer_page_stride_size)
        elif self.layout in ("page_first", "page_first_direct"):
            shape = (self.page_num, self.layer_num, 1, self.indexer_page_stride_size)
        else:
            raise ValueError(f"Unsupported layout: {self.layout}")
        self.index_k_with_scale_buffer = torch.zeros(shape, dtype=self.indexer_dtype)
        return self.index_k_with_scale_buffer

    def _page_view(self, index: int) -> torch.Tensor:
        page = int(index) // self.page_size
        if self.layout == "layer_first":
            return self.index_k_with_scale_buffer[:, page:page + 1]
        return self.index_k_with_scale_buffer[page:page + 1]

    def get_data_page(self, index, flat: bool = True) -> torch.Tensor:
        page = self._page_view(index)
        return page.flatten() if flat else page

    def get_dummy_flat_data_page(self) -> torch.Tensor:
        return torch.zeros((self.layer_num, self.indexer_page_stride_size), dtype=self.indexer_dtype).flatten()

    def set_from_flat_data_page(self, index: int, data_page: torch.Tensor) -> None:
        target = self._page_view(index)
        target.copy_(data_page.reshape(target.shape))

    def get_page_buffer_meta(self, indices: torch.Tensor) -> tuple[list[int], list[int]]:
        """One (pointer, size) per page; page_first and page_first_direct only, as upstream."""
        assert len(indices) % self.page_size == 0
        if self.layout not in ("page_first", "page_first_direct"):
            raise ValueError(f"Unsupported layout: {self.layout}")
        stride = self.layer_num * self.indexer_page_stride_size
        base = self.index_k_with_scale_buffer.data_ptr()
        ptrs = [base + (int(s) // self.page_size) * stride for s in indices.tolist()[::self.page_size]]
        return ptrs, [stride] * len(ptrs)
