"""Stand-in for vllm.v1."""
