"""MemobaseChatMessageHistory: contract tests (sync and async twins) and RWMH usage."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core._api import LangChainDeprecationWarning
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import ConfigurableFieldSpec, RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from support.spy import SpyBackend

from langchain_memobase import MemobaseChatMessageHistory
from memobase_integrations import errors as mb_errors
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chat.db'}"


def make(
    memobase: Memobase, db_url: str, user: str = "alice", session: str = "s1", **kw: Any
) -> MemobaseChatMessageHistory:
    history = MemobaseChatMessageHistory(memobase, user, session, database_url=db_url, **kw)
    history.create_tables()  # idempotent; never implicit
    return history


def batch(tag: str) -> list[BaseMessage]:
    return [
        HumanMessage(f"{tag} question"),
        AIMessage(f"{tag} answer"),
        HumanMessage(f"{tag} follow-up"),
    ]


def rich_transcript() -> list[BaseMessage]:
    """Everything a transcript may carry that hand-rolled serialisation tends to lose."""
    return [
        SystemMessage("You are helpful.", id="sys-1"),
        HumanMessage(
            [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
            ],
            name="alice",
            id="h-1",
            additional_kwargs={"created_at": "2025-01-14T10:00:00Z"},
        ),
        AIMessage(
            "",
            id="a-1",
            tool_calls=[
                {
                    "name": "lookup",
                    "args": {"q": "png", "n": 2},
                    "id": "call-1",
                    "type": "tool_call",
                }
            ],
            usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14},
            response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
        ),
        ToolMessage(
            "a tiny image", tool_call_id="call-1", id="t-1", artifact={"k": [1]}, status="success"
        ),
        AIMessage(
            [
                {"type": "reasoning", "reasoning": "it is an image"},
                {"type": "text", "text": "It is a tiny PNG."},
            ],
            id="a-2",
            name="assistant-bot",
        ),
    ]


# -- contract, sync ------------------------------------------------------------------------
def test_contract_sync(memobase: Memobase, db_url: str) -> None:
    history = make(memobase, db_url)
    assert history.messages == []
    history.add_messages(batch("one"))
    assert [m.content for m in history.messages] == [m.content for m in batch("one")]
    history.add_messages(batch("two"))
    assert [m.content for m in history.messages] == [
        m.content for m in [*batch("one"), *batch("two")]
    ]
    history.clear()
    assert history.messages == []


async def test_contract_async(memobase: Memobase, db_url: str) -> None:
    history = make(memobase, db_url)
    assert await history.aget_messages() == []
    await history.aadd_messages(batch("one"))
    assert [m.content for m in await history.aget_messages()] == [m.content for m in batch("one")]
    await history.aadd_messages(batch("two"))
    assert len(await history.aget_messages()) == 6
    await history.aclear()
    assert await history.aget_messages() == []


def test_async_methods_are_native_not_the_executor_defaults() -> None:
    for name in ("aget_messages", "aadd_messages", "aclear"):
        assert getattr(MemobaseChatMessageHistory, name) is not getattr(
            BaseChatMessageHistory, name
        ), name


def test_lossless_round_trip_sync(memobase: Memobase, db_url: str) -> None:
    history = make(memobase, db_url)
    history.add_messages(rich_transcript())
    reread = make(memobase, db_url).messages  # a fresh instance reads from the table
    assert messages_to_dict(reread) == messages_to_dict(rich_transcript())
    ai = reread[2]
    assert isinstance(ai, AIMessage)
    assert ai.tool_calls[0]["args"] == {"q": "png", "n": 2}
    assert ai.usage_metadata == {"input_tokens": 11, "output_tokens": 3, "total_tokens": 14}


async def test_lossless_round_trip_async(memobase: Memobase, db_url: str) -> None:
    history = make(memobase, db_url)
    await history.aadd_messages(rich_transcript())
    reread = await make(memobase, db_url).aget_messages()
    assert messages_to_dict(reread) == messages_to_dict(rich_transcript())


def test_non_json_metadata_is_stringified_not_lost(memobase: Memobase, db_url: str) -> None:
    when = datetime(2025, 1, 14, 10, tzinfo=UTC)
    history = make(memobase, db_url)
    history.add_messages([HumanMessage("hi", additional_kwargs={"created_at": when})])
    assert history.messages[0].additional_kwargs == {"created_at": when.isoformat()}


# -- what reaches Memobase ------------------------------------------------------------------
def test_add_messages_records_one_turn_of_said_text(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url)
    history.add_messages(rich_transcript())

    assert fake_backend.count("record") == 1
    (turn,) = fake_backend.turns
    assert turn.user_id == to_user_uuid("alice")
    assert turn.lines == [("user", "What is this?"), ("assistant", "It is a tiny PNG.")]
    assert turn.blobs[0].messages[0].alias == "alice"
    assert turn.blobs[0].messages[0].created_at == "2025-01-14T10:00:00Z"


def test_same_messages_added_again_are_recorded_once(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url)
    with_ids = [HumanMessage("I love chess.", id="m1"), AIMessage("Nice!", id="m2")]
    history.add_messages(with_ids)
    history.add_messages(with_ids)
    assert len(history.messages) == 4  # the transcript is what was added
    assert len(fake_backend.turns) == 1  # Memobase sees the turn once


def test_an_edited_message_is_a_new_turn_and_unkeyed_repeats_are_kept(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url)
    history.add_messages([HumanMessage("I love chess.", id="m1"), AIMessage("Nice!", id="m2")])
    # same ids, the user's text edited: the core turn rule makes it a turn of its own
    history.add_messages([HumanMessage("I love go.", id="m1"), AIMessage("Nice!", id="m2")])
    # no ids: each add is what the user said this time, even word for word
    history.add_user_message("yes")
    history.add_user_message("yes")
    assert fake_backend.recorded(to_user_uuid("alice")) == [
        [("user", "I love chess."), ("assistant", "Nice!")],
        [("user", "I love go."), ("assistant", "Nice!")],
        [("user", "yes")],
        [("user", "yes")],
    ]
    (first, *_) = fake_backend.turns
    assert first.turn_id.startswith("langchain-history:")


def test_tool_only_batch_records_nothing(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url)
    history.add_messages([ToolMessage("result", tool_call_id="c")])
    assert fake_backend.count("record") == 0
    assert len(history.messages) == 1


def test_record_false_keeps_a_transcript_only(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url, record=False)
    history.add_messages(batch("x"))
    assert fake_backend.count("record") == 0 and len(history.messages) == 3


def test_messages_never_contain_the_profile_and_are_stable(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    history = make(memobase, db_url)
    history.add_messages(batch("one"))
    first = history.messages
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "PROFILE-FACT")
    second = history.messages
    assert messages_to_dict(first) == messages_to_dict(second)
    assert "PROFILE-FACT" not in repr(second)
    assert "basic_info::name: PROFILE-FACT" in history.get_context()


async def test_get_context_async_and_options(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "work", "title", "nurse")
    fake_backend.add_fact(to_user_uuid("alice"), "interest", "games", "chess")
    history = make(memobase, db_url)
    context = await history.aget_context(max_token_size=77, only_topics=["work"])
    assert "work::title: nurse" in context and "chess" not in context
    assert fake_backend.context_requests[-1][1].max_token_size == 77


def test_clear_keeps_the_memobase_memory(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    history = make(memobase, db_url)
    history.add_messages(batch("x"))
    history.clear()
    assert history.messages == []
    assert fake_backend.count("delete_user") == 0
    assert "basic_info::name: Alice" in history.get_context()


def test_users_and_sessions_are_separate(memobase: Memobase, db_url: str) -> None:
    alice_1 = make(memobase, db_url, "alice", "s1")
    alice_2 = make(memobase, db_url, "alice", "s2")
    bob_1 = make(memobase, db_url, "bob", "s1")
    alice_1.add_messages([HumanMessage("alice in s1")])
    alice_2.add_messages([HumanMessage("alice in s2")])
    bob_1.add_messages([HumanMessage("bob in s1")])
    bob_1.clear()
    assert [m.content for m in alice_1.messages] == ["alice in s1"]
    assert [m.content for m in alice_2.messages] == ["alice in s2"]
    assert bob_1.messages == []


def test_memobase_failure_fail_open_and_strict(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    fake_backend.fail["record"] = mb_errors.ServerError("errno 500")
    make(memobase, db_url, session="open").add_messages(batch("x"))  # logged, not raised
    strict = make(memobase, db_url, session="strict", strict=True)
    with pytest.raises(mb_errors.ServerError):
        strict.add_messages(batch("y"))
    assert len(strict.messages) == 3  # the transcript write happened before the record
    fake_backend.fail["context"] = mb_errors.ServerError("errno 500")
    assert make(memobase, db_url).get_context() == ""
    with pytest.raises(mb_errors.ServerError):
        strict.get_context()


def test_configuration_errors(memobase: Memobase, db_url: str, tmp_path: Path) -> None:
    remote = Memobase.remote("http://127.0.0.1:9", "key", outbox_path=tmp_path / "outbox.db")
    try:
        with pytest.raises(mb_errors.ConfigurationError, match="database_url="):
            MemobaseChatMessageHistory(remote, "alice", "s1")  # a server offers no SQL database
    finally:
        remote.close(0)
    with pytest.raises(mb_errors.ConfigurationError, match="session_id"):
        MemobaseChatMessageHistory(memobase, "alice", "", database_url=db_url)
    with pytest.raises(mb_errors.InvalidUserIdError):
        MemobaseChatMessageHistory(memobase, "", "s1", database_url=db_url)


def test_sql_errors_become_memobase_errors(memobase: Memobase, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'chat.db'}"
    history = MemobaseChatMessageHistory(memobase, "alice", "s1", database_url=url)
    with pytest.raises(mb_errors.MemobaseError, match="create the chat transcript table"):
        history.create_tables()
    with pytest.raises(mb_errors.MemobaseError, match="transcript table"):
        history.add_messages(batch("x"))


def test_tables_are_never_created_implicitly(memobase: Memobase, db_url: str) -> None:
    import sqlalchemy as sa

    from langchain_memobase.chat_message_histories import TranscriptTableMissingError

    engine = sa.create_engine(db_url)
    try:
        history = MemobaseChatMessageHistory(memobase, "alice", "s1", engine=engine)
        for attempt in (lambda: history.messages, lambda: history.add_messages(batch("x"))):
            with pytest.raises(TranscriptTableMissingError, match=r"create_tables\(\)"):
                attempt()
        assert not sa.inspect(engine).has_table("langchain_message_store")
        history.create_tables()
        history.create_tables()  # idempotent
        history.add_messages(batch("x"))
        assert len(history.messages) == 3
    finally:
        engine.dispose()


async def test_an_injected_engine_is_used_and_shared(memobase: Memobase, db_url: str) -> None:
    import sqlalchemy as sa

    from langchain_memobase.chat_message_histories import TranscriptTableMissingError

    engine = sa.create_engine(db_url)
    try:
        alice = MemobaseChatMessageHistory(memobase, "alice", "s1", engine=engine)
        bob = MemobaseChatMessageHistory(memobase, "bob", "s1", engine=engine)
        with pytest.raises(TranscriptTableMissingError):
            await bob.aget_messages()
        await alice.acreate_tables()  # one setup call serves every history on the engine
        await bob.aadd_messages(batch("b"))
        assert len(await bob.aget_messages()) == 3 and await alice.aget_messages() == []
        # the two histories used the app's engine: its pool holds their connections
        assert isinstance(engine.pool, sa.pool.QueuePool)  # a file database's default pool
        assert engine.pool.checkedin() >= 1
    finally:
        engine.dispose()


def test_database_url_histories_do_not_share_a_hidden_engine(
    memobase: Memobase, db_url: str
) -> None:
    one, two = make(memobase, db_url), make(memobase, db_url, session="s2")
    assert one._engine is not two._engine  # no module-level cache keeps engines alive


def test_subclass_construction_does_not_warn(memobase: Memobase, db_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(memobase, db_url).add_messages(batch("x"))


def test_in_memory_sqlite_is_shared_across_threads(memobase: Memobase) -> None:
    history = MemobaseChatMessageHistory(memobase, "alice", "mem", database_url="sqlite://")
    history.create_tables()
    history.add_messages(batch("x"))
    import asyncio

    assert len(asyncio.run(history.aget_messages())) == 3


# -- RunnableWithMessageHistory -------------------------------------------------------------
def _echo_model(prompt_value: Any) -> AIMessage:
    messages = prompt_value.to_messages()
    return AIMessage(f"echo: {messages[-1].content} (saw {len(messages)} messages)")


def _rwmh(memobase: Memobase, db_url: str) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    chain = prompt | RunnableLambda(_echo_model)

    def get_history(*, user_id: str, session_id: str) -> MemobaseChatMessageHistory:
        return make(memobase, db_url, user_id, session_id)

    # Deprecated since langchain-core 1.3.3 (it warns there); older cores do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangChainDeprecationWarning)
        return RunnableWithMessageHistory(
            chain,
            get_history,
            input_messages_key="question",
            history_messages_key="history",
            history_factory_config=[
                ConfigurableFieldSpec(id="user_id", annotation=str, is_shared=True),
                ConfigurableFieldSpec(id="session_id", annotation=str, is_shared=True),
            ],
        )


def _cfg(user: str, session: str) -> Any:
    return {"configurable": {"user_id": user, "session_id": session}}


def test_rwmh_with_user_and_session_ids(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    chain = _rwmh(memobase, db_url)
    first = chain.invoke({"question": "I am Alice"}, _cfg("alice", "shared"))
    second = chain.invoke({"question": "Who am I?"}, _cfg("alice", "shared"))
    chain.invoke({"question": "I am Bob"}, _cfg("bob", "shared"))

    assert first.content == "echo: I am Alice (saw 2 messages)"
    assert second.content == "echo: Who am I? (saw 4 messages)"  # history came back
    alice = MemobaseChatMessageHistory(memobase, "alice", "shared", database_url=db_url)
    bob = MemobaseChatMessageHistory(memobase, "bob", "shared", database_url=db_url)
    assert [m.content for m in alice.messages] == [
        "I am Alice",
        first.content,
        "Who am I?",
        second.content,
    ]
    assert bob.messages[0].content == "I am Bob"
    assert messages_to_dict(alice.messages) == messages_to_dict(alice.messages)
    assert [t.lines for t in fake_backend.turns_of(to_user_uuid("alice"))] == [
        [("user", "I am Alice"), ("assistant", str(first.content))],
        [("user", "Who am I?"), ("assistant", str(second.content))],
    ]
    assert len(fake_backend.turns_of(to_user_uuid("bob"))) == 1


async def test_rwmh_async_with_user_and_session_ids(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    chain = _rwmh(memobase, db_url)
    await chain.ainvoke({"question": "I am Alice"}, _cfg("alice", "s"))
    answer = await chain.ainvoke({"question": "again"}, _cfg("alice", "s"))
    await chain.ainvoke({"question": "I am Bob"}, _cfg("bob", "s"))

    assert answer.content == "echo: again (saw 4 messages)"
    alice = MemobaseChatMessageHistory(memobase, "alice", "s", database_url=db_url)
    assert len(await alice.aget_messages()) == 4
    assert len(fake_backend.turns_of(to_user_uuid("alice"))) == 2
    assert len(fake_backend.turns_of(to_user_uuid("bob"))) == 1
    assert fake_backend.sync_on_loop == []


def test_get_context_as_a_prompt_variable(
    memobase: Memobase, fake_backend: SpyBackend, db_url: str
) -> None:
    from langchain_core.runnables import RunnablePassthrough

    fake_backend.add_fact(to_user_uuid("alice"), "basic_info", "name", "Alice")
    history = make(memobase, db_url)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "What you know about the user:\n{memory}"), ("human", "{question}")]
    )
    chain = RunnablePassthrough.assign(memory=lambda _: history.get_context()) | prompt
    value = chain.invoke({"question": "hi"})
    system = value.to_messages()[0]
    assert "basic_info::name: Alice" in str(system.content)


# -- PostgreSQL (runs when MEMOBASE_TEST_POSTGRES_URL is set) -------------------------------
def test_contract_and_round_trip_on_postgresql(memobase: Memobase, postgres_url: str) -> None:
    import uuid

    table = f"lc_history_test_{uuid.uuid4().hex[:8]}"
    history = MemobaseChatMessageHistory(
        memobase, "alice", "pg-session", database_url=postgres_url, table_name=table
    )
    history.create_tables()
    try:
        assert history.messages == []
        history.add_messages(rich_transcript())
        assert messages_to_dict(history.messages) == messages_to_dict(rich_transcript())
        history.clear()
        assert history.messages == []
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


async def test_async_twins_on_postgresql(memobase: Memobase, postgres_url: str) -> None:
    import uuid

    session = f"pg-{uuid.uuid4().hex}"
    history = MemobaseChatMessageHistory(memobase, "bob", session, database_url=postgres_url)
    await history.acreate_tables()
    await history.aadd_messages(batch("one"))
    assert [m.content for m in await history.aget_messages()] == [m.content for m in batch("one")]
    await history.aclear()
    assert await history.aget_messages() == []
