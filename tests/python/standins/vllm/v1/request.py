"""Stand-in for vllm.v1.request.Request: the fields a KV connector reads (vllm/v1/request.py)."""

from __future__ import annotations

from typing import Any


class Request:
    def __init__(self, request_id: str, prompt_token_ids: list[int] | None, *, mm_features: list[Any] | None = None,
                 lora_request: Any = None, cache_salt: str | None = None, prompt_embeds: Any = None) -> None:
        self.request_id = request_id
        self.prompt_token_ids = prompt_token_ids
        self.mm_features = mm_features or []
        self.lora_request = lora_request
        self.cache_salt = cache_salt
        self.prompt_embeds = prompt_embeds
        self.num_prompt_tokens = len(prompt_token_ids) if prompt_token_ids is not None else len(prompt_embeds)
        self._output_token_ids: list[int] = []
        self.num_computed_tokens = 0
        self.num_preemptions = 0

    @property
    def all_token_ids(self) -> list[int]:
        return list(self.prompt_token_ids or []) + self._output_token_ids

    @property
    def num_tokens(self) -> int:
        return self.num_prompt_tokens + len(self._output_token_ids)

    def append_output_token_ids(self, token_ids: int | list[int]) -> None:
        self._output_token_ids.extend([token_ids] if isinstance(token_ids, int) else token_ids)
