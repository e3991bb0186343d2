"""Event and gist search with embeddings off (and on), SQLite and PostgreSQL.

Memory is written by the real pipeline on the stand-in LLM (or, where a test needs memos
the stand-in's rules cannot write, through the store's flush commit: ``seed_event``).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from embedded.emb_support import MANUAL, BackendFactory, DbTarget, turn
from embedded.search_support import clock_at, days_ago, seed_event

from memobase_integrations import Memobase
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import fts
from memobase_integrations.engine import schema as t
from memobase_integrations.engine.store import Store
from memobase_integrations.errors import ConfigurationError
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import EventData
from memobase_integrations.testing import StandInLLM
from memobase_integrations.values import ContextOptions

#: Said in this order, one flush each: the Dolomites are the oldest memory, so finding them
#: first is the search's doing, not recency's. "hiking near Berlin" shares one word.
CONVERSATION = [
    "I love hiking in the Dolomites.",
    "I love hiking near Berlin.",
    "I work as a baker.",
    "I'm going to Japan next week.",
    "I love jazz music.",
]


def _memobase(db: DbTarget, **llm: Any) -> Memobase:
    return Memobase.embedded(
        llm=StandInLLM().settings(**llm), policy=MANUAL, start_worker=False, **db.backend_kwargs()
    )


def _remember(mb: Memobase, user_id: str, sentences: list[str] = CONVERSATION) -> None:
    user = mb.user(user_id)
    for sentence in sentences:
        user.record(turn(sentence, "Nice!"))
        user.flush()


def test_dolomites_are_found_by_every_search_surface_without_embeddings(db: DbTarget) -> None:
    lc_tools = pytest.importorskip("langchain_memobase.tools")
    lc_retrievers = pytest.importorskip("langchain_memobase.retrievers")
    li_tools = pytest.importorskip("llamaindex_memobase.tools")
    mb = _memobase(db)
    try:
        assert not mb.backend.llm.embeddings_enabled  # type: ignore[attr-defined]
        _remember(mb, "alice")
        alice = mb.user("alice")
        newest_tip = alice.events(topk=1)[0].event_data.event_tip or ""
        assert "jazz" in newest_tip  # recency alone would answer jazz first

        events = alice.search_events("Dolomites")
        assert len(events) == 1 and "Dolomites" in (events[0].event_data.event_tip or "")
        assert events[0].similarity == 1.0
        # Ranking among several: both hiking events match, the Dolomites one best.
        ranked = alice.search_events("hiking in the Dolomites")
        tips = [e.event_data.event_tip or "" for e in ranked]
        assert len(tips) == 2 and "Dolomites" in tips[0] and "Berlin" in tips[1]
        assert ranked[0].similarity == 1.0 and 0 < (ranked[1].similarity or 0) < 1
        (gist,) = alice.search_gists("Dolomites")
        assert "hiking in the Dolomites" in gist.gist_data.content
        assert [e.id for e in asyncio.run(alice.asearch_events("Dolomites"))] == [events[0].id]
        assert [g.id for g in asyncio.run(alice.asearch_gists("Dolomites"))] == [gist.id]

        retriever = lc_retrievers.MemobaseEventRetriever(memobase=mb, user_id="alice")
        docs = retriever.invoke("hiking in the Dolomites")
        assert "Dolomites" in docs[0].page_content and docs[0].metadata["similarity"] == 1.0
        search_tool = next(
            x for x in lc_tools.memobase_tools(mb, "alice") if x.name == "search_memory"
        )
        answer = search_tool.invoke({"query": "hiking in the Dolomites"})
        assert "Dolomites" in answer.splitlines()[0] and "jazz" not in answer

        li_search = next(
            x for x in li_tools.memobase_tools(alice) if x.metadata.name == "search_memory"
        )
        li_answer = li_search.call(query="hiking in the Dolomites").content
        assert "Dolomites" in li_answer.splitlines()[0] and "jazz" not in li_answer
    finally:
        mb.close()


def test_a_question_about_nothing_remembered_finds_nothing(db: DbTarget) -> None:
    """Words every memo has ("User", "[mention ...]") are not searched for: otherwise any
    question naming the user matched every event, the first at similarity 1.0."""
    mb = _memobase(db)
    try:
        _remember(mb, "bob", CONVERSATION[2:])
        bob = mb.user("bob")
        assert bob.search_events("What pets does the user have?") == []
        assert bob.search_gists("user mention") == []
        assert bob.search_events("Where does the user work?")[0].event_data.event_tip
    finally:
        mb.close()


def test_chinese_is_searched_by_character_pairs(db: DbTarget) -> None:
    mb = Memobase.embedded(
        llm=StandInLLM().settings(),
        policy=MANUAL,
        start_worker=False,
        profile_config="language: zh\n",
        **db.backend_kwargs(),
    )
    try:
        _remember(mb, "li", ["我喜欢在多洛米蒂徒步。", "我在北京工作。", "我喜欢看书。"])
        li = mb.user("li")
        (hit,) = li.search_events("徒步")  # two characters inside a longer run
        assert "多洛米蒂徒步" in (hit.event_data.event_tip or "")
        (gist,) = li.search_gists("北京")
        assert "北京" in gist.gist_data.content
        # "用户" (user) starts every memo line: not a reason to match.
        assert li.search_gists("用户") == []
    finally:
        mb.close()


def _index_counts(backend: Any) -> tuple[int, int]:
    """Rows of ``mb_search``, and of the FTS5 table on SQLite (else the same count)."""
    with backend.store.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(t.search_docs)).scalar_one()
        if backend.store.dialect != "sqlite":
            tsv = conn.execute(sa.text("SELECT count(*) FROM mb_search WHERE tsv IS NOT NULL"))
            return rows, tsv.scalar_one()
        fts_rows = conn.exec_driver_sql(f"SELECT count(*) FROM {fts.FTS_TABLE}").scalar_one()
        return rows, fts_rows


def test_the_index_follows_every_write(make_backend: BackendFactory) -> None:
    backend = make_backend(llm=StandInLLM().settings(), policy=MANUAL)
    assert backend.store.search_mode == (
        "fts5" if backend.store.dialect == "sqlite" else "tsvector"
    )
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for user, text in ((alice, "I love hiking in the Dolomites."), (bob, "I love the Dolomites.")):
        backend.record(user, turn_to_blobs(turn(text)), "t1")
        backend.flush(user)
    assert _index_counts(backend) == (4, 4)  # each flush: one event and its one gist
    (event,) = backend.search_events(alice, "Dolomites")
    backend.delete_event(alice, event.id)  # its gist goes by cascade, and both index rows
    assert backend.search_events(alice, "Dolomites") == []
    assert backend.search_gists(alice, "Dolomites") == []
    assert _index_counts(backend) == (2, 2)
    assert len(backend.search_gists(bob, "Dolomites")) == 1  # bob's stays
    backend.delete_user(bob)
    assert _index_counts(backend) == (0, 0)
    assert backend.search_gists(bob, "Dolomites") == []


def test_time_range_topk_and_threshold(
    make_backend: BackendFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(llm=StandInLLM().settings(), policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    with clock_at(monkeypatch, days_ago(200)):
        seed_event(backend, user, ["- User skied in the Dolomites. [mention 2025/05/01] // event"])
    with clock_at(monkeypatch, days_ago(20)):
        seed_event(backend, user, ["- User hiked the Dolomites high route. // event"])
    seed_event(backend, user, ["- User plans a trip to the Dolomites or the Alps. // schedule"])
    seed_event(backend, user, ["- User likes the Alps. // info"])

    assert len(backend.search_events(user, "Dolomites", time_range_in_days=180)) == 2
    assert len(backend.search_events(user, "Dolomites", time_range_in_days=365)) == 3
    assert len(backend.search_events(user, "Dolomites", time_range_in_days=10)) == 1
    assert backend.search_events(user, "Dolomites", time_range_in_days=0) == []

    ranked = backend.search_gists(user, "Dolomites Alps", similarity_threshold=0.0)
    scores = [g.similarity or 0.0 for g in ranked]
    assert len(ranked) == 3 and scores == sorted(scores, reverse=True)
    assert scores[0] == 1.0 and all(0 < s <= 1 for s in scores)
    assert "Dolomites or the Alps" in ranked[0].gist_data.content  # both words
    assert len(backend.search_gists(user, "Dolomites Alps", topk=2)) == 2
    # The threshold is a share of the best match's score: above it, strictly.
    middle = scores[1]
    kept = backend.search_gists(user, "Dolomites Alps", similarity_threshold=middle)
    assert [g.id for g in kept] == [ranked[0].id]
    assert backend.search_gists(user, "Dolomites Alps", similarity_threshold=1.0) == []


def test_the_context_ranks_events_by_the_chat_without_embeddings(db: DbTarget) -> None:
    mb = _memobase(db)
    try:
        _remember(mb, "carol")
        carol = mb.user("carol")

        def past_events(**options: Any) -> list[str]:
            text = mb.backend.context(carol.id, ContextOptions(**options))
            return [x for x in text.split("## Past Events:\n", 1)[1].splitlines() if x.strip()]

        newest_first = past_events()
        assert "jazz" in newest_first[0] and "Dolomites" in newest_first[-2]
        chats = [Message.of("user", "Any tips for the Dolomites?")]
        searched = past_events(chats=chats)
        assert "Dolomites" in searched[0]
        # Matches first, then the newest of the rest: nothing is lost to the search.
        assert sorted(searched) == sorted(newest_first)
        assert searched[1:] == [x for x in newest_first if "Dolomites" not in x]
        unrelated = [Message.of("user", "Good morning!")]
        assert past_events(chats=unrelated) == newest_first
    finally:
        mb.close()


def test_with_embeddings_on_items_without_vectors_are_found_by_words(db: DbTarget) -> None:
    """Events written while embeddings were off have no vector; the hybrid search still
    finds them (the lexical list), and ranks an item found by both lists first."""
    before = _memobase(db)
    try:
        _remember(before, "dan", CONVERSATION[:1])
    finally:
        before.close()
    after = _memobase(db, enable_embeddings=True)
    try:
        _remember(after, "dan", ["I love the Dolomites in winter."])
        dan = after.user("dan")
        hits = dan.search_gists("Dolomites", similarity_threshold=0.0)
        assert len(hits) == 2
        assert "winter" in hits[0].gist_data.content  # first in both lists
        assert hits[0].similarity == 1.0 and 0 < (hits[1].similarity or 0) < 1
        assert "hiking" in hits[1].gist_data.content  # words only, no vector
    finally:
        after.close()


def test_search_works_where_sqlite_has_no_fts5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite only (PostgreSQL always has ``tsvector``)."""
    url = f"sqlite:///{tmp_path / 'memobase.db'}"
    user = uuid.uuid4()

    def open_backend() -> EmbeddedBackend:
        return EmbeddedBackend(url, llm=StandInLLM().settings(), policy=MANUAL)

    with monkeypatch.context() as patch:
        patch.setattr(fts, "sqlite_has_fts5", lambda conn: False)
        # A store made without FTS5: events are still indexed (mb_search), searches scan.
        scan = open_backend()
        try:
            assert scan.store.search_mode == "scan"
            for i, text in enumerate(CONVERSATION):
                scan.record(user, turn_to_blobs(turn(text)), f"t{i}")
                scan.flush(user)
            scanned = [e.id for e in scan.search_events(user, "hiking in the Dolomites")]
            scanned_gists = [g.id for g in scan.search_gists(user, "hiking Berlin")]
        finally:
            scan.close()
        assert len(scanned) == 2 and len(scanned_gists) == 2
    # Opened where FTS5 exists: the index is built from mb_search, with the same answers.
    indexed = open_backend()
    try:
        assert indexed.store.search_mode == "fts5"
        assert [e.id for e in indexed.search_events(user, "hiking in the Dolomites")] == scanned
        assert [g.id for g in indexed.search_gists(user, "hiking Berlin")] == scanned_gists
    finally:
        indexed.close()
    # A process without FTS5 must not write to a store indexed with it (triggers would fail).
    with monkeypatch.context() as patch:
        patch.setattr(fts, "sqlite_has_fts5", lambda conn: False)
        with pytest.raises(ConfigurationError, match="FTS5"):
            open_backend()


