"""Stand-in for vllm.v1.core.kv_cache_manager.KVCacheBlocks: a request's blocks, one list per KV
cache group (upstream holds KVCacheBlock objects; here their ids)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KVCacheBlocks:
    blocks: tuple[list[int], ...]

    def get_block_ids(self, allow_none: bool = False) -> tuple[list[int], ...] | None:
        if allow_none and all(len(group) == 0 for group in self.blocks):
            return None
        return tuple(list(group) for group in self.blocks)
