"""The processor and its worker: flushes of different users overlap, one user's never do,
a rate-limit answer pauses every LLM call of the worker, and close leaves no thread.

(Exactly once across a kill -9 during concurrent flushes: ``test_emb_crash.py``.)
"""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from embedded.emb_support import (
    BackendFactory,
    DbTarget,
    completion,
    manual,
    tapped_settings,
    turn,
)
from pydantic import SecretStr
from support import wait_until

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import notify
from memobase_integrations.engine import schema as t
from memobase_integrations.engine.llm import LLMClient
from memobase_integrations.engine.llm_gate import LLMGate, retry_after_seconds
from memobase_integrations.errors import LLMError
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.settings import LLMSettings


class Hold(httpx.BaseTransport):
    """Holds the first ``parties`` entry-summary requests until that many are in flight at
    once: they only get through if their flushes run at the same time (a serial worker
    would break the barrier, and its flush would fail)."""

    def __init__(self, inner: httpx.BaseTransport, parties: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(parties, timeout=60)
        self.lock = threading.Lock()
        self.held = 0
        self.parties = parties

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-memobase-step") == "entry_summary":
            with self.lock:
                hold = self.held < self.parties
                self.held += 1
            if hold:
                self.barrier.wait()
        return self.inner.handle_request(request)


def record(backend: EmbeddedBackend, user: uuid.UUID, text: str, turn_id: str) -> None:
    backend.record(user, turn_to_blobs(turn(text)), turn_id)


def test_flushes_of_two_users_are_in_flight_at_once(make_backend: BackendFactory) -> None:
    settings, tap, _ = tapped_settings()
    hold = Hold(tap, parties=2)
    settings = settings.model_copy(update={"http_client": httpx.Client(transport=hold)})
    backend = make_backend(llm=settings, policy=manual(), worker="thread")
    users = [uuid.uuid4(), uuid.uuid4()]
    for n, user in enumerate(users):
        record(backend, user, f"I work as a baker in town {n}.", f"t{n}")
    for user in users:
        backend.flush(user, wait=False)
    wait_until(lambda: backend.status().pending_turns == 0, "both users processed")
    assert not hold.barrier.broken  # both entry summaries were in flight together
    assert backend.status().failed == 0
    assert len(tap.summarized_markers()) == 2


def _tracked(
    backend: EmbeddedBackend, in_flight: collections.Counter[uuid.UUID], peaks: dict[Any, int]
) -> None:
    """Count, per user, the batches this backend's processor is processing right now."""
    lock = threading.Lock()
    process: Callable[..., Any] = backend.processor.process

    def tracked(claim: Any) -> Any:
        with lock:
            in_flight[claim.user_id] += 1
            peaks[claim.user_id] = max(peaks.get(claim.user_id, 0), in_flight[claim.user_id])
            peaks["all"] = max(peaks.get("all", 0), sum(in_flight.values()))
        try:
            return process(claim)
        finally:
            with lock:
                in_flight[claim.user_id] -= 1

    backend.processor.process = tracked  # type: ignore[method-assign]


def test_one_users_batches_are_never_processed_at_once(
    db: DbTarget, make_backend: BackendFactory
) -> None:
    # Two workers (as two processes would) on one store, each asked again and again for
    # the same two users, whose buffers take several batches each.
    in_flight: collections.Counter[uuid.UUID] = collections.Counter()
    peaks: dict[Any, int] = {}
    backends = []
    for _ in range(2):
        settings, _tap, _ = tapped_settings()
        backend = make_backend(llm=settings, policy=manual(max_process_tokens=60), worker="thread")
        _tracked(backend, in_flight, peaks)
        backends.append(backend)
    users = [uuid.uuid4(), uuid.uuid4()]
    for n in range(12):
        for k, user in enumerate(users):
            record(backends[0], user, f"Fact {n} of user {k}: I like colour {n}.", f"u{k}-{n}")
    for _ in range(5):
        for backend in backends:
            for user in users:
                backend.flush(user, wait=False)
    wait_until(lambda: backends[0].status().pending_turns == 0, "every batch processed")
    assert peaks[users[0]] == 1 and peaks[users[1]] == 1
    engine = sa.create_engine(db.url, **db.engine_options)
    with engine.connect() as conn:
        turns = [x for row in conn.execute(sa.select(t.flushes.c.turn_ids)) for x in row[0]]
    engine.dispose()
    assert sorted(turns) == sorted(f"u{k}-{n}" for k in range(2) for n in range(12))


def test_close_leaves_no_flush_thread_behind(make_backend: BackendFactory) -> None:
    before = {th.ident for th in threading.enumerate()}
    settings, _tap, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=manual(), worker="thread")
    users = [uuid.uuid4() for _ in range(6)]
    for n, user in enumerate(users):
        record(backend, user, f"I have {n} cats.", f"c{n}")
        backend.flush(user, wait=False)
    wait_until(lambda: backend.status().pending_turns == 0, "all processed")
    backend.close(timeout=30)
    left = [
        th.name
        for th in threading.enumerate()
        if th.ident not in before and th.name.startswith("memobase")
    ]
    assert left == []


# -- the shared LLM gate ---------------------------------------------------------------------