def test_a_query_without_words_finds_nothing(make_backend: BackendFactory) -> None:
    backend = make_backend(llm=StandInLLM().settings(), policy=MANUAL)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I love the Dolomites.")), "t")
    backend.flush(user)
    assert backend.search_events(user, "?!") == []
    assert backend.search_gists(user, "   ") == []


def test_sqlite_reads_the_fts5_match_first(tmp_path: Path) -> None:
    """The plan, not a timing: the FTS5 match runs once, as a subquery, and the user's rows
    are looked up by it. Joined instead, SQLite walked the user's rows and evaluated the
    match for each (200 ms instead of 1 ms for 2,000 gists)."""
    backend = EmbeddedBackend(
        f"sqlite:///{tmp_path / 'memobase.db'}", llm=StandInLLM().settings(), policy=MANUAL
    )
    try:
        user = uuid.uuid4()
        backend.record(user, turn_to_blobs(turn("I love the Dolomites.")), "t")
        backend.flush(user)
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "MATCH" in statement:
                seen.append((statement, params))

        sa.event.listen(backend.store.engine, "before_cursor_execute", capture)
        assert len(backend.search_gists(user, "Dolomites")) == 1
        sa.event.remove(backend.store.engine, "before_cursor_execute", capture)
        ((statement, params),) = seen
        with backend.store.engine.connect() as conn:
            plan = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)]
        assert any(step.startswith("LIST SUBQUERY") for step in plan), plan
        # Not a lookup into the FTS5 table per row of the user (rowid equality, "=M").
        assert not any("VIRTUAL TABLE INDEX 0:=" in step for step in plan), plan
    finally:
        backend.close()


