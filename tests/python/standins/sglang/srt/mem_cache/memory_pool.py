"""Stand-in of the device pools in sglang.srt.mem_cache.memory_pool, as the host pools read them:
only the attributes (sizes, dtype, layers, DSA indexer shape), no device memory."""

from __future__ import annotations

import torch


class MLATokenToKVPool:
    def __init__(self, size: int, page_size: int, store_dtype: torch.dtype, kv_lora_rank: int,
                 qk_rope_head_dim: int, layer_num: int, start_layer: int = 0, device: str = "cpu") -> None:
        self.size = size
        self.page_size = page_size
        self.store_dtype = store_dtype
        self.dtype = store_dtype
        self.kv_lora_rank = kv_lora_rank
        self.qk_rope_head_dim = qk_rope_head_dim
        self.layer_num = layer_num
        self.start_layer = start_layer
        self.end_layer = start_layer + layer_num - 1
        self.device = device
        self.kv_cache_dim = kv_lora_rank + qk_rope_head_dim
        self.index_head_dim = None


class DSATokenToKVPool(MLATokenToKVPool):
    """DeepSeek-V3.2's pool: FP8 latent with scales (kv_cache_dim 656 B) and the indexer keys."""

    index_k_with_scale_buffer_dtype = torch.uint8

    def __init__(self, size: int, page_size: int, layer_num: int, kv_cache_dim: int = 656,
                 index_head_dim: int = 128, quant_block_size: int = 128, start_layer: int = 0) -> None:
        super().__init__(size, page_size, torch.uint8, 512, 64, layer_num, start_layer)
        self.kv_cache_dim = kv_cache_dim
        self.index_head_dim = index_head_dim
        self.quant_block_size = quant_block_size
