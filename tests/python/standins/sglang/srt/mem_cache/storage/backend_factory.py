"""Stand-in of sglang.srt.mem_cache.storage.backend_factory.StorageBackendFactory, the `dynamic`
path only: the extra config names a module and class, which must subclass HiCacheStorage and is
built as cls(storage_config, kwargs) (mem_pool_host arrives later, by register_mem_pool_host)."""

from __future__ import annotations

import importlib
from typing import Any

from ..hicache_storage import HiCacheStorage, HiCacheStorageConfig

REQUIRED_KEYS = ("backend_name", "module_path", "class_name")


class StorageBackendFactory:
    @classmethod
    def create_backend(cls, backend_name: str, storage_config: HiCacheStorageConfig, mem_pool_host: Any,
                       **kwargs: Any) -> HiCacheStorage:
        if backend_name == "dynamic" and storage_config.extra_config is not None:
            return cls._create_dynamic_backend(storage_config.extra_config, storage_config, mem_pool_host, **kwargs)
        raise ValueError(f"Unknown storage backend '{backend_name}'")

    @staticmethod
    def _create_dynamic_backend(backend_config: dict, storage_config: HiCacheStorageConfig, mem_pool_host: Any,
                                **kwargs: Any) -> HiCacheStorage:
        missing = [k for k in REQUIRED_KEYS if k not in backend_config]
        if missing:
            raise ValueError(f"Missing required keys in backend config: {missing}")
        module = importlib.import_module(backend_config["module_path"])
        backend_class = getattr(module, backend_config["class_name"])
        if not issubclass(backend_class, HiCacheStorage):
            raise TypeError(f"{backend_class} is not a subclass of HiCacheStorage")
        return backend_class(storage_config, kwargs)
