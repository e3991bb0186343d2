"""The outbox under the faults of issue 12, on the mock transport (deterministic).

Each test reproduces one defect found against the real server: a blob stored without its
buffer row, a turn the server refuses forever, an idle flush racing a lost answer, a lease
that lapses, a key written into the outbox file. Waits are deadlines against hangs only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from support import wait_until

from memobase_integrations import errors
from memobase_integrations.backends import http
from memobase_integrations.backends import outbox as outbox_module
from memobase_integrations.backends.outbox import UserGuards
from memobase_integrations.backends.outbox_store import OutboxStore, lease_owner_id
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.models import ChatBlob, OpenAICompatibleMessage

from .fake_server import NUL_ERRMSG, on_nth_insert
from .test_outbox import Env, env, policy, processed_keys, stored_keys, turn

__all__ = ["env"]  # the fixture, re-exported for pytest


def _record_raw(backend: RemoteBackend, user: Any, text: str, turn_id: str) -> None:
    """A turn written straight into the outbox, bypassing ``record()``'s input rules, as an
    outbox file of an earlier version (or a server refusing something else) presents it."""
    # Built from the wire models directly: Message applies the text policy on construction.
    raw = [
        ChatBlob(
            messages=[
                OpenAICompatibleMessage(role="user", content=text),
                OpenAICompatibleMessage(role="assistant", content="Noted."),
            ]
        )
    ]
    store = backend._open_store()
    store.add(backend._scope, user, turn_id, backend._turn_bodies(raw, turn_id))
    backend._start_worker()


# -- 1. two-commit insert ---------------------------------------------------------------------


def test_a_blob_stored_without_its_buffer_row_is_processed_exactly_once(env: Env) -> None:
    """The server died between storing the blob and buffering it: the retry finds the blob
    by its fields and does not resend; the post-flush check sees it still stored after a
    successful flush, gives the server a fresh copy and deletes the orphan."""
    env.fake.fault = on_nth_insert(1, "crash_between")
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I keep bees."), "t1")
    backend.record(user, turn("I sail on weekends."), "t2")
    wait_until(lambda: backend.status(user).pending_turns == 0, "delivery")
    assert env.fake.unbuffered_blobs() == 1  # t1: stored, never buffered
    results = backend.flush(user)
    assert results  # processed (t2 at first, t1 once re-buffered)
    assert sorted(processed_keys(env, user)) == [("t1", 0), ("t2", 0)]
    assert env.fake.leftover_blobs() == 0  # the orphan was deleted
    status = backend.status(user).users[0]
    assert status.buffered_tokens == 0 and status.last_error is None


def test_the_idle_flush_also_proves_processing(env: Env) -> None:
    env.fake.fault = on_nth_insert(2, "crash_between")
    backend = env.backend(policy=policy(idle_flush_seconds=0.02))
    user = uuid4()
    for n in range(3):
        backend.record(user, turn(f"fact {n}"), f"t{n}")
    wait_until(lambda: len(processed_keys(env, user)) == 3, "all three processed")
    wait_until(lambda: backend.status(user).users[0].buffered_tokens == 0, "settled")
    assert sorted(processed_keys(env, user)) == [("t0", 0), ("t1", 0), ("t2", 0)]
    assert env.fake.leftover_blobs() == 0


def test_a_server_keeping_processed_blobs_is_not_flushed_forever(env: Env) -> None:
    """``persistent_chat_blobs``: processed blobs stay stored with ``done`` buffer rows; that
    is no orphan, and nothing is sent again."""
    real = env.fake._process

    def keep(uid: str) -> list[dict[str, Any]]:
        idle = [b for b in env.fake.blobs.get(uid, {}).values() if b.status == "idle"]
        saved = dict(env.fake.blobs.get(uid, {}))
        results = real(uid)
        env.fake.blobs[uid] = saved
        for b in idle:
            b.status = "done"
        return results

    env.fake._process = keep  # type: ignore[method-assign]
    env.fake.fault = on_nth_insert(1, "drop_after")  # t1 adopted unseen: it will be checked
    backend = env.backend()
    user = uuid4()
    backend.record(user, turn("I paint."), "t1")
    backend.flush(user)
    backend.record(user, turn("I sculpt."), "t2")
    backend.flush(user)
    assert processed_keys(env, user) == [("t1", 0), ("t2", 0)]
    assert stored_keys(env, user) == [("t1", 0), ("t2", 0)]  # nothing re-inserted
    assert backend.status(user).users[0].buffered_tokens == 0


# -- 2. refusals that will not change ---------------------------------------------------------


def test_the_nul_refusal_is_permanent_and_other_errno_500s_are_not() -> None:
    refusal_is_permanent = http.refusal_is_permanent

    def refusal(errmsg: str, errno: int = 500) -> errors.MemobaseError:
        return errors.ServerError(errmsg, errno=errno, status_code=200, detail=errmsg)

    assert refusal_is_permanent(refusal(NUL_ERRMSG))
    assert refusal_is_permanent(refusal("Error inserting blob: ImageBlob not implemented yet."))
    assert refusal_is_permanent(
        errors.ValidationError("x", errno=400, status_code=200, detail="Unable to parse blob")
    )
    assert refusal_is_permanent(errors.ValidationError("x", status_code=422))
    # the server or its dependencies, a missing user, a wrong key: not about this turn
    assert not refusal_is_permanent(refusal("Error in llm_complete: Connection error.", 503))
    assert not refusal_is_permanent(refusal("(psycopg2.errors.ForeignKeyViolation) ..."))
    assert not refusal_is_permanent(refusal("(psycopg2.OperationalError) server closed"))
    assert not refusal_is_permanent(errors.AuthenticationError("x", errno=401, status_code=401))
    assert not refusal_is_permanent(errors.ServerError("x", status_code=503))
    assert not refusal_is_permanent(errors.MemobaseConnectionError("lost"))


def test_a_turn_the_server_refuses_for_good_is_parked_and_blocks_nothing(env: Env) -> None:
    backend = env.backend(policy=policy(idle_flush_seconds=0.02))
    user = uuid4()
    backend.record(user, turn("first"), "t1")
    _record_raw(backend, user, "bad \x00 byte", "nul")
    backend.record(user, turn("third"), "t3")
    wait_until(lambda: len(processed_keys(env, user)) == 2, "the later turn processed")
    assert sorted(processed_keys(env, user)) == [("t1", 0), ("t3", 0)]
    [failure] = backend.failures(user)
    assert failure.turn_id == "nul" and failure.parked and failure.attempts == 1
    assert "UntranslatableCharacter" in failure.error
    status = backend.status(user)
    assert status.failed == 1 and status.pending_turns == 1
    assert env.fake.refused == [(str(user), "nul", 0)]  # sent once, not retried


async def test_the_async_failure_calls_match_the_sync_ones(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    await asyncio.to_thread(_record_raw, backend, user, "nul \x00 here", "nul")
    await asyncio.to_thread(
        wait_until, lambda: bool(backend.failures(user)), "the refusal is parked"
    )
    assert await backend.afailures(user) == backend.failures(user)
    assert await backend.aretry_failed(user) == 1  # due again (and refused again)
    await asyncio.to_thread(
        wait_until, lambda: len(env.fake.refused) == 2, "the retry went out and was refused"
    )
    await asyncio.to_thread(wait_until, lambda: bool(backend.failures(user)), "parked again")
    assert await backend.adiscard_failed(user) == 1
    assert await backend.afailures(user) == [] and backend.status(user).pending_turns == 0


def test_a_body_that_cannot_be_encoded_is_parked_not_retried_forever(env: Env) -> None:
    backend = env.backend()
    user = uuid4()
    _record_raw(backend, user, "lone \ud800 surrogate", "bad")
    backend.record(user, turn("fine"), "ok")
    wait_until(lambda: ("ok", 0) in stored_keys(env, user), "the later turn delivered")
    [failure] = backend.failures(user)
    assert failure.turn_id == "bad" and failure.parked
    assert "cannot be sent" in failure.error


# -- 12. no flush while a send is uncertain ---------------------------------------------------


def test_no_idle_flush_while_a_lost_answer_awaits_its_retry(env: Env) -> None:
    """t1's answer is lost (the server stored it); before its retry resolves that, the idle
    flush must not process the stored copy, or the retry (finding nothing) resends it."""
    env.fake.fault = on_nth_insert(2, "drop_after")
    # the idle flush is due long before the retry of the lost send
    backend = env.backend(
        policy=policy(idle_flush_seconds=0.01, retry_base_seconds=0.4, retry_max_seconds=0.4)
    )
    user = uuid4()
    backend.record(user, turn("I grow tomatoes."), "t0")
    backend.record(user, turn("I fix old radios."), "t1")
    wait_until(lambda: len(processed_keys(env, user)) >= 2, "both processed")
    wait_until(lambda: backend.status(user).pending_turns == 0, "settled")
    backend.close()
    assert sorted(processed_keys(env, user)) == [("t0", 0), ("t1", 0)]  # once each


# -- 5. leases --------------------------------------------------------------------------------


def test_a_lease_that_cannot_be_had_is_a_typed_error_not_a_silent_entry(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "o.db")
    mine = UserGuards("scope", lease_owner_id(), lease_seconds=60)
    other = UserGuards("scope", lease_owner_id(), lease_seconds=60)
    mine.store = other.store = store
    user = uuid4()
    entered = []
    with mine.hold(user):
        with pytest.raises(errors.MemobaseTimeoutError, match="is busy"), other.hold(user, 0.2):
            entered.append("sync")

        async def enter() -> None:
            async with other.ahold(user, 0.2):
                entered.append("async")

        with pytest.raises(errors.MemobaseTimeoutError, match="is busy"):
            asyncio.run(enter())
        with pytest.raises(outbox_module.LeaseLost):
            other.renew(user)
    assert entered == []
    with other.hold(user, 0.2):  # free again once released
        entered.append("after")
    assert entered == ["after"]
    store.close()


def test_the_local_lock_wait_is_bounded_too() -> None:
    guards = UserGuards("scope", lease_owner_id(), lease_seconds=60)
    user = uuid4()
    outcome: list[BaseException | str] = []

    def other_thread() -> None:
        try:
            with guards.hold(user, 0.1):
                outcome.append("entered")
        except BaseException as exc:
            outcome.append(exc)

    with guards.hold(user):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], errors.MemobaseTimeoutError)


# -- 16. no key material in the outbox file ---------------------------------------------------


def _file_bytes(path: Path) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            data += part.read_bytes()
    return data


def test_no_part_of_the_api_key_reaches_the_outbox_file(env: Env, tmp_path: Path) -> None:
    backend = RemoteBackend(
        "http://memobase.test",
        "sk-mysecret-token-value",
        outbox_path=env.path,
        transport=env.guard,
        policy=policy(),
    )
    env.backends.append(backend)
    user = uuid4()
    backend.record(user, turn("hello"), "t1")
    backend.close()
    data = _file_bytes(env.path)
    assert b"mysecret" not in data and b"token-value" not in data
    with sqlite3.connect(env.path) as conn:
        [(scope,)] = conn.execute("SELECT DISTINCT scope FROM outbox_turns").fetchall()
    assert scope.startswith("http://memobase.test/api/v1#key-") and len(scope.split("-")[-1]) == 16


def test_an_outbox_written_by_an_earlier_version_still_opens_and_delivers(env: Env) -> None:
    """Rows under the old scope (``url#<key part>``) are moved to the fingerprint on open,
    delivered once, and the old text is gone from the file."""
    key = "sk-mysecret-token-value"
    old_scope = "http://memobase.test/api/v1#mysecret-token"
    user = uuid4()
    writer = RemoteBackend(
        "http://memobase.test",
        "sk-proj-other-key",
        outbox_path=env.path,
        transport=env.guard,
        policy=policy(),
    )
    bodies = writer._turn_bodies(turn("from the old version"), "old-1")
    writer.close()
    store = OutboxStore(env.path)
    store.add(old_scope, user, "old-1", bodies)
    store.close()
    assert b"mysecret-token" in _file_bytes(env.path)

    backend = RemoteBackend(
        "http://memobase.test", key, outbox_path=env.path, transport=env.guard, policy=policy()
    )
    env.backends.append(backend)
    wait_until(lambda: stored_keys(env, user) == [("old-1", 0)], "the old turn delivered")
    backend.close()
    assert processed_keys(env, user) == [("old-1", 0)]
    assert b"mysecret-token" not in _file_bytes(env.path)
