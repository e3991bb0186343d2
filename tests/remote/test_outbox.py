"""The remote outbox: durable, instant ``record``; background delivery, flush policy, status.

The server is :class:`FakeMemobase` behind an ``httpx.MockTransport`` wrapped in a guard that
fails when the network is used from a forbidden thread (the caller's). Waits poll the fake's
counters with a generous deadline that only guards against hangs; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from support import wait_until

from memobase_integrations import errors
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import ChatBlob, ChatModalResponse
from memobase_integrations.settings import FlushPolicy

from .fake_server import FakeMemobase

KEY = "sk-proj-outbox-test"


class Guard(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Forwards to the fake unless a *sync* call comes from a forbidden thread (then it
    records the violation and fails). Async calls are allowed: they do not block."""

    def __init__(self, inner: httpx.MockTransport) -> None:
        self.inner = inner
        self.forbidden: set[int] = set()
        self.violations: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if threading.get_ident() in self.forbidden:
            self.violations.append(f"{request.method} {request.url.path}")
            raise AssertionError("blocking network call on the caller's thread")
        return self.inner.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)


def policy(**overrides: Any) -> FlushPolicy:
    values: dict[str, Any] = {
        "buffer_token_threshold": 100_000,
        "idle_flush_seconds": None,
        "worker_poll_seconds": 0.01,
        "retry_base_seconds": 0.005,
        "retry_max_seconds": 0.03,
        "close_timeout_seconds": 10,
    }
    values.update(overrides)
    return FlushPolicy(**values)


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakeMemobase()
        self.guard = Guard(self.fake.transport())
        self.path = tmp_path / "outbox.db"
        self.backends: list[RemoteBackend] = []
        self.processed_events: list[tuple[UUID, Sequence[ChatModalResponse]]] = []

    def backend(self, **kwargs: Any) -> RemoteBackend:
        kwargs.setdefault("policy", policy())
        kwargs.setdefault("transport", self.guard)
        kwargs.setdefault("async_transport", self.guard)
        backend = RemoteBackend(
            "http://memobase.test",
            KEY,
            outbox_path=self.path,
            max_retries=0,
            **kwargs,
        )
        backend.add_listener(lambda user, results: self.processed_events.append((user, results)))
        self.backends.append(backend)
        return backend

    def close(self) -> None:
        for b in self.backends:
            b.close(timeout=5)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def turn(text: str, reply: str = "Noted.") -> list[ChatBlob]:
    return turn_to_blobs([Message.of("user", text), Message.of("assistant", reply)])


def stored_keys(env: Env, user: UUID) -> list[tuple[str, int]]:
    with env.fake.lock:
        return [(t, i) for u, t, i in env.fake.stored if u == str(user)]


def processed_keys(env: Env, user: UUID) -> list[tuple[str, int]]:
    return [(t, i) for u, t, i in env.fake.processed_keys() if u == str(user)]


