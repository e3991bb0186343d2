"""The store on its own (SQLite and PostgreSQL): recording, claims and leases, commit/fail,
status, deletes, export, schema versioning and URL errors."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from embedded.emb_support import DbTarget

from memobase_integrations.engine import schema as t
from memobase_integrations.engine.plan import Claim, FlushPlan, NewProfile, ProfileUpdate
from memobase_integrations.engine.store import BUSY, LeaseLostError, Store, utcnow
from memobase_integrations.errors import (
    ConfigurationError,
    MemobaseConnectionError,
    NotFoundError,
    ServerError,
    StoreError,
)
from memobase_integrations.messages import render_blob, turn_to_blobs
from memobase_integrations.models import (
    BlobType,
    ChatBlob,
    DocBlob,
    EventData,
    OpenAICompatibleMessage,
    SummaryBlob,
)
from memobase_integrations.tokens import count_tokens


def open_store(db: DbTarget) -> Store:
    return Store(db.url, engine_options=dict(db.engine_options))


def chat(text: str) -> ChatBlob:
    return ChatBlob(
        messages=[
            OpenAICompatibleMessage(role="user", content=text),
            OpenAICompatibleMessage(role="assistant", content="ok"),
        ]
    )


def claim(store: Store, user: uuid.UUID, owner: str = "o:1", **kw: object) -> Claim:
    got = store.claim(
        user,
        BlobType.chat,
        owner,
        lease_seconds=float(kw.get("lease", 30.0)),  # type: ignore[arg-type]
        max_tokens=int(kw.get("max_tokens", 16384)),  # type: ignore[call-overload]
        force=bool(kw.get("force", True)),
    )
    assert isinstance(got, Claim), got
    return got


def test_record_is_idempotent_on_turn_id(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    blobs = turn_to_blobs([{"role": "user", "content": "hello there"}])
    first, idle = store.record_turn(user, "turn-1", blobs)
    assert not first.duplicate and idle == count_tokens(render_blob(blobs[0]))
    again, idle_again = store.record_turn(user, "turn-1", blobs)
    assert again.duplicate and again.blob_ids == first.blob_ids and idle_again == 0
    status = store.status(user).users[0]
    assert status.pending_turns == 1 and status.buffered_tokens == idle
    # The same turn id of another user is a different turn.
    other, _ = store.record_turn(uuid.uuid4(), "turn-1", blobs)
    assert not other.duplicate and other.blob_ids != first.blob_ids


def test_replay_after_processing_is_still_a_noop(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t", [chat("x")])
    store.commit_flush(claim(store, user), FlushPlan())
    receipt, _ = store.record_turn(user, "t", [chat("x")])
    assert receipt.duplicate
    assert store.status(user).users[0].pending_turns == 0


def test_unique_constraint_rejects_a_second_blob_for_the_same_turn_part(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t", [chat("x")])
    now = sa.func.now()
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.insert(t.blobs).values(
                id=uuid.uuid4(),
                user_id=user,
                turn_id="t",
                part=0,
                blob_type="chat",
                blob_data={},
                created_at=now,
                updated_at=now,
            )
        )


def test_a_local_database_failure_is_a_store_error_not_a_server_error(db: DbTarget) -> None:
    """The store's own database refusing a statement (here the same unique constraint,
    through ``guard``) is a ``StoreError`` naming the database and the action; a lost or
    locked database stays a ``MemobaseConnectionError``. No server is involved, so neither is
    a ``ServerError``."""
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t", [chat("x")])
    now = sa.func.now()
    row = dict(
        id=uuid.uuid4(),
        user_id=user,
        turn_id="t",
        part=0,
        blob_type="chat",
        blob_data={},
        created_at=now,
        updated_at=now,
    )
    with (
        pytest.raises(StoreError, match="failed while adding a test row") as info,
        store.guard("adding a test row"),
        store.engine.begin() as conn,
    ):
        conn.execute(sa.insert(t.blobs).values(**row))
    assert not isinstance(info.value, ServerError)
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    with (
        pytest.raises(MemobaseConnectionError, match="Check that it is reachable"),
        store.guard("reading"),
    ):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))


def test_claim_is_exclusive_per_user_and_takes_oldest_first_within_the_cap(db: DbTarget) -> None:
    store = open_store(db)
    user, other = uuid.uuid4(), uuid.uuid4()
    sizes = []
    for i in range(5):
        store.record_turn(user, f"t{i}", [chat(f"message number {i}")])
        sizes.append(count_tokens(render_blob(chat(f"message number {i}"))))
    store.record_turn(other, "x", [chat("other user")])
    first = claim(store, user, max_tokens=sizes[0] + sizes[1])
    assert first.turn_ids == ["t0", "t1"]
    # A second flush of the same user is refused while the lease lives...
    assert (
        store.claim(user, BlobType.chat, "o:2", lease_seconds=30, max_tokens=10**6, force=True)
        is BUSY
    )
    # ...but another user is independent.
    assert claim(store, other, "o:3").turn_ids == ["x"]
    store.commit_flush(first, FlushPlan())
    assert claim(store, user, "o:4").turn_ids == ["t2", "t3", "t4"]


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_commit(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t", [chat("x")])
    dead = claim(store, user, "dead:1", lease=0.2)
    time.sleep(0.3)
    assert [d.reason for d in store.due_users(threshold=10**6, idle_seconds=None)] == [
        "expired lease"
    ]
    alive = claim(store, user, "alive:1")
    assert alive.turn_ids == ["t"]
    with pytest.raises(LeaseLostError):
        store.commit_flush(dead, FlushPlan(add=[NewProfile("basic_info", "name", "Ghost")]))
    assert store.list_profiles(user) == []
    store.commit_flush(alive, FlushPlan(add=[NewProfile("basic_info", "name", "Gus")]))
    assert [p.content for p in store.list_profiles(user)] == ["Gus"]
    assert [f["turn_ids"] for f in store.flush_log(user)] == [["t"]]


def test_commit_writes_everything_in_one_go_and_deletes_processed_chat_blobs(
    db: DbTarget,
) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    existing = store.add_profile(user, "engineer", "work", "title")
    old = store.add_profile(user, "old", "interest", "music")
    receipt, _ = store.record_turn(user, "t", [chat("I am a chef now")])
    plan = FlushPlan(
        event=EventData(event_tip="- User is a chef. // info"),
        gists=[("- User is a chef. // info", [0.1, 0.2])],
        add=[NewProfile("interest", "foods", "pasta")],
        update=[ProfileUpdate(existing, "chef", 1)],
        delete=[old],
    )
    response = store.commit_flush(claim(store, user), plan)
    assert response.update_profiles == [existing] and response.delete_profiles == [old]
    assert len(response.add_profiles) == 1 and response.event_id is not None
    rows = {(p.topic, p.sub_topic): p for p in store.list_profiles(user)}
    assert rows[("work", "title")].content == "chef" and rows[("work", "title")].update_hits == 1
    assert ("interest", "music") not in rows and rows[("interest", "foods")].content == "pasta"
    with pytest.raises(NotFoundError):
        store.get_blob(user, receipt.blob_ids[0])
    gist = store.list_gists(user, since=None, limit=None)[0]
    assert gist.gist_data.content == "- User is a chef. // info"
    assert gist.created_at is not None
    assert store.gist_embeddings(user, gist.created_at)[0].embedding == [0.1, 0.2]
    assert store.status(user).users[0].last_flush_at is not None


def test_summary_blobs_are_kept_after_processing(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    blob_id, _ = store.insert_blob(user, SummaryBlob(summary="User likes tea."))
    got = store.claim(user, BlobType.summary, "o:1", lease_seconds=30, max_tokens=10**6, force=True)
    assert isinstance(got, Claim)
    store.commit_flush(got, FlushPlan())
    assert store.get_blob(user, blob_id).blob_data == {"summary": "User likes tea."}


def test_fail_keeps_rows_with_error_and_backoff_blocks_worker_claims(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t1", [chat("first")])
    first = claim(store, user)
    later = utcnow() + timedelta(seconds=60)
    store.fail_flush(first, "LLM timed out for step entry_summary", later)
    store.record_turn(user, "t2", [chat("second")])
    status = store.status(user).users[0]
    assert (status.failed, status.pending_turns) == (1, 2)
    assert status.last_error == "LLM timed out for step entry_summary"
    # The worker does not jump over a failed turn still backing off (order is kept)...
    assert store.due_users(threshold=0, idle_seconds=None) == []
    assert (
        store.claim(user, BlobType.chat, "w", lease_seconds=30, max_tokens=10**6, force=False)
        is None
    )
    # ...an explicit flush takes both, in order.
    assert claim(store, user, force=True).turn_ids == ["t1", "t2"]


def test_a_turn_split_across_claims_counts_once_in_the_status(db: DbTarget) -> None:
    # A claim stops at max_tokens, so a long turn's blobs can be partly processing and partly
    # idle (or failed and idle): the status still counts that turn once, not once per state.
    store = open_store(db)
    user = uuid.uuid4()
    blobs = [chat("first part"), chat("second part"), chat("third part")]
    store.record_turn(user, "long", blobs)
    store.record_turn(user, "short", [chat("next turn")])
    first = claim(store, user, max_tokens=count_tokens(render_blob(blobs[0])))
    assert first.turn_ids == ["long"] and len(first.blobs) == 1
    status = store.status(user)
    assert (status.users[0].pending_turns, status.users[0].processing) == (2, 1)
    assert status.pending_turns == 2
    store.fail_flush(first, "LLM timed out", utcnow() + timedelta(seconds=60))
    status = store.status(user)
    assert (status.users[0].pending_turns, status.users[0].failed) == (2, 1)
    assert (status.pending_turns, status.failed) == (2, 1)


def test_parked_rows_need_retry_failed_and_discard_removes_them(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    receipt, _ = store.record_turn(user, "t1", [chat("first")])
    store.fail_flush(claim(store, user), "permanent", None)
    again = store.claim(user, BlobType.chat, "o", lease_seconds=30, max_tokens=9999, force=True)
    assert again is None
    assert store.retry_failed(user) == 1
    store.fail_flush(claim(store, user), "again", None)
    assert store.status(user).users[0].failed == 1
    assert store.discard_failed(user) == 1
    assert store.status(user).users[0].pending_turns == 0
    with pytest.raises(NotFoundError):
        store.get_blob(user, receipt.blob_ids[0])


def test_oversized_blob_is_parked_not_dropped(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "big", [chat("word " * 300)])
    store.record_turn(user, "small", [chat("hi")])
    got = claim(store, user, max_tokens=100)
    assert got.turn_ids == ["small"]
    status = store.status(user).users[0]
    assert status.failed == 1 and "max_process_tokens" in (status.last_error or "")


def test_due_users_reasons(db: DbTarget) -> None:
    store = open_store(db)
    a, b = uuid.uuid4(), uuid.uuid4()
    store.record_turn(a, "t", [chat("a " * 50)])
    store.record_turn(b, "t", [chat("b")])
    tokens_a = store.idle_tokens(a, BlobType.chat)
    due = {d.user_id: d.reason for d in store.due_users(threshold=tokens_a - 1, idle_seconds=None)}
    assert due == {a: "threshold"}
    # Strictly over: equal to the threshold is not due.
    assert store.due_users(threshold=tokens_a, idle_seconds=None) == []
    time.sleep(0.2)
    due = {d.user_id: d.reason for d in store.due_users(threshold=10**6, idle_seconds=0.1)}
    assert due == {a: "idle", b: "idle"}
    assert {d.user_id for d in store.due_users(threshold=10**6, idle_seconds=None, drain=True)} == {
        a,
        b,
    }


def test_due_users_come_oldest_waiting_first_past_the_limit(db: DbTarget) -> None:
    # A backlog longer than the list: the users waiting longest come first, so none is
    # passed over pass after pass (the grouping's own order preferred the same users).
    store = open_store(db)
    users = [uuid.uuid4() for _ in range(30)]
    for i, user in enumerate(users):
        store.record_turn(user, f"t{i}", [chat(f"turn {i}")])
    store.record_turn(users[0], "later", [chat("a newer turn does not move it back")])
    due = store.due_users(threshold=0, idle_seconds=None, limit=12)
    assert [d.user_id for d in due] == users[:12]


def test_delete_user_cascades_everything(db: DbTarget) -> None:
    store = open_store(db)
    user, keep = uuid.uuid4(), uuid.uuid4()
    for u in (user, keep):
        store.record_turn(u, "t1", [chat("x")])
        store.commit_flush(
            claim(store, u, f"o-{u}"),
            FlushPlan(event=EventData(event_tip="- e"), gists=[("- e", None)]),
        )
        store.record_turn(u, "t2", [chat("still buffered")])
        store.add_profile(u, "Gus", "basic_info", "name")
    assert store.delete_user(user)
    assert not store.delete_user(user)
    with store.engine.connect() as conn:
        for table in (t.blobs, t.buffer, t.profiles, t.events, t.gists, t.turns, t.flushes):
            left = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user)
            ).scalar_one()
            assert left == 0, table.name
            kept = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.user_id == keep)
            ).scalar_one()
            assert kept > 0, table.name
    # A replay after forgetting records the turn again (the ledger went with the user).
    assert not store.record_turn(user, "t1", [chat("x")])[0].duplicate


def test_export_is_json_ready_and_complete(db: DbTarget) -> None:
    store = open_store(db)
    user = uuid.uuid4()
    store.record_turn(user, "t1", [chat("x")])
    store.commit_flush(
        claim(store, user), FlushPlan(event=EventData(event_tip="- e"), gists=[("- e", None)])
    )
    store.record_turn(user, "t2", [chat("buffered")])
    store.insert_blob(user, DocBlob(content="a document"))
    store.add_profile(user, "Gus", "basic_info", "name")
    data = json.loads(json.dumps(store.export_user(user)))
    assert data["profiles"][0]["content"] == "Gus"
    assert data["events"][0]["event_data"]["event_tip"] == "- e"
    assert data["gists"][0]["content"] == "- e"
    statuses = {b["turn_id"]: b["status"] for b in data["blobs"]}
    assert statuses == {"t2": "idle", None: None}
    assert data["flushes"][0]["turn_ids"] == ["t1"]


def test_profile_crud_is_scoped_by_user(db: DbTarget) -> None:
    store = open_store(db)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    pid = store.add_profile(alice, "Alice", "basic_info", "name")
    with pytest.raises(NotFoundError):
        store.update_profile(bob, pid, "hacked", None, None)
    with pytest.raises(NotFoundError):
        store.delete_profile(bob, pid)
    store.update_profile(alice, pid, "Alicia", None, "nickname")
    (row,) = store.list_profiles(alice)
    assert (row.content, row.sub_topic) == ("Alicia", "nickname")
    assert store.list_profiles(bob) == []


def test_newer_schema_version_is_refused(db: DbTarget) -> None:
    store = open_store(db)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t.schema_version).values(version=t.SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(ConfigurationError, match="newer than this memobase-integrations"):
        open_store(db)


def test_profile_config_round_trip(db: DbTarget) -> None:
    store = open_store(db)
    assert store.get_profile_config() is None
    store.set_profile_config("language: zh\n")
    assert open_store(db).get_profile_config() == "language: zh\n"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url at all", "is not a database URL"),
        # a file name: echoed as given, with the URL that was probably meant
        ("memobase.db", r"'memobase\.db' is not .* use 'sqlite:///memobase\.db'"),
        ("/data/m.db", r"use 'sqlite:////data/m\.db' \(four slashes"),
        ("mysql://u:secretpw@localhost/db", "supports SQLite and PostgreSQL"),
        ("sqlite:////nonexistent-dir-memobase/x/y.db", "Cannot open the database"),
        ("postgresql+psycopg://u:secretpw@127.0.0.1:1/db", "Cannot open the database"),
    ],
)
def test_bad_database_urls_raise_configuration_errors(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        Store(url)
    assert "secretpw" not in str(info.value)
