"""``memobase-integrations worker``: process an embedded store's buffers in the foreground.

For deployments whose app processes run ``Memobase.embedded(..., start_worker=False)`` and
leave processing to a dedicated process (e.g. several web workers sharing one PostgreSQL
store). It runs the same flush policy as the built-in worker (threshold, idle, retries with
backoff; leases keep it safe beside other workers) and prints one line per processed batch.
SIGINT or SIGTERM stops it: what is buffered is processed for at most ``--drain-timeout``
seconds, the rest stays buffered for the next start.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import FrameType

from rich.console import Console
from rich.text import Text

from ..models import ChatModalResponse
from ..settings import FlushPolicy, LLMSettings

__all__ = ["run_worker"]


def run_worker(
    database_url: str,
    llm: LLMSettings,
    *,
    idle_flush_seconds: float,
    drain_timeout: float,
    console: Console,
    concurrency: int = 32,
) -> int:
    """Run until SIGINT/SIGTERM; returns how many batches were processed."""
    from ..backends.embedded import EmbeddedBackend

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    processed = 0
    lock = threading.Lock()

    def report(user_id: uuid.UUID, responses: Sequence[ChatModalResponse]) -> None:
        nonlocal processed
        for r in responses:
            with lock:
                processed += 1
            console.print(
                Text.assemble(
                    (datetime.now().strftime("%H:%M:%S "), "dim"),
                    f"processed {user_id}: ",
                    (f"+{len(r.add_profiles)} ", "green"),
                    (f"~{len(r.update_profiles)} ", "yellow"),
                    (f"-{len(r.delete_profiles)} ", "red"),
                    "profile rows",
                    (f", event {str(r.event_id)[:8]}" if r.event_id else ", no event"),
                )
            )

    policy = FlushPolicy(
        idle_flush_seconds=idle_flush_seconds,
        close_timeout_seconds=drain_timeout,
        max_concurrent_flushes=concurrency,
        max_llm_requests=concurrency,
    )
    # This process exists to process: the worker runs as a thread of it.
    # The CLI never creates a store (create_store=False): a wrong URL is an error, not a
    # new set of tables in someone else's database.
    backend = EmbeddedBackend(
        database_url, llm=llm, policy=policy, worker="thread", create_store=False
    )
    backend.add_listener(report)
    try:
        console.print(
            Text(
                f"memobase worker: processing {backend.store.safe_url} "
                f"(up to {concurrency} users at once, idle flush after "
                f"{idle_flush_seconds:g}s). Ctrl-C or SIGTERM to stop.",
                style="bold",
            )
        )
        status = backend.status()
        console.print(
            f"{status.pending_turns} turns pending for {len(status.users)} users, "
            f"{status.failed} failed."
        )
        while not stop.wait(0.5):
            pass
        console.print(Text(f"stopping: processing what is buffered (<= {drain_timeout:g}s) …"))
    finally:
        backend.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    left = EmbeddedBackend(database_url, llm=LLMSettings(), start_worker=False, create_store=False)
    try:
        pending = left.status().pending_turns
    finally:
        left.close(timeout=0)
    console.print(f"stopped after {processed} batches; {pending} turns still buffered.")
    return processed