def test_record_is_durable_at_once_and_never_uses_the_callers_thread(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    env.guard.forbidden.add(threading.get_ident())
    receipt = backend.record(user, turn("My name is Ann and I live in Oslo."), "turn-1")
    # committed before record returned: a separate connection sees the row
    with sqlite3.connect(env.path) as conn:
        rows = conn.execute("SELECT turn_id, n_blobs FROM outbox_turns").fetchall()
    assert rows == [("turn-1", 1)]
    assert receipt.turn_id == "turn-1" and not receipt.duplicate
    wait_until(lambda: stored_keys(env, user) == [("turn-1", 0)], "delivery")
    assert env.guard.violations == []
    assert set(env.fake.threads) == {"memobase-outbox"}
    with env.fake.lock:
        body = next(iter(env.fake.blobs[str(user)].values())).body
    assert body["fields"] == {"turn_id": "turn-1", "blob_index": 0}
    assert body["blob_data"]["messages"][0]["content"] == "My name is Ann and I live in Oslo."


def test_turns_arrive_in_order_with_every_blob(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    expected = []
    for n in range(8):
        blobs = turn_to_blobs(
            [Message.of("user", f"fact {n}: " + "word " * (300 if n == 3 else 5))],
            max_blob_tokens=128,
        )
        backend.record(user, blobs, f"t{n}")
        expected += [(f"t{n}", i) for i in range(len(blobs))]
    assert len(expected) > 8  # turn 3 was split into several blobs
    wait_until(lambda: len(stored_keys(env, user)) == len(expected), "all blobs")
    assert stored_keys(env, user) == expected


def test_a_replayed_turn_id_is_a_no_op(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    assert not backend.record(user, turn("hello"), "same").duplicate
    assert backend.record(user, turn("hello"), "same").duplicate
    backend.flush(user)
    assert backend.record(user, turn("hello"), "same").duplicate  # also after processing
    backend.close()
    assert stored_keys(env, user) == [("same", 0)]


def test_nothing_is_processed_without_a_reason_then_flush_processes(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I love hiking."), "a")
    backend.record(user, turn("I work as a nurse."), "b")
    wait_until(lambda: backend.status(user).pending_turns == 0, "delivery")
    assert len(stored_keys(env, user)) == 2
    status = backend.status(user)
    assert status.users[0].buffered_tokens > 0 and status.users[0].last_flush_at is None
    assert processed_keys(env, user) == []
    results = backend.flush(user)
    assert len(results) == 1 and results[0].event_id is not None
    assert processed_keys(env, user) == [("a", 0), ("b", 0)]
    wait_until(lambda: len(env.processed_events) == 1, "listener")  # runs on its own thread
    assert env.processed_events == [(user, results)]
    after = backend.status(user).users[0]
    assert after.buffered_tokens == 0 and after.last_flush_at is not None


def test_token_threshold_triggers_flushes_before_the_server_overflows(env: Env) -> None:
    backend = env.backend(policy=policy(buffer_token_threshold=60))
    user = uuid4()
    for n in range(6):
        backend.record(user, turn(f"Fact number {n}: I enjoy cooking pasta on Sundays."), f"t{n}")
    wait_until(lambda: len(processed_keys(env, user)) >= 4, "threshold flushes")
    assert len(env.processed_events) >= 2  # several flushes, each told to the listeners
    backend.close()
    assert sorted(processed_keys(env, user)) == [(f"t{n}", 0) for n in range(6)]


def test_idle_buffers_are_flushed(env: Env) -> None:
    backend = env.backend(policy=policy(idle_flush_seconds=0.05))
    user = uuid4()
    backend.record(user, turn("I moved to Lisbon."), "only")
    wait_until(lambda: processed_keys(env, user) == [("only", 0)], "idle flush")
    wait_until(lambda: len(env.processed_events) == 1, "listener")
    assert env.processed_events[0][0] == user


def test_explicit_flush_delivers_pending_turns_first(env: Env) -> None:
    down = True
    env.fake.fault = lambda m, p: "refuse" if down else None
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("My cat is called Miso."), "t1")
    wait_until(lambda: backend.status(user).users[0].failed == 1, "a failed attempt")
    with pytest.raises(errors.MemobaseConnectionError, match="could not connect"):
        backend.flush(user)
    assert backend.status(user).pending_turns == 1  # still kept
    down = False
    results = backend.flush(user)
    assert processed_keys(env, user) == [("t1", 0)] and len(results) == 1


async def test_async_flush_delivers_then_processes(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    env.guard.forbidden.add(threading.get_ident())  # the event loop's thread
    await backend.arecord(user, turn("I am vegetarian."), "t1")
    results = await backend.aflush(user)
    assert processed_keys(env, user) == [("t1", 0)] and len(results) == 1
    assert env.guard.violations == []
    assert (await backend.astatus(user)).pending_turns == 0


def test_close_delivers_and_flushes_everything(env: Env) -> None:
    backend = env.backend()
    users = [uuid4(), uuid4()]
    for user in users:
        for n in range(3):
            backend.record(user, turn(f"note {n}"), f"t{n}")
    backend.close()
    for user in users:
        assert sorted(processed_keys(env, user)) == [("t0", 0), ("t1", 0), ("t2", 0)]
    assert backend.status().pending_turns == 0


def test_undelivered_turns_survive_close_and_go_out_at_the_next_start(env: Env) -> None:
    env.fake.fault = lambda m, p: "refuse"
    first = env.backend()
    user = uuid4()
    first.record(user, turn("I play the cello."), "t1")
    first.close(timeout=0.2)  # bounded: the server is unreachable
    assert env.fake.stored == []
    env.fake.fault = None
    second = env.backend()  # finds work in the file and starts delivering at once
    wait_until(lambda: stored_keys(env, user) == [("t1", 0)], "delivery after restart")
    second.close()
    assert processed_keys(env, user) == [("t1", 0)]


def test_record_after_close_is_still_durable(env: Env) -> None:
    backend = env.backend()
    backend.close()
    user = uuid4()
    backend.record(user, turn("late turn"), "late")
    assert env.fake.stored == []
    revived = env.backend()
    revived.close()
    assert processed_keys(env, user) == [("late", 0)]


def _refuse_turn(
    turn_id: str, status: int = 422
) -> Callable[[httpx.Request], httpx.Response | None]:
    def check(request: httpx.Request) -> httpx.Response | None:
        if "/blobs/insert/" in request.url.path and turn_id.encode() in request.content:
            detail = [
                {
                    "type": "string_type",
                    "loc": ["body", "blob_data"],
                    "msg": "Input should be a valid string",
                }
            ]
            return httpx.Response(status, json={"detail": detail})
        return None

    return check


class Refusing(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.rule: Callable[[httpx.Request], httpx.Response | None] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.rule(request) if self.rule else None
        return answer or self.inner.handle_request(request)


def test_refused_turns_are_parked_visible_and_can_be_retried_or_discarded(env: Env) -> None:
    refusing = Refusing(env.guard)
    refusing.rule = _refuse_turn("bad-turn")
    backend = env.backend(transport=refusing, async_transport=None)
    user = uuid4()
    backend.record(user, turn("first"), "bad-turn")
    backend.record(user, turn("second"), "good-turn")
    wait_until(lambda: ("good-turn", 0) in stored_keys(env, user), "later turns not blocked")
    wait_until(lambda: backend.status(user).pending_turns == 1, "good turn recorded as delivered")
    status = backend.status(user)
    assert status.pending_turns == 1 and status.failed == 1
    assert "body.blob_data: Input should be a valid string" in (status.users[0].last_error or "")
    [failure] = backend.failures()
    assert failure.turn_id == "bad-turn" and failure.parked and failure.next_attempt_at is None
    time.sleep(0.05)
    assert ("bad-turn", 0) not in stored_keys(env, user)  # parked: not retried on its own
    refusing.rule = None
    assert backend.retry_failed(user) == 1
    wait_until(lambda: backend.status(user).pending_turns == 0, "retried turn")
    assert ("bad-turn", 0) in stored_keys(env, user)
    refusing.rule = _refuse_turn("worse-turn")
    backend.record(user, turn("third"), "worse-turn")
    wait_until(lambda: backend.status(user).failed == 1, "parked")
    assert backend.discard_failed() == 1
    assert backend.status(user).pending_turns == 0 and backend.failures() == []


def test_transient_failures_are_retried_until_delivered(env: Env) -> None:
    inserts = 0

    def fault(method: str, path: str) -> str | None:
        nonlocal inserts
        if "/blobs/insert/" in path:
            inserts += 1
            return "503" if inserts <= 3 else None
        return None

    env.fake.fault = fault
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I speak Portuguese."), "t1")
    wait_until(lambda: stored_keys(env, user) == [("t1", 0)], "delivery after 503s")
    assert [f[0] for f in env.fake.faults] == ["503"] * 3
    backend.close()
    assert processed_keys(env, user) == [("t1", 0)]


def test_max_attempts_parks_a_turn(env: Env) -> None:
    env.fake.fault = lambda m, p: "refuse" if "/blobs/insert/" in p else None
    backend = env.backend(policy=policy(max_attempts=2))
    user = uuid4()
    backend.record(user, turn("x"), "t1")
    wait_until(lambda: bool(backend.failures()) and backend.failures()[0].parked, "parked")
    [failure] = backend.failures(user)
    assert failure.attempts == 2 and "could not connect" in failure.error


@pytest.mark.parametrize("verdict", ["drop_after", "timeout_after"])
def test_a_lost_answer_does_not_deliver_twice(env: Env, verdict: str) -> None:
    """The server stored the blob but the answer was lost: the worker finds it by its
    turn_id/blob_index fields instead of sending it again."""
    sent = 0

    def fault(method: str, path: str) -> str | None:
        nonlocal sent
        if "/blobs/insert/" in path:
            sent += 1
            return verdict if sent == 1 else None
        return None

    env.fake.fault = fault
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I have two sisters."), "t1")
    backend.record(user, turn("I drive a van."), "t2")
    wait_until(
        lambda: len(stored_keys(env, user)) == 2 and backend.status().pending_turns == 0, "delivery"
    )
    assert stored_keys(env, user) == [("t1", 0), ("t2", 0)]
    assert ("GET", f"/api/v1/users/blobs/{user}/chat") in env.fake.requests  # it asked
    backend.close()
    assert processed_keys(env, user) == [("t1", 0), ("t2", 0)]


def test_a_dropped_request_is_sent_again(env: Env) -> None:
    sent = 0

    def fault(method: str, path: str) -> str | None:
        nonlocal sent
        if "/blobs/insert/" in path:
            sent += 1
            return "drop_before" if sent == 1 else None
        return None

    env.fake.fault = fault
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I like jazz."), "t1")
    backend.close()
    assert stored_keys(env, user) == [("t1", 0)] and sent == 2
    assert processed_keys(env, user) == [("t1", 0)]


def test_a_flush_that_failed_on_the_server_is_rebuffered_and_processed_once(env: Env) -> None:
    """Memobase marks the buffer failed when its LLM is down and never retries it; the
    worker gives the server fresh copies, which are processed once the LLM is back."""
    env.fake.llm_down = True
    backend = env.backend(policy=policy(idle_flush_seconds=0.02))
    user = uuid4()
    backend.record(user, turn("I am allergic to peanuts."), "t1")
    backend.record(user, turn("I run marathons."), "t2")
    wait_until(
        lambda: "llm_complete" in (backend.status(user).users[0].last_error or ""), "failed flush"
    )
    assert processed_keys(env, user) == []
    env.fake.llm_down = False
    wait_until(lambda: len(processed_keys(env, user)) == 2, "processing after recovery")
    assert sorted(processed_keys(env, user)) == [("t1", 0), ("t2", 0)]
    assert env.fake.leftover_blobs() == 0  # the failed copies were deleted
    wait_until(lambda: backend.status(user).users[0].last_error is None, "error cleared")


def test_explicit_flush_rebuffers_a_failed_server_flush_first(env: Env) -> None:
    env.fake.llm_down = True
    backend = env.backend(policy=policy(idle_flush_seconds=0.01, retry_base_seconds=60))
    user = uuid4()
    backend.record(user, turn("I collect stamps."), "t1")
    wait_until(
        lambda: "llm_complete" in (backend.status(user).users[0].last_error or ""), "failed flush"
    )
    assert env.fake.leftover_blobs() == 1  # still stored on the server, in a failed buffer
    env.fake.llm_down = False
    results = backend.flush(user)  # the worker's own retry is a minute away: we re-buffer now
    assert len(results) == 1
    assert processed_keys(env, user) == [("t1", 0)]
    assert env.fake.leftover_blobs() == 0
    assert backend.status(user).users[0].last_error is None


def test_delete_user_forgets_undelivered_turns(env: Env) -> None:
    env.fake.fault = lambda m, p: "refuse" if "/blobs/insert/" in p else None
    backend = env.backend()
    user, other = uuid4(), uuid4()
    backend.record(user, turn("secret 1"), "t1")
    backend.record(user, turn("secret 2"), "t2")
    backend.record(other, turn("keep me"), "k1")
    # t2 waits behind t1 (order is kept per user), so two turns have failed attempts
    wait_until(lambda: backend.status().failed == 2, "attempts")
    assert backend.status(user).pending_turns == 2
    backend.delete_user(user)
    assert ("DELETE", f"/api/v1/users/{user}") in env.fake.requests
    with sqlite3.connect(env.path) as conn:
        left = conn.execute("SELECT user_id FROM outbox_turns").fetchall()
    assert left == [(str(other),)]
    assert backend.status(user).pending_turns == 0
    assert backend.export_user(user)["undelivered_turns"] == []


def test_export_contains_undelivered_turns(env: Env) -> None:
    env.fake.fault = lambda m, p: "refuse" if "/blobs/insert/" in p else None
    backend = env.backend()
    user = uuid4()
    backend.ensure_user(user, {"plan": "pro"})
    backend.record(user, turn("My birthday is 3 May."), "t1")
    wait_until(lambda: backend.status(user).failed == 1, "an attempt")
    exported = backend.export_user(user)
    assert exported["user"]["data"] == {"plan": "pro"}
    assert exported["profile"] == [] and exported["events"] == []
    [undelivered] = exported["undelivered_turns"]
    assert undelivered["turn_id"] == "t1" and "could not connect" in undelivered["last_error"]
    assert undelivered["recorded_at"].endswith("+00:00")
    assert undelivered["blobs"][0]["blob_data"]["messages"][0]["content"] == "My birthday is 3 May."
    json.dumps(exported)  # JSON-ready
    assert asyncio.run(backend.aexport_user(user)) == exported


def test_status_per_user_and_overall(env: Env) -> None:
    blocked = uuid4()
    env.fake.fault = lambda m, p: "refuse" if f"/blobs/insert/{blocked}" in p else None
    backend = env.backend()
    fine = uuid4()
    backend.record(blocked, turn("a"), "a1")
    backend.record(blocked, turn("b"), "a2")
    backend.record(fine, turn("c"), "b1")
    wait_until(lambda: backend.status(blocked).users[0].failed >= 1, "failure")
    wait_until(lambda: backend.status(fine).pending_turns == 0, "the other user")
    overall = backend.status()
    assert overall.backend == "remote" and overall.pending_turns == 2
    by_user = {u.user_id: u for u in overall.users}
    assert by_user[blocked].pending_turns == 2
    assert "could not connect" in (by_user[blocked].last_error or "")
    assert by_user[fine].pending_turns == 0 and by_user[fine].buffered_tokens > 0
    assert backend.status(fine).users[0].failed == 0


def test_two_backends_sharing_one_outbox_deliver_each_turn_once(env: Env) -> None:
    a, b = env.backend(), env.backend()
    users = [uuid4() for _ in range(3)]
    for n in range(10):
        for user in users:
            (a if n % 2 else b).record(user, turn(f"fact {n}"), f"t{n}")
    a.close()
    b.close()
    for user in users:
        keys = stored_keys(env, user)
        assert sorted(keys) == sorted((f"t{n}", 0) for n in range(10))
        assert len(keys) == len(set(keys))
        assert sorted(processed_keys(env, user)) == sorted((f"t{n}", 0) for n in range(10))


def test_a_failing_listener_does_not_stop_delivery(env: Env) -> None:
    backend = env.backend(policy=policy(idle_flush_seconds=0.01))

    def broken(user: UUID, results: Sequence[ChatModalResponse]) -> None:
        raise RuntimeError("listener bug")

    backend.add_listener(broken)
    user = uuid4()
    backend.record(user, turn("one"), "t1")
    wait_until(lambda: processed_keys(env, user) == [("t1", 0)], "first")
    backend.record(user, turn("two"), "t2")
    wait_until(lambda: len(processed_keys(env, user)) == 2, "second")


async def test_arecord_leaves_the_event_loop_alone(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    env.guard.forbidden.add(threading.get_ident())
    receipts = await asyncio.gather(
        *(backend.arecord(user, turn(f"t{n}"), f"t{n}") for n in range(5))
    )
    assert [r.turn_id for r in receipts] == [f"t{n}" for n in range(5)]
    await asyncio.to_thread(wait_until, lambda: len(stored_keys(env, user)) == 5, "delivery")
    assert env.guard.violations == []
    await backend.aclose()
    assert sorted(processed_keys(env, user)) == [(f"t{n}", 0) for n in range(5)]


def test_construction_starts_loading_the_tokenizer_in_the_background(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: the o200k encoder loads when the backend is built, on its own thread, so no
    request pays for it; construction does not wait for it."""
    from memobase_integrations import tokens

    release = threading.Event()
    built_on: list[str] = []
    real = tokens.build_o200k

    def slow_build() -> Any:
        built_on.append(threading.current_thread().name)
        assert release.wait(60)
        return real()

    monkeypatch.setattr(tokens, "build_o200k", slow_build)
    monkeypatch.setattr(tokens, "_ENCODING", tokens._Lazy())
    try:
        env.backend()  # returns while the build is blocked
        deadline = time.monotonic() + 60
        while not built_on and time.monotonic() < deadline:
            time.sleep(0.01)
        assert built_on == ["memobase-tokenizer-preload"] and not tokens.is_ready()
    finally:
        release.set()
