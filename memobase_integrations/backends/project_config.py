"""The project's profile config, resolved once per stored version.

Shared by the reader and the processor (and so by the worker process, which builds only the
processor): every use checks the version in the store (one primary-key read), so another
process's ``set_profile_config`` applies at once, and the YAML is parsed and resolved only
when that version changed.
"""

from __future__ import annotations

import threading

from ..engine.config import ProfileConfig, ResolvedConfig
from ..engine.store import ConfigState, Store

__all__ = ["ConfigCache"]


class ConfigCache:
    """The resolved project config and the store version it was resolved from."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cached: tuple[object, ResolvedConfig] | None = None

    def stamp(self) -> object | None:
        """The cached version (``None`` when nothing is cached), for a query that returns the
        config only when it changed (``Store.context_rows``)."""
        with self._lock:
            return None if self._cached is None else self._cached[0]

    def resolved(self) -> ResolvedConfig:
        """The current config, re-resolved only when the stored version changed."""
        return self.resolve(self._store.profile_config_if_changed(self.stamp()))

    def resolve(self, state: ConfigState | None) -> ResolvedConfig:
        """``state`` is what the store returned for the cached version: ``None`` when it is
        still current, else the new version and its text, resolved here and cached."""
        with self._lock:
            cached = self._cached
            if state is None and cached is not None:
                return cached[1]
        if state is None:  # the cache was dropped meanwhile (set_profile_config)
            return self.resolved()
        # Stored by this or another version: keys it does not know are skipped, not fatal.
        resolved = ProfileConfig.from_yaml(state.text, unknown_keys="ignore").resolve()
        with self._lock:
            self._cached = (state.stamp, resolved)
        return resolved

    def clear(self) -> None:
        """Forget the cached config (this process changed it: see the change at once)."""
        with self._lock:
            self._cached = None
