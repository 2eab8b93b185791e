"""Stand-in for vllm.distributed.kv_transfer.kv_connector."""
