"""Build the ``Memobase`` facade a Memobase system runs on (embedded or remote)."""

from __future__ import annotations

import itertools
from typing import Any

from benchmarks.systems.base import BenchEnv
from memobase_integrations.facade import Memobase
from memobase_integrations.settings import FlushPolicy

__all__ = ["MemobaseFactory", "build_memobase"]

_SEQ = itertools.count()

#: Realistic defaults: Memobase's 1024-token buffer threshold; the idle flush is later than a
#: benchmark run, so processing happens on threshold and on close, as in production.
BENCH_POLICY = FlushPolicy(close_timeout_seconds=600.0)


def build_memobase(
    env: BenchEnv,
    backend: str,
    tag: str,
    *,
    policy: FlushPolicy = BENCH_POLICY,
    database_url: str | None = None,
) -> Memobase:
    """An embedded facade on a fresh SQLite file (or ``database_url``), or a remote facade
    against the loopback fake server with its outbox in the run's work directory."""
    n = next(_SEQ)
    if backend == "embedded":
        url = database_url or f"sqlite:///{env.workdir / f'{tag}-{n}.db'}"
        return Memobase.embedded(url, llm=env.llm.settings(), policy=policy)
    if backend == "remote":
        if env.remote_url is None:
            raise RuntimeError("the remote systems need the loopback server (env.remote_url)")
        options: dict[str, Any] = {
            "outbox_path": str(env.workdir / f"{tag}-{n}-outbox.db"),
            "policy": policy,
        }
        return Memobase.remote(env.remote_url, "bench-secret", **options)
    raise ValueError(f"unknown backend {backend!r}")


class MemobaseFactory:
    """Owns one facade for one system's run; ``drain`` processes everything still buffered."""

    def __init__(self, env: BenchEnv, backend: str, tag: str) -> None:
        self.backend = backend
        self.memobase = build_memobase(env, backend, tag)
        self._closed = False

    def drain(self) -> None:
        """Deliver and process every pending turn (close drains and flushes, bounded)."""
        if not self._closed:
            self._closed = True
            self.memobase.close(timeout=600.0)

    def close(self) -> None:
        self.drain()
