"""Stand-in of sglang.srt.mem_cache.storage: the backend factory only."""
