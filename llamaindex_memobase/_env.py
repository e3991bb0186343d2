"""The ``Memobase`` used when an app does not pass one: built from the environment once.

``MemobaseMemory.from_defaults("alice")`` is often called per request. Building a fresh
``Memobase.from_env()`` each time would start a backend (and its background worker) per call
and give every memory its own context cache. So the instance is shared per process, keyed by
the environment variables that configure it, so changing them (as tests do) builds a new one.
Backends close themselves at interpreter exit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

from memobase_integrations import (
    Memobase,
)

__all__ = ["env_memobase", "logger"]

#: The package's logger (failures handled fail-open are logged here).
logger = logging.getLogger("llamaindex_memobase")

_PREFIXES = ("MEMOBASE_", "OPENAI_")
_lock = threading.Lock()
_instances: dict[str, Memobase] = {}


def _env_key() -> str:
    items = sorted((k, v) for k, v in os.environ.items() if k.startswith(_PREFIXES))
    return hashlib.sha256(repr(items).encode()).hexdigest()  # no secrets kept in clear


def env_memobase() -> Memobase:
    """``Memobase.from_env()``, one instance per process and configuration."""
    key = _env_key()
    with _lock:
        instance = _instances.get(key)
        if instance is None:
            instance = _instances[key] = Memobase.from_env()
        return instance
