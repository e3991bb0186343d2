"""The same memory gives the same prompt: fresh stores fed the same turns give byte-identical
contexts, on SQLite, on PostgreSQL, and across the two.

Each store gets the same conversation, flushed at the same points, on the offline stand-in
LLM. Several events have many gists each (one per line of the event's memo) and one flush
updates a profile row, so every tie a read can meet is there: gists of one event (one
``created_at``), profile rows written by one flush (one ``updated_at``), and a similarity
search (with embeddings on) over gists of one event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from embedded.emb_support import MANUAL, DbTarget, pg_schema, tapped_settings, turn

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.values import ContextOptions

CONVERSATION = [
    [
        turn(
            "Hi, my name is Gus. I work as a software engineer at Acme. I live in Porto. "
            "I love jazz music and I enjoy hiking.",
            "Nice to meet you!",
            "2025/01/14",
        ),
        turn("My wife is named Ana and I have a dog named Rex.", "Lovely.", "2025/01/14"),
    ],
    [
        turn(
            "I'm learning Spanish. I love sushi. I like sci-fi movies. I'm into tennis.",
            "Great!",
            "2025/01/20",
        )
    ],
    [
        turn(
            "Big news: I got a new job as a chef at Luigi's. I moved to Lisbon last week.",
            "Congrats!",
            "2025/02/01",
        )
    ],
]
QUESTION = [Message("user", "What music and food do I like, and where do I work?")]


def context_of(target: DbTarget, *, embeddings: bool) -> tuple[str, str]:
    """(plain context, context for a question) after feeding :data:`CONVERSATION`."""
    overrides: dict[str, Any] = (
        {"enable_embeddings": True, "embedding_dim": 64} if embeddings else {}
    )
    settings, _, _ = tapped_settings(**overrides)
    backend = EmbeddedBackend(llm=settings, policy=MANUAL, **target.backend_kwargs())
    try:
        user = uuid.UUID(int=7)  # the same user everywhere: nothing may depend on random ids
        for n, batch in enumerate(CONVERSATION):
            for i, messages in enumerate(batch):
                backend.record(user, turn_to_blobs(messages), f"turn-{n}-{i}")
            backend.flush(user)
        plain = backend.context(user, ContextOptions())
        asked = backend.context(
            user,
            ContextOptions(chats=QUESTION, event_similarity_threshold=0.0),
        )
        return plain, asked
    finally:
        backend.close(timeout=10)


def sqlite_targets(tmp_path: Path, n: int) -> list[DbTarget]:
    return [DbTarget("sqlite", f"sqlite:///{tmp_path / f'store-{i}.db'}") for i in range(n)]


@pytest.fixture
def pg_targets(postgres_url: str) -> Iterator[list[DbTarget]]:
    with ExitStack() as stack:
        yield [stack.enter_context(pg_schema(postgres_url)) for _ in range(3)]


@pytest.mark.parametrize("embeddings", [False, True], ids=["recency", "similarity"])
def test_three_sqlite_stores_give_byte_identical_contexts(tmp_path: Path, embeddings: bool) -> None:
    contexts = [context_of(t, embeddings=embeddings) for t in sqlite_targets(tmp_path, 3)]
    assert contexts[0] == contexts[1] == contexts[2]
    plain, asked = contexts[0]
    assert plain.count("\n- User ") >= 8  # the events' gists are really in there
    assert "chef" in plain and "Gus" in plain and asked.count("- User ") >= 1


@pytest.mark.parametrize("embeddings", [False, True], ids=["recency", "similarity"])
def test_three_postgres_stores_give_byte_identical_contexts(
    pg_targets: list[DbTarget], embeddings: bool
) -> None:
    contexts = [context_of(t, embeddings=embeddings) for t in pg_targets]
    assert contexts[0] == contexts[1] == contexts[2]
    assert contexts[0][0].count("\n- User ") >= 8


def test_sqlite_and_postgres_give_the_same_context(
    tmp_path: Path, pg_targets: list[DbTarget]
) -> None:
    (sqlite,) = sqlite_targets(tmp_path, 1)
    assert context_of(sqlite, embeddings=True) == context_of(pg_targets[0], embeddings=True)
