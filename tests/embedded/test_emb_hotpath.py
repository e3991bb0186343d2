"""The lean hot path (issue 13 item 4): what record() and context() skip must change nothing.

* record() on a SQLite file runs on the driver's cursor: it must write exactly the rows the
  SQLAlchemy Core path writes, map driver errors the same way (the retry when another process
  deleted the user), and stay idempotent;
* record() never waits for the tokenizer: while it loads, a buffer row gets an upper bound
  that a background thread replaces with the exact count, after which the buffer threshold
  decides exactly as before (strictly more than ``buffer_token_threshold``);
* the tokenizer starts loading when the backend is built, on a thread of its own;
* context() resolves the profile config once per stored version and still sees a change made
  by ``set_profile_config`` or by another process at once.

Nothing here is timed: waits are bounded polls for a state, never assertions on durations.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from embedded.emb_support import MANUAL, BackendFactory, DbTarget

from memobase_integrations import tokens
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import config as config_module
from memobase_integrations.engine import store as store_module
from memobase_integrations.engine.plan import Claim
from memobase_integrations.engine.store import Store
from memobase_integrations.engine.store import clock as store_clock
from memobase_integrations.engine.store.connection import FifoLock
from memobase_integrations.messages import render_blob, turn_to_blobs
from memobase_integrations.models import BlobType
from memobase_integrations.settings import LLMSettings
from memobase_integrations.values import ContextOptions

NO_LLM = LLMSettings()  # recording needs no LLM; nothing here processes


def _wait_for(predicate: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- record() on the driver's cursor ------------------------------------------------------------
def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("mb_users", "mb_turns", "mb_blobs", "mb_buffer")
        }
    finally:
        conn.close()


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "engine_options",
    [{}, {"json_serializer": _compact_json}],
    ids=["default-json", "custom-json-serializer"],
)
def test_sqlite_record_writes_exactly_the_rows_of_the_core_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_options: dict[str, Any]
) -> None:
    fixed = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    monkeypatch.setattr(store_clock, "utcnow", lambda: fixed)
    user = uuid.uuid4()
    [dated] = turn_to_blobs([{"role": "user", "content": "An old note, imported."}])
    lisbon = timezone(timedelta(hours=1))
    turns = [
        turn_to_blobs(
            [
                {"role": "user", "content": "I moved to Lisbon; café ☕ and 日本語 too"},
                {"role": "assistant", "content": "Nice!", "name": "Bot"},
            ],
            fields={"turn_id": "t1"},
        ),
        turn_to_blobs([{"role": "user", "content": "word " * 60}], max_blob_tokens=32),
        # Explicit blob times (kept, not "now"): an aware one off UTC, a naive one (UTC).
        [
            dated.model_copy(update={"created_at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=lisbon)}),
            dated.model_copy(update={"created_at": datetime(2024, 5, 6, 7, 8, 9, 10)}),
        ],
    ]
    dumps = []
    for name, lean in (("lean.db", True), ("core.db", False)):
        store = Store(f"sqlite:///{tmp_path / name}", engine_options=engine_options)
        assert (store._sqlite_recorder is not None) is True
        if not lean:
            store._sqlite_recorder = None  # the SQLAlchemy Core path
        for i, blobs in enumerate(turns):
            receipt, added = store.record_turn(user, f"t{i}", blobs)
            assert not receipt.duplicate
            assert added == sum(tokens.count_tokens(render_blob(b, fixed)) for b in blobs)
            again, added_again = store.record_turn(user, f"t{i}", blobs)
            assert again.duplicate and again.blob_ids == receipt.blob_ids and added_again == 0
        store.close()
        dumps.append(_dump(tmp_path / name))
    lean_rows, core_rows = dumps
    assert len(lean_rows["mb_blobs"]) == 1 + len(turns[1]) + 2 > 4  # the long turn was split
    assert lean_rows == core_rows
    stored = [row[5] for row in lean_rows["mb_blobs"]]  # blob_data, as the engine wrote it
    custom = "json_serializer" in engine_options
    assert all(("café" in text) == custom for text in stored if "Lisbon" in text)
    times = {row[7] for row in lean_rows["mb_blobs"]}  # created_at: naive UTC text
    assert {"2024-05-06 06:08:09.000000", "2024-05-06 07:08:09.000010"} <= times


def test_turn_blob_ids_are_the_uuid5_of_the_turn_part() -> None:
    user = uuid.uuid4()
    for turn_id in ("t1", "lc:8f0c", "café ☕ 日本語", "x" * 255):
        for part in (0, 1, 12):
            expected = uuid.uuid5(user, f"turn:{turn_id}:{part}")
            assert store_module.turn_blob_id(user, turn_id, part) == expected


def test_the_write_lock_serves_waiters_in_arrival_order() -> None:
    lock = FifoLock()
    served: list[int] = []

    def take(n: int) -> None:
        with lock:
            served.append(n)

    threads = [threading.Thread(target=take, args=(n,), daemon=True) for n in range(4)]
    with lock:
        for n, thread in enumerate(threads):
            thread.start()
            _wait_for(lambda n=n: lock._waiting == n + 1, f"waiter {n} to queue")  # type: ignore[misc]
    for thread in threads:
        thread.join(20)  # a deadlock guard: a lost wake-up leaves a waiter waiting
    assert served == [0, 1, 2, 3] and not any(t.is_alive() for t in threads)
    assert lock._waiting == 0
    with lock:  # free again: no ticket left behind
        served.append(4)
    assert served[-1] == 4


def test_record_recreates_a_user_another_process_deleted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store, other = Store(url), Store(url)
    user = uuid.uuid4()
    store.record_turn(user, "t1", turn_to_blobs([{"role": "user", "content": "first"}]))
    assert other.delete_user(user)  # this store still believes the user exists
    receipt, added = store.record_turn(
        user, "t2", turn_to_blobs([{"role": "user", "content": "second"}])
    )
    assert not receipt.duplicate and added > 0
    assert store.get_user(user) is not None
    assert store.idle_tokens(user, BlobType.chat) == added
    store.close()
    other.close()


# -- the tokenizer: loaded in the background, never waited for by record() ----------------------
@pytest.fixture
def loading_tokenizer(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """A process whose encoder is not built yet and whose build waits for the event."""
    release = threading.Event()
    real = tokens.build_o200k
    built_on: list[str] = []

    def slow_build() -> Any:
        built_on.append(threading.current_thread().name)
        assert release.wait(60), "the test never released the tokenizer build"
        return real()

    monkeypatch.setattr(tokens, "build_o200k", slow_build)
    monkeypatch.setattr(tokens, "_ENCODING", tokens._Lazy())
    release.built_on = built_on  # type: ignore[attr-defined]
    yield release
    release.set()


def test_construction_starts_the_tokenizer_on_a_background_thread(
    make_backend: BackendFactory, loading_tokenizer: threading.Event
) -> None:
    backend = make_backend(llm=NO_LLM, policy=MANUAL, start_worker=False)  # returns: not waiting
    _wait_for(lambda: bool(loading_tokenizer.built_on), "the preload to start")  # type: ignore[attr-defined]
    assert loading_tokenizer.built_on == ["memobase-tokenizer-preload"]  # type: ignore[attr-defined]
    assert not tokens.is_ready()
    loading_tokenizer.set()
    _wait_for(tokens.is_ready, "the preloaded encoder")
    assert backend.store.safe_url  # the backend was usable all along


def test_record_does_not_wait_for_the_tokenizer_and_thresholds_stay_exact(
    make_backend: BackendFactory, loading_tokenizer: threading.Event
) -> None:
    backend = make_backend(llm=NO_LLM, policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    blobs = turn_to_blobs(
        [
            {"role": "user", "content": "I moved to Lisbon and work as a nurse now."},
            {"role": "assistant", "content": "How exciting! How do you like Lisbon?"},
        ]
    )
    done: list[Any] = []
    recorder = threading.Thread(target=lambda: done.append(backend.record(user, blobs, "t1")))
    recorder.start()
    recorder.join(60)  # a deadlock guard: the build is blocked until the test releases it
    assert done and not done[0].duplicate, "record() waited for the tokenizer"
    assert not tokens.is_ready()

    text = render_blob(blobs[0], backend.store.get_blob(user, done[0].blob_ids[0]).created_at)
    bound = len(text.encode("utf-8"))
    assert backend.store.idle_tokens(user, BlobType.chat) == bound  # the upper bound, for now

    loading_tokenizer.set()
    exact = tokens.count_tokens(text)
    assert exact < bound
    _wait_for(lambda: backend.store.idle_tokens(user, BlobType.chat) == exact, "the exact count")

    def due(threshold: int) -> bool:
        found = backend.store.due_users(threshold=threshold, idle_seconds=None)
        return any(d.user_id == user for d in found)

    assert due(exact - 1)  # more than the threshold: due
    assert not due(exact)  # exactly the threshold is not "more than" (as Memobase)
    assert not due(bound - 1)  # the bound no longer counts


def test_once_loaded_record_counts_exactly_on_the_spot(make_backend: BackendFactory) -> None:
    tokens.encoding()
    backend = make_backend(llm=NO_LLM, policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    blobs = turn_to_blobs([{"role": "user", "content": "Hello, I am Ana from Porto."}])
    receipt = backend.record(user, blobs, "t1")
    when = backend.store.get_blob(user, receipt.blob_ids[0]).created_at
    assert backend.store.idle_tokens(user, BlobType.chat) == tokens.count_tokens(
        render_blob(blobs[0], when)
    )
    assert not backend._token_counts.pending and not backend._token_counts.correcting


# -- context(): the resolved config, cached per version -----------------------------------------
def _language_of(backend: EmbeddedBackend, user: uuid.UUID) -> str:
    text = backend.context(user, ContextOptions())
    return "zh" if "# 记忆" in text else "en"


def test_context_resolves_the_config_once_per_version(
    make_backend: BackendFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(llm=NO_LLM, policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    backend.ensure_user(user)
    resolved: list[str | None] = []
    real = config_module.ProfileConfig.from_yaml

    def counting(text: str | None, **kw: Any) -> Any:
        resolved.append(text)
        return real(text, **kw)

    monkeypatch.setattr(config_module.ProfileConfig, "from_yaml", staticmethod(counting))
    for _ in range(3):
        assert _language_of(backend, user) == "en"
    assert resolved == [None]

    backend.set_profile_config("language: zh\n")  # this process: seen at once
    resolved.clear()
    for _ in range(3):
        assert _language_of(backend, user) == "zh"
    assert resolved == ["language: zh\n"]  # resolved once more, then cached again


def test_context_sees_another_process_change_the_config(
    make_backend: BackendFactory, db: DbTarget
) -> None:
    backend = make_backend(llm=NO_LLM, policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    backend.ensure_user(user)
    assert _language_of(backend, user) == "en"  # resolved and cached here
    script = (
        "import sys, json\n"
        "from memobase_integrations.backends.embedded import EmbeddedBackend\n"
        "from memobase_integrations.settings import LLMSettings\n"
        "b = EmbeddedBackend(sys.argv[1], engine_options=json.loads(sys.argv[2]),\n"
        "                    llm=LLMSettings(), start_worker=False)\n"
        "b.set_profile_config(sys.argv[3] or None)\n"
        "b.close(timeout=5)\n"
    )
    import json

    def other_process_sets(config: str) -> None:
        subprocess.run(
            [sys.executable, "-c", script, db.url, json.dumps(db.engine_options), config],
            check=True,
            timeout=120,
        )

    other_process_sets("language: zh\n")
    assert _language_of(backend, user) == "zh"
    other_process_sets("")  # back to the defaults
    assert _language_of(backend, user) == "en"


def test_a_context_miss_is_one_query_per_table_and_reads_the_config_text_on_change_only(
    make_backend: BackendFactory, db: DbTarget
) -> None:
    from sqlalchemy import event

    backend = make_backend(
        llm=NO_LLM, policy=MANUAL, start_worker=False, profile_config="language: en\n"
    )
    user = uuid.uuid4()
    backend.ensure_user(user)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statement = args[0] if len(args) == 1 else args[2]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(" ".join(statement.split()))

    engine = backend.store.engine
    if db.kind == "sqlite":  # the lean read runs on the driver's cursor: trace the driver
        event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(seen))
        engine.dispose()  # new connections, traced
    event.listen(engine, "before_cursor_execute", seen)
    try:
        backend.context(user, ContextOptions())  # first read: the config text too
        assert sum("profile_config" in s for s in statements) == 1
        for _ in range(2):
            statements.clear()
            backend.context(user, ContextOptions())
            tables = sorted(s.split(" FROM ")[1].split()[0] for s in statements)
            assert tables == ["mb_gists", "mb_profiles", "mb_project"], statements
            assert not any("profile_config" in s for s in statements)
        backend.set_profile_config("language: zh\n")
        statements.clear()
        assert _language_of(backend, user) == "zh"
        assert sum("profile_config" in s for s in statements) == 1
    finally:
        event.remove(backend.store.engine, "before_cursor_execute", seen)


def test_sqlite_context_read_returns_what_the_core_path_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from embedded.search_support import clock_at, days_ago, seed_event

    backend = EmbeddedBackend(
        f"sqlite:///{tmp_path / 'm.db'}", llm=NO_LLM, policy=MANUAL, start_worker=False
    )
    try:
        store = backend.store
        assert store._sqlite_reader is not None
        user, other = uuid.uuid4(), uuid.uuid4()
        store.add_profile(user, "Ana", "basic_info", "name")
        store.add_profile(user, "nurse", "work", "title")
        store.add_profile(other, "Bob", "basic_info", "name")
        with clock_at(monkeypatch, days_ago(200)):
            seed_event(backend, user, ["too old for the window"])
        seed_event(backend, user, ["moved to Lisbon", "likes jazz"])
        seed_event(backend, other, ["not this user's"])
        since = days_ago(180)

        def both(stamp: object) -> tuple[Any, Any]:
            lean = store.context_rows(user, since=since, limit=60, config_stamp=stamp)
            reader, store._sqlite_reader = store._sqlite_reader, None
            try:
                core = store.context_rows(user, since=since, limit=60, config_stamp=stamp)
            finally:
                store._sqlite_reader = reader
            return lean, core

        lean, core = both(None)  # no project row yet
        assert lean == core and lean.config is not None and lean.config.text is None
        assert [p.content for p in lean.profiles] == ["nurse", "Ana"]
        assert [g.gist_data.content for g in lean.gists] == ["moved to Lisbon", "likes jazz"]
        assert (
            both(lean.config.stamp)
            == (store_module.ContextRows(None, lean.profiles, lean.gists),) * 2
        )  # the same version: no config in either answer
        backend.set_profile_config("language: zh\n")
        lean, core = both(lean.config.stamp)
        assert lean == core and lean.config is not None and lean.config.text == "language: zh\n"
        assert both(lean.config.stamp)[0].config is None
    finally:
        backend.close(timeout=5)


def test_the_fast_utc_reader_reads_what_sqlalchemy_reads() -> None:
    import random

    import sqlalchemy as sa

    from memobase_integrations.engine import schema
    from memobase_integrations.engine.sqlite_hotpath import _result, _utc_reader

    dialect = sa.create_engine("sqlite://").dialect
    column_type = schema.profiles.c.updated_at.type.dialect_impl(dialect)
    write = column_type.bind_processor(dialect)
    read_sa = _result(schema.profiles.c.updated_at, dialect)
    read_fast = _utc_reader(read_sa)
    rng = random.Random(5)
    stamps = [datetime(2026, 1, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999999)]
    stamps += [
        datetime.fromtimestamp(rng.uniform(0, 4e9), UTC).replace(microsecond=rng.choice([0, 1, 7]))
        for _ in range(200)
    ]
    assert write is not None
    for stamp in stamps:
        text = write(stamp)
        assert read_fast(text) == read_sa(text) and read_fast(text).tzinfo is UTC
    for odd in (None, "2026-12-06 20:07:36", "2026-12-06T20:07:36.123456"):
        assert read_fast(odd) == read_sa(odd)


def test_a_bound_past_the_batch_cap_is_never_written(
    make_backend: BackendFactory, loading_tokenizer: threading.Event
) -> None:
    """A claim parks a blob bigger than max_process_tokens as failed, so a bound above it
    (the exact count may be far below) is not used: that blob waits for the exact count."""
    backend = make_backend(
        llm=NO_LLM, policy=MANUAL.model_copy(update={"max_process_tokens": 64}), start_worker=False
    )
    user = uuid.uuid4()
    small = turn_to_blobs([{"role": "user", "content": "hi"}])
    big = turn_to_blobs([{"role": "user", "content": "aaaa " * 12}])  # ~25 tokens, ~90 bytes
    backend.record(user, small, "small")  # a bound (the encoder is loading)
    assert backend.store.idle_tokens(user, BlobType.chat) > 0 and not tokens.is_ready()
    done: list[Any] = []
    recorder = threading.Thread(target=lambda: done.append(backend.record(user, big, "big")))
    recorder.start()
    recorder.join(0.5)  # not a timing assertion: the record is expected to be still waiting
    assert not done and recorder.is_alive()
    loading_tokenizer.set()
    recorder.join(60)
    assert done
    when = backend.store.get_blob(user, done[0].blob_ids[0]).created_at
    exact_big = tokens.count_tokens(render_blob(big[0], when))
    assert exact_big <= 64 < tokens.token_bound(render_blob(big[0], when))
    _wait_for(lambda: not backend._token_counts.correcting, "the correction of the small turn")
    claim = backend.store.claim(
        user, BlobType.chat, "t:1", lease_seconds=30, max_tokens=64, force=True
    )
    assert isinstance(claim, Claim)  # neither None nor store_module.BUSY
    assert claim.turn_ids == ["small", "big"]  # nothing parked: both fit the cap exactly
