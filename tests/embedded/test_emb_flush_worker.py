"""The flush worker's loop against a scripted runner (no database, no LLM): how often it asks
the store what is due, and that it still gets every due user flushed exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

from support import wait_until

from memobase_integrations.backends.worker import FlushWorker
from memobase_integrations.engine.store import DueUser
from memobase_integrations.models import BlobType
from memobase_integrations.settings import FlushPolicy


class Backlog:
    """A store with one batch for each of ``users`` users: ``due_users`` lists those neither
    flushed nor in flight (as the store skips a user under a live lease), at most 100."""

    def __init__(self, users: int) -> None:
        self.pending = [uuid.uuid4() for _ in range(users)]
        self.lock = threading.Lock()
        self.inflight: set[uuid.UUID] = set()
        self.flushed: list[uuid.UUID] = []
        self.scans = 0
        self.passes = 0  # the worker asks processing_possible() at the start of each pass

    def due_users(self, *, drain: bool) -> Sequence[DueUser]:
        with self.lock:
            self.scans += 1
            return [
                DueUser(u, BlobType.chat, "threshold")
                for u in self.pending
                if u not in self.inflight
            ][:100]

    def flush_once(self, user_id: uuid.UUID, blob_type: BlobType, *, force: bool) -> bool:
        with self.lock:
            if user_id not in self.pending or user_id in self.inflight:
                return False  # done already, or leased: the store's claim refuses
            self.inflight.add(user_id)
        time.sleep(0.005)  # the flush's work: flushes end one after another, not all at once
        with self.lock:
            self.inflight.discard(user_id)
            self.pending.remove(user_id)
            self.flushed.append(user_id)
        return True

    def processing_possible(self) -> bool:
        with self.lock:
            self.passes += 1
        return True

    def maintain(self) -> None:
        return None

    def next_retry_in(self) -> float | None:
        return None


def test_finished_flushes_take_the_next_user_from_the_list_already_read() -> None:
    # 60 users due, 4 slots: before, every finished flush scanned the whole buffer again
    # (60 scans and more); the list read once feeds the slots until it runs out.
    store = Backlog(60)
    worker = FlushWorker(store, FlushPolicy(max_concurrent_flushes=4, safety_poll_seconds=3600))
    worker.start()
    try:
        wait_until(lambda: len(store.flushed) == 60, "the whole backlog flushed")
    finally:
        worker.stop(drain=False, timeout=5.0)
    assert sorted(store.flushed) == sorted(set(store.flushed))  # each user once
    assert store.scans <= 10, f"{store.scans} scans of the buffer for 60 flushes"


def test_a_full_worker_does_not_scan_the_buffer() -> None:
    store = Backlog(3)
    release = threading.Event()
    entered = threading.Semaphore(0)
    flush = store.flush_once

    def slow(user_id: uuid.UUID, blob_type: BlobType, *, force: bool) -> bool:
        entered.release()
        release.wait(30)
        return flush(user_id, blob_type, force=force)

    store.flush_once = slow  # type: ignore[method-assign]
    worker = FlushWorker(store, FlushPolicy(max_concurrent_flushes=2, safety_poll_seconds=3600))
    worker.start()
    try:
        assert entered.acquire(timeout=30) and entered.acquire(timeout=30)
        scans = store.scans
        for _ in range(3):  # recorded turns waking the worker while both slots are busy
            passes = store.passes
            worker.wake()
            wait_until(lambda: store.passes > passes, "the worker looked")  # noqa: B023
        assert store.scans == scans
    finally:
        release.set()
        wait_until(lambda: not store.pending, "the rest flushed")
        worker.stop(drain=False, timeout=5.0)
