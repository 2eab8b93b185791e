"""Stand-in of sglang.srt.mem_cache.pool_host: the host pools the storage path reads and writes."""

from .base import HostKVCache
from .dsa import DSAIndexerPoolHost
from .mla import MLATokenToKVPoolHost

__all__ = ["HostKVCache", "DSAIndexerPoolHost", "MLATokenToKVPoolHost"]
