"""The ``BaseChatMessageHistory`` contract and ``RunnableWithMessageHistory`` usage, with
langchain-core's ``InMemoryChatMessageHistory`` as the control.

Written for this project from langchain-core's documented contract (``messages``,
``add_messages`` as one round-trip, ``add_user_message``/``add_ai_message``, ``clear`` and the
native async twins ``aget_messages``/``aadd_messages``/``aclear``) and from the two ways
``RunnableWithMessageHistory`` drives a history: messages in / messages out (it reads the
history twice per turn and stores ``input[len(history):]``) and a dict with
``input_messages_key``/``history_messages_key``. Every check runs on both classes and must
give the same transcript.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.chat_history import BaseChatMessageHistory, InMemoryChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_to_dict
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from support.spy import SpyBackend

from langchain_memobase import MemobaseChatMessageHistory
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

Factory = Callable[[str], BaseChatMessageHistory]
KINDS = ("control", "memobase")


@pytest.fixture
def backend() -> SpyBackend:
    return SpyBackend()


@pytest.fixture
def factory(
    request: pytest.FixtureRequest, backend: SpyBackend, tmp_path: Path
) -> Iterator[Factory]:
    memobase = Memobase(backend)
    controls: dict[str, InMemoryChatMessageHistory] = {}
    # the documented setup: one engine shared by every history, tables created once
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'chat.db'}")
    MemobaseChatMessageHistory(memobase, "setup", "setup", engine=engine).create_tables()

    def build(session: str) -> BaseChatMessageHistory:
        if request.param == "control":
            with warnings.catch_warnings():  # deprecated upstream; the control all the same
                warnings.simplefilter("ignore")
                return controls.setdefault(session, InMemoryChatMessageHistory())
        return MemobaseChatMessageHistory(memobase, "alice", session, engine=engine)

    yield build
    engine.dispose()
    memobase.close(0)


def _texts(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


@pytest.mark.parametrize("factory", KINDS, indirect=True)
async def test_contract(factory: Factory) -> None:
    history = factory("s1")
    assert history.messages == []
    history.add_user_message("Hi, I'm Alice.")
    history.add_ai_message("Hello Alice.")
    history.add_messages([HumanMessage("I like tea."), AIMessage("Noted.")])
    await history.aadd_messages([HumanMessage("Bye."), AIMessage("Bye!")])
    expected = [
        ("human", "Hi, I'm Alice."),
        ("ai", "Hello Alice."),
        ("human", "I like tea."),
        ("ai", "Noted."),
        ("human", "Bye."),
        ("ai", "Bye!"),
    ]
    assert _texts(history.messages) == expected
    assert _texts(await history.aget_messages()) == expected
    assert "Hi, I'm Alice." in str(history)
    assert factory("s1").messages == history.messages  # same session, same transcript
    assert factory("other").messages == []
    history.clear()
    assert history.messages == []
    await history.aadd_messages([HumanMessage("again")])
    await history.aclear()
    assert await history.aget_messages() == []


def _echo(messages: list[BaseMessage]) -> AIMessage:
    return AIMessage(f"echo {messages[-1].content} ({len(messages)} seen)")


@pytest.mark.parametrize("factory", KINDS, indirect=True)
async def test_rwmh_messages_in_messages_out(factory: Factory, backend: SpyBackend) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = RunnableWithMessageHistory(RunnableLambda(_echo), factory)
    config: Any = {"configurable": {"session_id": "s1"}}
    chain.invoke([HumanMessage("one")], config)
    await chain.ainvoke([HumanMessage("two")], config)

    assert _texts(factory("s1").messages) == [
        ("human", "one"),
        ("ai", "echo one (1 seen)"),
        ("human", "two"),
        ("ai", "echo two (3 seen)"),
    ]
    if backend.turns:  # the Memobase history records each turn once
        assert [t.lines for t in backend.turns_of(to_user_uuid("alice"))] == [
            [("user", "one"), ("assistant", "echo one (1 seen)")],
            [("user", "two"), ("assistant", "echo two (3 seen)")],
        ]


@pytest.mark.parametrize("factory", KINDS, indirect=True)
def test_rwmh_dict_input_with_history_key(factory: Factory) -> None:
    def answer(data: dict[str, Any]) -> AIMessage:
        return _echo([*data["history"], HumanMessage(data["question"])])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain = RunnableWithMessageHistory(
            RunnableLambda(answer),
            factory,
            input_messages_key="question",
            history_messages_key="history",
        )
    config: Any = {"configurable": {"session_id": "s2"}}
    chain.invoke({"question": "one"}, config)
    chain.invoke({"question": "two"}, config)
    assert messages_to_dict(factory("s2").messages)[-1]["data"]["content"] == "echo two (3 seen)"
    assert len(factory("s2").messages) == 4
