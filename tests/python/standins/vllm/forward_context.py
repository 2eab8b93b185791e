"""Stand-in for vllm.forward_context: the context set around each forward (vllm/forward_context.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ForwardContext:
    # layer name -> module (attention, MLA, the V3.2 indexer cache); modules with a cache have .kv_cache
    no_compile_layers: dict[str, Any]
    # layer name -> that layer's attention metadata; None on a step with no forward (kv_connector_no_forward)
    attn_metadata: Any
    slot_mapping: Any = None
    dp_metadata: Any = None
    skip_compiled: bool = False
