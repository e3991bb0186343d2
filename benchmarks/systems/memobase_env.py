"""Build the ``Memobase`` facade a Memobase system runs on (embedded or remote), and the
Memobase-specific hooks every adapter shares (memory check, settle, simulated worker)."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

from benchmarks.systems.base import BenchEnv
from memobase_integrations.facade import Memobase
from memobase_integrations.settings import FlushPolicy

if TYPE_CHECKING:
    from benchmarks.simclock import SimClock

__all__ = ["BENCH_POLICY", "MemobaseFactory", "build_memobase", "memobase_injected"]

_SEQ = itertools.count()

#: The library's defaults (Memobase's 1024-token buffer threshold, the 300 s idle flush),
#: with a longer bound on the final drain so a slow hosted model can finish.
BENCH_POLICY = FlushPolicy(close_timeout_seconds=600.0)

_PROFILE_LINE = re.compile(r"## (User Current Profile|Past Events):\n- \S")


def memobase_injected(prompt: str) -> bool:
    """The prompt holds Memobase's context pack with at least one profile line or event."""
    return bool(_PROFILE_LINE.search(prompt))


def build_memobase(
    env: BenchEnv,
    backend: str,
    tag: str,
    *,
    policy: FlushPolicy = BENCH_POLICY,
    database_url: str | None = None,
    **options: Any,
) -> Memobase:
    """An embedded facade on a fresh SQLite file (or ``database_url``), or a remote facade
    against the loopback fake server with its outbox in the run's work directory."""
    n = next(_SEQ)
    if backend == "embedded":
        url = database_url or f"sqlite:///{env.workdir / f'{tag}-{n}.db'}"
        return Memobase.embedded(url, llm=env.llm.settings(), policy=policy, **options)
    if backend == "remote":
        if env.remote_url is None:
            raise RuntimeError("the remote systems need the loopback server (env.remote_url)")
        return Memobase.remote(
            env.remote_url,
            "bench-secret",
            outbox_path=str(env.workdir / f"{tag}-{n}-outbox.db"),
            policy=policy,
            **options,
        )
    raise ValueError(f"unknown backend {backend!r}")


class MemobaseFactory:
    """Owns one facade for one system's run.

    In the pace simulation (``env.simulated``) the embedded backend runs without a worker and
    :meth:`sim_elapse` does what the worker would: one cycle over the users the store says
    are due (threshold or idle, by the library's own rule on the simulated clock).
    """

    def __init__(self, env: BenchEnv, backend: str, tag: str) -> None:
        self.backend = backend
        self.simulated = env.simulated and backend == "embedded"
        options: dict[str, Any] = {"start_worker": False} if self.simulated else {}
        self.memobase = build_memobase(env, backend, tag, **options)
        self.users: set[str] = set()
        self._closed = False

    def settle(self) -> None:
        """What the idle flush would have done during a days-long pause: process every
        user's leftover buffer now (``flush(wait=True)``, the same processing)."""
        for user_id in sorted(self.users):
            self.memobase.user(user_id).flush(wait=True)

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:
        """The worker's cycles during ``seconds`` of simulated time: at once (a record that
        crossed the threshold wakes it), and one poll after the idle flush is due. The
        harness moves the clock to the end of the pause afterwards."""
        self._worker_cycle()
        policy = self.memobase.backend.policy  # type: ignore[attr-defined]
        idle = policy.idle_flush_seconds
        if idle is not None and seconds > idle + policy.worker_poll_seconds:
            clock.advance(idle + policy.worker_poll_seconds)
            self._worker_cycle()

    def _worker_cycle(self) -> None:
        backend: Any = self.memobase.backend
        while True:
            progressed = False
            for due in backend.processor.due_users(drain=False):
                while backend.processor.flush_once(due.user_id, due.blob_type, force=False):
                    progressed = True
            if not progressed:
                return

    def drain(self) -> None:
        """Deliver and process every pending turn (close drains and flushes, bounded)."""
        if not self._closed:
            self._closed = True
            self.memobase.close(timeout=600.0)

    def close(self) -> None:
        self.drain()