def test_reindexing_an_event_replaces_its_words(make_backend: BackendFactory) -> None:
    """``fts.reindex_event`` is what a change of an event's data calls in its transaction;
    the event's gists keep their own words (as on the server)."""
    backend = make_backend(llm=StandInLLM().settings(), policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    event_id = seed_event(backend, user, ["- User hiked in the Dolomites. // event"])
    edited = EventData(event_tip="- User skied in Norway. // event", profile_delta=[])
    with backend.store._write() as conn:
        fts.reindex_event(conn, user, event_id, edited)
    assert backend.search_events(user, "Dolomites") == []
    assert [e.id for e in backend.search_events(user, "Norway")] == [event_id]
    assert len(backend.search_gists(user, "Dolomites")) == 1
    assert _index_counts(backend) == (2, 2)


@pytest.mark.parametrize("embeddings", [False, True])
def test_every_result_is_above_the_threshold(db: DbTarget, embeddings: bool) -> None:
    """The threshold bounds the ``similarity`` reported, whatever the mode. With embeddings
    on, a word match alone (fused 0.5 when first) never passes a high threshold: the
    stand-in's cosine for "Dolomites" against its gist is about 0.59, so at 0.9 a Memobase
    server finds nothing, and so does this search. At 0.2 the vectors also find "hiking near
    Berlin" (cosine about 0.22: hiking is outdoors, as the Dolomites are), which words miss;
    it comes second, below the gist both rankings found."""
    mb = _memobase(db, enable_embeddings=embeddings)
    try:
        _remember(mb, "erin")
        erin = mb.user("erin")
        for query in ("Dolomites", "hiking in the Dolomites", "jazz music Japan"):
            for threshold in (0.0, 0.2, 0.45, 0.6, 0.9):
                for search in (erin.search_events, erin.search_gists):
                    found = search(query, similarity_threshold=threshold)
                    assert all((x.similarity or 0) > threshold for x in found), (query, found)
        strict = erin.search_gists("Dolomites", similarity_threshold=0.9)
        # Without embeddings the best word match is 1.0 by definition.
        assert len(strict) == (0 if embeddings else 1)
        found = erin.search_gists("Dolomites", similarity_threshold=0.2)
        assert "Dolomites" in found[0].gist_data.content and found[0].similarity == 1.0
        assert [g.gist_data.content.split(".")[0] for g in found[1:]] == (
            ["- User loves hiking near Berlin"] if embeddings else []
        )
        assert all((g.similarity or 0) < 0.5 for g in found[1:])
    finally:
        mb.close()


def test_a_read_only_open_uses_the_fts5_index_without_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open that does not write (the CLI's) finds the index by reading the catalog; it
    does not probe FTS5 by creating a table, which ``query_only`` refuses."""
    url = f"sqlite:///{tmp_path / 'memobase.db'}"
    writer = EmbeddedBackend(url, llm=StandInLLM().settings(), policy=MANUAL)
    user = uuid.uuid4()
    try:
        writer.record(user, turn_to_blobs(turn("I love the Dolomites.")), "t")
        writer.flush(user)
    finally:
        writer.close()
    monkeypatch.setattr(Store, "_open_schema", lambda self: None)
    reader = Store(url)
    sa.event.listen(
        reader.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA query_only=ON")
    )
    try:
        assert reader.search_mode == "fts5"
        corpus = reader.lexical_corpus(user, "gist", ["dolomit"], since=days_ago(1))
        assert len(corpus.docs) == 1 and corpus.n_docs == 1
    finally:
        reader.close()


def test_an_updated_event_is_searched_by_its_new_text(db: DbTarget) -> None:
    """``update_event`` changes what the event is found by, in the same transaction; its
    gists keep their text (as on a Memobase server)."""
    mb = _memobase(db)
    try:
        _remember(mb, "fay", CONVERSATION[:1])
        fay = mb.user("fay")
        (event,) = fay.search_events("Dolomites")
        # The event's text is its memo and its profile changes (both named the Dolomites).
        edit = {"event_tip": "- User skied in Norway. // event", "profile_delta": []}
        fay.update_event(event.id, edit)
        assert fay.search_events("Dolomites") == []
        assert [e.id for e in fay.search_events("Norway")] == [event.id]
        assert len(fay.search_gists("Dolomites")) == 1
        asyncio.run(fay.aupdate_event(event.id, {"event_tip": "- User sailed to Corsica."}))
        assert [e.id for e in fay.search_events("Corsica")] == [event.id]
        assert fay.search_events("Norway") == []
    finally:
        mb.close()
