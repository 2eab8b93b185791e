"""The DSA fetch hook in SGLang's sparse decode: CxlkvSparseDecode stands where SGLang's
HiSparseCoordinator does (DeepseekSparseAttnBackend.forward_decode calls
`swap_in_selected_pages(req_pool_indices, seq_lens, top_k_result, layer_id)` and hands the int32
[requests][top_k] device locations it returns to FlashMLA's sparse decode as its page table).

Each layer, the positions of a request's top-k that lie in its cached prefix are fetched from the
pool (cxlkv.gpu.SparseDecodeFetcher, through hot buffers) into a staging range of the layer's own
device KV buffer, `max_requests x top_k` token slots SGLang set aside for it; their locations are
those staging slots. Positions past the prefix (tokens decoded since, already in SGLang's device
pool) keep SGLang's own locations (req_to_token). -1 stays -1. So FlashMLA reads one page table
whose entries point either into the staging rows or at SGLang's own tokens, and the engine's
kernel is unchanged. docs/engines.md shows the engine-side lines."""

from __future__ import annotations

from typing import Any, Sequence

from .client import ReadLease
from .errors import InvalidArgument
from .gpu import GpuPool, SparseDecodeFetcher


class CxlkvSparseDecode:
    """One decode batch's sparse fetch for SGLang's DSA backend.

    kv_buffers[l] is layer l's device KV buffer as FlashMLA reads it, viewed as [slots][656] uint8;
    staging_slot is the first of max_requests x top_k slots of every layer's buffer reserved for
    the fetched rows; req_to_token is SGLang's ReqToTokenPool.req_to_token ([requests][context]
    int32 device locations)."""

    def __init__(self, pool: GpuPool, kv_buffers: Sequence[Any], req_to_token: Any, staging_slot: int,
                 max_requests: int, top_k: int = 2048, *, hot_rows: int = 4096) -> None:
        import torch
        if not kv_buffers or any(b.dim() != 2 or b.dtype != torch.uint8 for b in kv_buffers):
            raise InvalidArgument("CxlkvSparseDecode: kv_buffers must be one [slots][row bytes] uint8 tensor per layer")
        slots = int(kv_buffers[0].shape[0])
        if staging_slot < 0 or staging_slot + max_requests * top_k > slots:
            raise InvalidArgument(f"CxlkvSparseDecode: staging slots [{staging_slot}, "
                                  f"{staging_slot + max_requests * top_k}) do not fit a buffer of {slots} slots")
        self.pool, self.kv_buffers, self.req_to_token = pool, list(kv_buffers), req_to_token
        self.staging_slot, self.max_requests, self.top_k, self.hot_rows = staging_slot, max_requests, top_k, hot_rows
        self.fetcher: SparseDecodeFetcher | None = None
        self._prefix_tokens: Any = None
        self._staging_locations: Any = None

    def begin_batch(self, leases: Sequence[ReadLease]) -> None:
        """A new decode batch: request r's cached prefix is leases[r] (hot buffers start empty)."""
        import torch
        if not 0 < len(leases) <= self.max_requests:
            raise InvalidArgument(f"begin_batch: {len(leases)} requests, this hook holds 1..{self.max_requests}")
        if self.fetcher is not None:
            self.fetcher.close()
        device = self.kv_buffers[0].device
        row_bytes = int(self.kv_buffers[0].shape[1])
        no_tail = [torch.empty((len(self.kv_buffers), 0, row_bytes), dtype=torch.uint8, device=device) for _ in leases]
        self.fetcher = SparseDecodeFetcher(self.pool, leases, no_tail, self.top_k, hot_rows=self.hot_rows)
        n = len(leases)
        self._prefix_tokens = torch.tensor(self.fetcher.prefix_tokens, dtype=torch.int32, device=device).view(n, 1)
        self._staging_locations = (self.staging_slot + torch.arange(n * self.top_k, dtype=torch.int32, device=device)
                                   ).view(n, self.top_k)

    def swap_in_selected_pages(self, req_pool_indices: Any, seq_lens: Any, top_k_result: Any, layer_id: int) -> Any:
        """HOT. The device locations FlashMLA reads for layer_id's top-k ([requests][top_k] int32)."""
        import torch
        if self.fetcher is None:
            raise InvalidArgument("swap_in_selected_pages: no batch (call begin_batch first)")
        topk = top_k_result.to(torch.int32)
        in_prefix = (topk >= 0) & (topk < self._prefix_tokens)
        staging = self.kv_buffers[layer_id][self.staging_slot:self.staging_slot + topk.numel()]
        self.fetcher.fetch(layer_id, torch.where(in_prefix, topk, -1).contiguous(),
                           staging.view(topk.shape[0], self.top_k, -1))
        own = self.req_to_token[req_pool_indices.long()].gather(1, topk.clamp(min=0).long()).to(torch.int32)
        return torch.where(in_prefix, self._staging_locations, torch.where(topk >= 0, own, -1))

    def close(self) -> None:
        """Frees the hot buffers."""
        if self.fetcher is not None:
            self.fetcher.close()
            self.fetcher = None