class RateLimited(httpx.BaseTransport):
    """Answers the first request with ``status`` (and ``headers``), every later one with a
    completion; counts the requests that reached it."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.lock = threading.Lock()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
            first = self.requests == 1
        if first:
            return httpx.Response(
                self.status, headers=self.headers, json={"error": {"message": "slow down"}}
            )
        return httpx.Response(200, json=completion("- ok"))


def _client(transport: httpx.BaseTransport, gate: LLMGate, retries: int) -> LLMClient:
    settings = LLMSettings(
        base_url="http://llm.invalid/v1",
        api_key=SecretStr("sk-test-not-a-key"),
        http_client=httpx.Client(transport=transport),
        max_retries=retries,
    )
    return LLMClient(settings, gate)


def test_a_429_with_retry_after_pauses_every_llm_call_of_the_worker() -> None:
    endpoint = RateLimited(429, {"Retry-After": "30"})
    gate = LLMGate(8, max_pause_seconds=60)
    client = _client(endpoint, gate, retries=1)
    answers: list[str] = []

    def call(text: str) -> None:
        answers.append(client.complete("extract_profile", "", text))

    first = threading.Thread(target=call, args=("user a",))
    first.start()
    wait_until(lambda: gate.pauses == 1, "the 429 closed the gate")
    assert 25 < gate.paused_for() <= 30  # the header's time, not a guess
    # Another flush's call (another user) now waits too, without reaching the endpoint.
    second = threading.Thread(target=call, args=("user b",))
    second.start()
    wait_until(lambda: gate.waiting == 2, "both calls held by the pause")
    assert endpoint.requests == 1
    gate.resume()  # (instead of waiting 30 s)
    first.join(30)
    second.join(30)
    assert answers == ["- ok", "- ok"]
    assert endpoint.requests == 3
    client.close()


def test_the_shared_pause_is_capped() -> None:
    gate = LLMGate(2, max_pause_seconds=5)
    client = _client(RateLimited(503, {"Retry-After": "3600"}), gate, retries=1)
    caller = threading.Thread(target=client.complete, args=("extract_profile", "", "x"))
    caller.start()
    wait_until(lambda: gate.pauses == 1, "the 503 with Retry-After closed the gate")
    assert 0 < gate.paused_for() <= 5
    gate.resume()
    caller.join(30)
    client.close()


def test_a_server_error_without_retry_after_pauses_nobody_and_fails_the_flush() -> None:
    gate = LLMGate(2)
    client = _client(RateLimited(500, {}), gate, retries=0)
    with pytest.raises(LLMError) as info:
        client.complete("extract_profile", "", "x")
    assert info.value.status_code == 500  # the turns' own retry and parking take over
    assert gate.pauses == 0
    client.close()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_its_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    wait = retry_after_seconds({"retry-after": when})
    assert wait is not None and 60 < wait <= 120


# -- wake-ups ----------------------------------------------------------------------------


# LISTEN/NOTIFY is PostgreSQL's (SQLite apps wake their worker by pipe): PostgreSQL only.
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_postgres_wakes_the_worker_when_another_process_records(
    db: DbTarget, make_backend: BackendFactory
) -> None:
    assert db.kind == "postgres"
    settings, tap, _ = tapped_settings()
    # A worker that would poll only once an hour: only a NOTIFY can make it look.
    worker = make_backend(
        llm=settings,
        policy=manual(buffer_token_threshold=5, worker_poll_seconds=3600.0),
        worker="thread",
    )
    listener = worker._listener
    assert listener is not None
    # Listening before the turn is recorded: then only the NOTIFY can wake the worker.
    wait_until(listener.listening.is_set, "the worker listens")
    tap.calls.clear()
    recorder = make_backend(llm=LLMSettings(), policy=manual(), start_worker=False)
    user = uuid.uuid4()
    record(recorder, user, "I moved to Oslo last spring and I work at the harbour.", "n1")
    wait_until(lambda: recorder.status(user).pending_turns == 0, "the NOTIFY woke the worker")
    assert len(tap.summarized_markers()) == 1


def _voluntary_switches(native_id: int) -> int:
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="counts wake-ups in /proc")
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_an_idle_listener_sleeps_until_a_notify(db: DbTarget, make_backend: BackendFactory) -> None:
    # psycopg's notifies(timeout=...) woke every 0.1 s while waiting: ten wake-ups a second
    # in every idle worker. Waiting on the socket, the thread sleeps until something comes.
    settings, _tap, _ = tapped_settings()
    backend = make_backend(llm=settings, policy=manual(), worker="thread")
    listener = backend._listener
    assert listener is not None and listener._thread is not None
    wait_until(listener.listening.is_set, "the worker listens")
    tid = listener._thread.native_id
    assert tid is not None
    # Some one-second window with at most 2 wake-ups (the old wait never had fewer than 10;
    # right after the start, waiting for the GIL while the tokenizer loads also counts).
    quiet = []
    for _ in range(20):
        before = _voluntary_switches(tid)
        time.sleep(1.0)
        quiet.append(_voluntary_switches(tid) - before)
        if quiet[-1] <= 2:
            break
    assert quiet[-1] <= 2, f"wake-ups per second while idle: {quiet}"


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_the_listener_reconnects_when_its_connection_is_killed(
    db: DbTarget, make_backend: BackendFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "_RECONNECT_SECONDS", 0.05)
    woke = threading.Event()
    backend = make_backend(llm=LLMSettings(), policy=manual(), start_worker=False)
    engine = backend.store.engine
    listener = notify.TurnListener(engine, woke.set)
    assert listener.start()
    listening = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE query = :q AND pid <> pg_backend_pid()"
    ).bindparams(q=f"LISTEN {notify.CHANNEL}")

    def listener_pids() -> set[int]:
        with engine.connect() as conn:
            return {pid for (pid,) in conn.execute(listening)}

    try:
        wait_until(listener.listening.is_set, "listening")
        killed = listener_pids()
        assert killed
        with engine.begin() as conn:
            for pid in killed:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        wait_until(lambda: bool(listener_pids() - killed), "a new LISTEN connection")
        woke.clear()
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_notify(:c, 'turn')"), {"c": notify.CHANNEL})
        assert woke.wait(30), "no wake-up after reconnecting"
    finally:
        listener.stop()
