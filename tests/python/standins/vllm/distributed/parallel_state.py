"""Stand-in for vllm.distributed.parallel_state: the tensor-parallel group's rank and size.
Upstream reads them from the group init_distributed_environment builds; here a test sets them
(set_tensor_model_parallel, stand-in only) before it builds a worker-side connector."""

from __future__ import annotations

_rank, _world_size = 0, 1


def get_tensor_model_parallel_rank() -> int:
    """This process's rank in the tensor-parallel group."""
    return _rank


def get_tensor_model_parallel_world_size() -> int:
    """The tensor-parallel group's size."""
    return _world_size


def set_tensor_model_parallel(rank: int, world_size: int) -> None:
    """Stand-in only: what this process's distributed init would have set."""
    global _rank, _world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"tensor-parallel rank {rank} outside a group of {world_size}")
    _rank, _world_size = rank, world_size
