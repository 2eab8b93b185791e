"""Stand-in of sglang.srt.observability.metrics_collector: StorageMetrics, what a backend's
get_stats() returns and HiRadixCache's StorageMetricsCollector.log_storage_metrics() logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List


@dataclass
class StorageMetrics:
    prefetch_pgs: List[int] = field(default_factory=list)
    backup_pgs: List[int] = field(default_factory=list)
    prefetch_bandwidth: List[float] = field(default_factory=list)
    backup_bandwidth: List[float] = field(default_factory=list)
