"""The worker process as a neighbour, and how far its flushes overlap (issue 13).

One ``EmbeddedBackend`` with ``worker="process"`` on a fresh PostgreSQL database whose 24
users each have one batch buffered (just over the 1024-token threshold) and nothing due:
the flush threshold is set out of reach, so the worker child sits idle after its start.

* **Idle CPU**: the child's user+system CPU over an idle window (after its start settled),
  per minute, read from the threads' ``/proc/<pid>/task/*/schedstat`` (nanoseconds) at six
  equal parts of the window; the interval is a bootstrap over those parts.
* **Overlap**: 24 users are then requested at once (``flush(wait=False)``); the LLM
  answers every chat call after a fixed 0.25 s. Overlap = the sum of the LLM time of those
  flushes (what a strictly sequential worker would wait) / the wall time from the requests to
  the last committed batch. 1.0 is sequential; the target is >= 6. Repeated for ``rounds``
  fresh groups of 24 users; the interval is a bootstrap over the rounds.
* **CPU per flush**: the child's CPU during those flushes / their number (parsing, SQL,
  HTTP - the LLM's own time is in another process).
* **Resident memory**: the child's ``VmRSS`` after the flushes.

Default settings throughout (``FlushPolicy()`` apart from the out-of-reach threshold).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.conversations import Conversation
from benchmarks.stats import Interval, bootstrap_mean

__all__ = ["WorkerCost", "run_worker_cost"]

logger = logging.getLogger("benchmarks")

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(slots=True)
class WorkerCost:
    users: int
    llm_delay_s: float
    idle_window_s: float
    #: Idle CPU seconds per minute in each part of the idle window.
    idle_cpu_parts: list[float] = field(default_factory=list)
    #: Per round: wall seconds from the requests to the last batch, and the LLM seconds.
    walls: list[float] = field(default_factory=list)
    llm_times: list[float] = field(default_factory=list)
    flushes: int = 0
    cpu_s_per_flush: float | None = None
    rss_mb: float | None = None
    error: str | None = None

    @property
    def idle_cpu_s_per_min(self) -> float | None:
        parts = self.idle_cpu_parts
        return sum(parts) / len(parts) if parts else None

    def idle_cpu_interval(self) -> Interval | None:
        return bootstrap_mean(self.idle_cpu_parts) if len(self.idle_cpu_parts) > 1 else None

    @property
    def overlaps(self) -> list[float]:
        return [llm / wall for llm, wall in zip(self.llm_times, self.walls, strict=True) if wall]

    @property
    def overlap(self) -> float | None:
        got = self.overlaps
        return sum(got) / len(got) if got else None

    def overlap_interval(self) -> Interval | None:
        got = self.overlaps
        return bootstrap_mean(got) if len(got) > 1 else None

    @property
    def wall_s(self) -> float | None:
        return sum(self.walls) / len(self.walls) if self.walls else None

    @property
    def llm_s(self) -> float | None:
        return sum(self.llm_times) / len(self.llm_times) if self.llm_times else None

    def as_json(self) -> dict[str, Any]:
        overlap_ci = self.overlap_interval()
        idle_ci = self.idle_cpu_interval()
        return {
            "users": self.users,
            "llm_delay_s": self.llm_delay_s,
            "rounds": len(self.walls),
            "flushes": self.flushes,
            "wall_s": _r(self.wall_s, 2),
            "llm_s_sum": _r(self.llm_s, 2),
            "overlap": _r(self.overlap, 2),
            "overlap_ci95": [round(v, 2) for v in overlap_ci] if overlap_ci else None,
            "overlap_rounds": [round(v, 2) for v in self.overlaps],
            "idle_window_s": self.idle_window_s,
            "idle_cpu_s_per_min": _r(self.idle_cpu_s_per_min, 4),
            "idle_cpu_s_per_min_ci95": [round(v, 4) for v in idle_ci] if idle_ci else None,
            "cpu_s_per_flush": _r(self.cpu_s_per_flush, 4),
            "rss_mb": _r(self.rss_mb, 1),
            "error": self.error,
        }


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _cpu_ns(pid: int) -> int:
    """The process's CPU time in nanoseconds: the sum of its threads' ``schedstat`` run
    times. ``stat``'s clock ticks (10 ms) are too coarse for an idle worker: one tick in a
    10 s part already reads as 0.06 CPU-s per minute. (A thread that ended meanwhile drops
    out of the sum; an idle worker starts none.)"""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _seed(url: str, conversations: Sequence[Conversation], users: int) -> list[uuid.UUID]:
    from benchmarks.capacity import seed_buffers
    from memobase_integrations.facade import Memobase
    from memobase_integrations.settings import LLMSettings

    seed_buffers(url, conversations, users, 1024)
    memobase = Memobase.embedded(url, llm=LLMSettings(), start_worker=False)
    try:
        return [memobase.user(f"capacity-user-{u}").id for u in range(users)]
    finally:
        memobase.close(timeout=0)


def run_worker_cost(
    admin_url: str,
    conversations: Sequence[Conversation],
    *,
    run_id: str,
    users: int = 24,
    rounds: int = 5,
    llm_delay_s: float = 0.25,
    idle_window_s: float = 60.0,
    nice: int | None = None,
) -> WorkerCost:
    from benchmarks.llm import LatencyModel, ServedBenchLLM
    from benchmarks.scale import drop_postgres, prepare_postgres
    from memobase_integrations.backends.embedded import EmbeddedBackend
    from memobase_integrations.settings import FlushPolicy

    row = WorkerCost(users, llm_delay_s, idle_window_s)
    llm = ServedBenchLLM(LatencyModel("fixed", llm_delay_s=llm_delay_s))
    database = None
    backend = None
    try:
        url, database = prepare_postgres(admin_url, f"memobase_bench_{run_id}_wcost")
        ids = _seed(url, conversations, users * rounds)
        done = threading.Event()
        times: list[float] = []
        lock = threading.Lock()

        def processed(user_id: uuid.UUID, responses: Sequence[Any]) -> None:
            with lock:
                times.extend(time.monotonic() for _ in responses)
                if len(times) >= users:
                    done.set()

        llm.label = "worker-cost"
        policy = FlushPolicy(buffer_token_threshold=10**9, flush_on_close=False)
        if nice is not None:
            policy = policy.model_copy(update={"worker_nice": nice})
        backend = EmbeddedBackend(url, llm=llm.settings(), policy=policy, worker="process")
        backend.add_listener(processed)
        pid = backend.worker_pid
        if pid is None:
            raise RuntimeError(f"no worker process (worker mode {backend.worker_mode})")
        # Interpreter start, imports, warm-up (slow at nice 10 on a busy machine): wait
        # until the child's CPU stands still for 5 s, at most 120 s.
        settled, last = time.monotonic() + 120.0, -1.0
        while time.monotonic() < settled:
            time.sleep(5.0)
            now = _cpu_seconds(pid)
            if now - last < 0.02:
                break
            last = now
        part = idle_window_s / 6
        for _ in range(6):
            cpu0 = _cpu_ns(pid)
            time.sleep(part)
            row.idle_cpu_parts.append((_cpu_ns(pid) - cpu0) / 1e9 * 60.0 / part)
        cpu1 = _cpu_seconds(pid)
        for r in range(rounds):
            with lock:
                times.clear()
                done.clear()
            before = llm.counts().llm_seconds
            started = time.monotonic()
            for user in ids[r * users : (r + 1) * users]:
                backend.flush(user, wait=False)
            if not done.wait(300):
                raise RuntimeError(f"only {len(times)} of {users} flushes finished in 300 s")
            with lock:
                row.walls.append(max(times) - started)
            row.llm_times.append(llm.counts().llm_seconds - before)
            row.flushes += users
        row.cpu_s_per_flush = (_cpu_seconds(pid) - cpu1) / row.flushes
        row.rss_mb = _rss_mb(pid)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        logger.exception("worker cost failed")
    finally:
        if backend is not None:
            backend.close(timeout=5)
        llm.close()
        if database is not None:
            drop_postgres(admin_url, database)
    logger.info("worker cost: %s", row.as_json())
    return row
