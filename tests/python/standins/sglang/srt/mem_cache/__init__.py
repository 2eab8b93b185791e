"""Stand-in of sglang.srt.mem_cache: the storage interface, the host pools and the page hashes."""
