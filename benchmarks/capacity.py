"""Capacity: processed user batches per minute per worker process, 1 vs N processes on PostgreSQL.

The store is filled first with many users whose buffer is just over Memobase's 1024-token
threshold (one batch each), recorded through the embedded backend with no worker. Then N
worker processes are started against the same PostgreSQL database (each is what the
``memobase-integrations worker`` command runs: an ``EmbeddedBackend`` with its flush worker
as a thread, leases keeping them apart), their LLM being the benchmark endpoint at the
hosted latency model. Each child imports everything, says ``ready`` and waits; all are
released at once and report every committed batch with its time. The parent counts the
batches committed inside a fixed window that opens a warm-up after the release: the
children's start (engine, tokenizer, first connections) and the first wave of flushes, all
started in the same instant and so ending together, are not the steady state a capacity
figure describes.

Rate per process = batches in the window / window minutes / N. Its 95% interval is a
bootstrap over equal time bins of the window (counts per bin resampled). The scaling
factor (N processes against one) is the ratio of the two mean bin rates, its interval from
resampling both runs' bins independently. Each worker runs its default ``FlushPolicy``: up
to ``max_concurrent_flushes`` users at once (issue 13). The worker process's own cost and
the overlap of its flushes: :mod:`benchmarks.worker_cost`.

``python -m benchmarks.capacity --child`` is the child's entry point (not for direct use).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python benchmarks/capacity.py --child``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.conversations import Conversation
from benchmarks.stats import Interval, bootstrap_mean, bootstrap_ratio_of_means

__all__ = ["CapacityRow", "run_capacity", "scaling", "seed_buffers"]

logger = logging.getLogger("benchmarks")


@dataclass(slots=True)
class CapacityRow:
    name: str
    processes: int
    window_s: float
    latency: str
    users_seeded: int
    warmup_s: float = 0.0
    #: Seconds from the window's start of each batch committed inside it.
    batch_times: list[float] = field(default_factory=list)
    bins: int = 12
    error: str | None = None

    def per_process_per_min(self) -> float | None:
        if self.error or not self.window_s:
            return None
        return len(self.batch_times) / (self.window_s / 60.0) / self.processes

    def bin_rates(self) -> list[float]:
        """Batches per minute per process in each of ``bins`` equal parts of the window."""
        width = self.window_s / self.bins
        counts = [0.0] * self.bins
        for t in self.batch_times:
            counts[min(self.bins - 1, int(t / width))] += 1
        return [c * 60.0 / width / self.processes for c in counts]

    def interval(self) -> tuple[float, float] | None:
        if self.error or self.window_s <= 0:
            return None
        low, high = bootstrap_mean(self.bin_rates())
        return round(low, 2), round(high, 2)

    def as_json(self) -> dict[str, Any]:
        rate = self.per_process_per_min()
        return {
            "name": self.name,
            "worker_processes": self.processes,
            "window_s": self.window_s,
            "llm_latency": self.latency,
            "users_seeded": self.users_seeded,
            "warmup_s": self.warmup_s,
            "batches_in_window": len(self.batch_times) if not self.error else None,
            "batches_per_min_per_process": round(rate, 2) if rate is not None else None,
            "batches_per_min_per_process_ci95": self.interval(),
            # Nearly every seeded batch done by the window's end: the workers ran out of work
            # and the rate is a lower bound (raise Config.capacity_users).
            "starved": self.starved,
            "error": self.error,
        }

    @property
    def starved(self) -> bool:
        # Batches of the warm-up are not in batch_times: estimate them at the window's rate.
        done = len(self.batch_times) * (1.0 + self.warmup_s / self.window_s)
        return not self.error and done >= 0.9 * self.users_seeded


def scaling(one: CapacityRow, many: CapacityRow) -> tuple[float, Interval] | None:
    """Total batches per minute of ``many`` processes / those of one, and its 95% interval
    (both runs' time bins resampled independently)."""
    if one.error or many.error or not one.batch_times:
        return None
    a = [r * many.processes for r in many.bin_rates()]
    b = one.bin_rates()
    factor = (sum(a) / len(a)) / (sum(b) / len(b))
    return factor, bootstrap_ratio_of_means(a, b)


def seed_buffers(
    database_url: str, conversations: Sequence[Conversation], users: int, threshold: int
) -> int:
    """Record turns for ``users`` users until each one's buffer is just over ``threshold``
    tokens (one batch each); no worker runs. Returns the number of turns recorded.

    Four recording threads, as an app's request threads would: one commit per turn makes
    seeding a thousand users take minutes from a single thread."""
    from concurrent.futures import ThreadPoolExecutor

    from memobase_integrations import tokens
    from memobase_integrations.facade import Memobase
    from memobase_integrations.settings import FlushPolicy, LLMSettings

    turns = [t for c in conversations for t in c.turns()]
    memobase = Memobase.embedded(
        database_url,
        llm=LLMSettings(),
        policy=FlushPolicy(idle_flush_seconds=None, flush_on_close=False),
        start_worker=False,
    )
    backend: Any = memobase.backend
    # Rows recorded while the tokenizer loads carry an upper bound of their size, corrected
    # later: a user seeded "over the threshold" on bounds may not be over it after all.
    tokens.encoding()

    def seed(u: int) -> int:
        user = memobase.user(f"capacity-user-{u}")
        i = u * 7  # different turns per user, same size distribution
        while backend.store.idle_tokens(user.id, _chat()) <= threshold:
            user.record(turns[i % len(turns)].messages())
            i += 1
        return i - u * 7

    try:
        with ThreadPoolExecutor(4) as pool:
            return sum(pool.map(seed, range(users)))
    finally:
        memobase.close(timeout=0)


def _chat() -> Any:
    from memobase_integrations.models import BlobType

    return BlobType.chat


def _child(args: argparse.Namespace) -> int:
    """One worker process: import, say ready, wait for go, process until stop."""
    from pydantic import SecretStr

    from memobase_integrations.backends.embedded import EmbeddedBackend
    from memobase_integrations.settings import FlushPolicy, LLMSettings

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    lock = threading.Lock()

    def report(user_id: Any, responses: Sequence[Any]) -> None:
        with lock:
            for _ in responses:
                print(json.dumps({"t": time.time()}), flush=True)

    llm = LLMSettings(base_url=args.llm_url, api_key=SecretStr("placeholder-bench"), max_retries=0)
    policy = FlushPolicy(flush_on_close=False)
    backend = EmbeddedBackend(args.url, llm=llm, policy=policy, worker="thread")
    backend.add_listener(report)
    sys.stdin.readline()  # "stop" or EOF
    backend.close(timeout=5.0)
    print("stopped", flush=True)
    return 0


def _run_window(
    url: str, llm_url: str, processes: int, window_s: float, warmup_s: float, users: int
) -> tuple[list[float], str | None]:
    """The batch times inside the window; ends early once every seeded batch is in."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.capacity",
                "--child",
                "--url",
                url,
                "--llm-url",
                llm_url,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        for _ in range(processes)
    ]
    times: list[float] = []
    lock = threading.Condition()
    error = None
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a capacity worker did not start (said {line!r})")

        def collect(proc: subprocess.Popen[str]) -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if raw.startswith("{"):
                    with lock:
                        times.append(float(json.loads(raw)["t"]))
                        lock.notify_all()

        readers = [threading.Thread(target=collect, args=(p,), daemon=True) for p in procs]
        for reader in readers:
            reader.start()
        started = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        opens = started + warmup_s
        with lock:
            lock.wait_for(lambda: len(times) >= users, timeout=warmup_s + window_s)
            inside = [t - opens for t in times if opens <= t < opens + window_s]
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        inside = []
    finally:
        for proc in procs:
            try:
                if proc.stdin is not None:
                    proc.stdin.write("stop\n")
                    proc.stdin.close()
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return sorted(inside), error


def run_capacity(
    admin_url: str,
    llm_url: str,
    conversations: Sequence[Conversation],
    *,
    process_counts: Sequence[int],
    users: int,
    window_s: float,
    warmup_s: float,
    latency: str,
    run_id: str,
) -> list[CapacityRow]:
    """One fresh database per process count (same seed), measured for ``window_s``."""
    from benchmarks.scale import drop_postgres, prepare_postgres

    rows: list[CapacityRow] = []
    seed_url, seed_db = prepare_postgres(admin_url, f"memobase_bench_{run_id}_capseed")
    try:
        t0 = time.perf_counter()
        turns = seed_buffers(seed_url, conversations, users, 1024)
        logger.info(
            "capacity: seeded %d users (%d turns) in %.1fs", users, turns, time.perf_counter() - t0
        )
    except Exception:
        drop_postgres(admin_url, seed_db)
        raise
    for n in process_counts:
        name = f"PostgreSQL, {n} worker process{'es' if n > 1 else ''} (flush worker thread each)"
        row = CapacityRow(name, n, window_s, latency, users, warmup_s)
        database = None
        try:
            # The same seeded store for every process count (a copy: seeding is the slow part).
            url, database = prepare_postgres(
                admin_url, f"memobase_bench_{run_id}_cap{n}", template=seed_db
            )
            logger.info(
                "capacity: running %d worker process(es) for %.0fs + %.0fs",
                n,
                warmup_s,
                window_s,
            )
            row.batch_times, row.error = _run_window(url, llm_url, n, window_s, warmup_s, users)
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {exc}"
            logger.exception("capacity with %d processes failed", n)
        finally:
            if database is not None:
                drop_postgres(admin_url, database)
        rows.append(row)
        rate = row.per_process_per_min()
        logger.info(
            "capacity: %d process(es): %d batches in %.0fs = %s batches/min/process",
            n,
            len(row.batch_times),
            window_s,
            f"{rate:.1f}" if rate is not None else "n/a",
        )
    drop_postgres(admin_url, seed_db)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--llm-url", required=True)
    args = parser.parse_args(argv)
    if not args.child:
        parser.error("this entry point is the capacity benchmark's child; run python -m benchmarks")
    os.environ.setdefault("MEMOBASE_LOG_LEVEL", "WARNING")
    return _child(args)


if __name__ == "__main__":
    raise SystemExit(main())
