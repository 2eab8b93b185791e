"""Stand-in of sglang.srt.mem_cache.pool_host.mla.MLATokenToKVPoolHost: the MLA (and DSA latent)
host pool, with upstream's buffer shapes per layout:
  layer_first          [layer_num, size, 1, kv_cache_dim]
  page_first           [size, layer_num, 1, kv_cache_dim]
  page_first_direct    [page_num, layer_num, page_size, 1, kv_cache_dim]
  page_first_kv_split  k_buffer / v_buffer [page_num, layer_num, page_size, 1, rank|rope] (Ascend)
and its flat pages: layer-major [layer][token][dim], except page_first's token-major one."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .base import HostKVCache


class MLATokenToKVPoolHost(HostKVCache):
    def __init__(self, device_pool, host_to_device_ratio: float, host_size: int, page_size: int, layout: str,
                 pin_memory: bool = True, device: str = "cpu", allocator_type: str = "default",
                 override_kv_cache_dim: Optional[int] = None, mtp_draft_device_pools: Sequence = (),
                 dcp_size: int = 1, dcp_rank: int = 0, *, pool_label: str = "kv") -> None:
        self.override_kv_cache_dim = override_kv_cache_dim
        self.mtp_draft_device_pools = tuple(mtp_draft_device_pools)
        super().__init__(device_pool, host_to_device_ratio, host_size, page_size, layout, pin_memory, device,
                         allocator_type, dcp_size=dcp_size, dcp_rank=dcp_rank, pool_label=pool_label)

    def get_size_per_token(self) -> int:
        self.kv_lora_rank = self.device_pool.kv_lora_rank
        self.qk_rope_head_dim = self.device_pool.qk_rope_head_dim
        self.layer_num = self.device_pool.layer_num + len(self.mtp_draft_device_pools)
        self.kv_cache_dim = self.override_kv_cache_dim or (self.kv_lora_rank + self.qk_rope_head_dim)
        return self.kv_cache_dim * torch.tensor([], dtype=self.dtype).element_size() * self.layer_num

    def get_ksize_per_token(self) -> int:
        return self.get_size_per_token()

    def init_kv_buffer(self) -> torch.Tensor:
        shapes = {
            "layer_first": (self.layer_num, self.size, 1, self.kv_cache_dim),
            "page_first": (self.size, self.layer_num, 1, self.kv_cache_dim),
            "page_first_direct": (self.page_num, self.layer_num, self.page_size, 1, self.kv_cache_dim),
        }
        if self.layout == "page_first_kv_split":
            base = (self.page_num, self.layer_num, self.page_size, 1)
            self.k_buffer = torch.zeros((*base, self.kv_lora_rank), dtype=self.dtype)
            self.v_buffer = torch.zeros((*base, self.qk_rope_head_dim), dtype=self.dtype)
            return self.k_buffer
        if self.layout not in shapes:
            raise ValueError(f"Unsupported layout: {self.layout}")
        return torch.zeros(shapes[self.layout], dtype=self.dtype)

    def _page_view(self, index: int) -> torch.Tensor:
        if self.layout == "layer_first":
            return self.kv_buffer[:, index:index + self.page_size]
        if self.layout == "page_first":
            return self.kv_buffer[index:index + self.page_size]
        if self.layout == "page_first_direct":
            page = index // self.page_size
            return self.kv_buffer[page:page + 1]
        raise ValueError(f"Unsupported layout: {self.layout}")

    def get_data_page(self, index, flat: bool = True) -> torch.Tensor:
        page = self._page_view(int(index))
        return page.flatten() if flat else page

    def get_dummy_flat_data_page(self) -> torch.Tensor:
        return torch.zeros((self.layer_num, self.page_size, 1, self.kv_cache_dim), dtype=self.dtype).flatten()

    def set_from_flat_data_page(self, index: int, data_page: torch.Tensor) -> None:
        target = self._page_view(int(index))
        order = (self.page_size, self.layer_num) if self.layout == "page_first" else (self.layer_num, self.page_size)
        values = data_page.reshape(*order, 1, self.kv_cache_dim)
        target.copy_(values.reshape(target.shape))

    def get_page_buffer_meta(self, indices: torch.Tensor) -> tuple[list[int], list[int]]:
        """(pointers, sizes) for zero-copy backends: one per page (page_first, page_first_direct) or
        one per (page, layer) (layer_first)."""
        assert len(indices) % self.page_size == 0
        item = self.kv_buffer.element_size()
        base = self.kv_buffer.data_ptr()
        starts = indices.tolist()[::self.page_size]
        if self.layout == "layer_first":
            ptrs = [base + (layer * self.size + s) * self.kv_cache_dim * item for s in starts
                    for layer in range(self.layer_num)]
            return ptrs, [self.page_size * self.kv_cache_dim * item] * len(ptrs)
        if self.layout in ("page_first", "page_first_direct"):
            ptrs = [base + s * self.layer_num * self.kv_cache_dim * item for s in starts]
            return ptrs, [self.layer_num * self.page_size * self.kv_cache_dim * item] * len(ptrs)
        raise ValueError(f"Unsupported layout: {self.layout}")
