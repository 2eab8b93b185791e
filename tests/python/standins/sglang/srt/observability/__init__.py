"""Stand-in of sglang.srt.observability: the storage metrics record only."""
