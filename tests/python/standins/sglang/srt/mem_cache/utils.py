"""Stand-in of sglang.srt.mem_cache.utils.get_hash_str: SGLang's page keys, one 64-hex SHA-256 per
page, each digest chained on the previous page's (raw 32 bytes) and the page's tokens as
little-endian uint32."""

from __future__ import annotations

import hashlib
import struct
from typing import List, Optional


def get_hash_str(token_ids: List[int], prior_hash: Optional[str] = None,
                 page_size: Optional[int] = None) -> str | List[str]:
    """With page_size: the keys of the whole pages of token_ids, chained from prior_hash (the
    parent node's last page key, hex). Without: one digest of all tokens."""
    step = page_size or len(token_ids)
    previous = bytes.fromhex(prior_hash) if prior_hash else b""
    keys = []
    for start in range(0, len(token_ids) - step + 1 if step else 0, step):
        page = token_ids[start:start + step]
        digest = hashlib.sha256(previous + struct.pack(f"<{len(page)}I", *page)).digest()
        keys.append(digest.hex())
        previous = digest
    return keys if page_size else keys[0]
