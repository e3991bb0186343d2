"""Helpers of the search tests: events written through the store's flush commit, a clock.

``seed_event`` writes an event with the given memo lines as its gists through the production
write path (a recorded turn, claimed and committed with :meth:`Store.commit_flush`), with the
vectors the configured embedding endpoint gives (the stand-in's), exactly as a flush would.
It exists because the stand-in LLM only writes the memos its rules know; the ranking tests
need memos of their own.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine.plan import Claim, FlushPlan
from memobase_integrations.engine.search import event_text
from memobase_integrations.engine.store import clock as store_clock
from memobase_integrations.engine.store import utcnow
from memobase_integrations.models import BlobType, ChatBlob, EventData

RELEVANCE_FILE = Path(__file__).parent / "data" / "search_relevance.json"


def seed_event(backend: EmbeddedBackend, user: uuid.UUID, lines: Sequence[str]) -> uuid.UUID:
    """Commit one event whose memo is ``lines`` (each line a gist); returns its id."""
    store = backend.store
    turn = f"seed-{uuid.uuid4().hex}"
    blob = ChatBlob(messages=[{"role": "user", "content": "(seeded)"}])
    store.record_turn(user, turn, [blob])
    claim = store.claim(
        user, BlobType.chat, f"seed:{turn}", lease_seconds=60, max_tokens=10**6, force=True
    )
    assert isinstance(claim, Claim)
    event = EventData(event_tip="\n".join(lines), profile_delta=[])
    plan = FlushPlan(event=event, gists=[(line, None) for line in lines])
    if backend.llm.embeddings_enabled:
        vectors = backend.llm.embed([event_text(event), *lines])
        plan.event_embedding = vectors[0]
        plan.gists = list(zip(lines, vectors[1:], strict=True))
    response = store.commit_flush(claim, plan)
    assert response.event_id is not None
    return response.event_id


@contextmanager
def clock_at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> Iterator[None]:
    """Writes made meanwhile by the store are dated ``when`` (as if made then)."""
    with monkeypatch.context() as patch:
        patch.setattr(store_clock, "utcnow", lambda: when)
        yield


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


# -- the labelled query set ---------------------------------------------------------------------


@dataclass(frozen=True)
class Labelled:
    """The relevance file loaded: gist texts by label, queries with their relevant labels."""

    events: list[tuple[str, list[tuple[str, str]]]]  # (event label, [(gist label, text)])
    queries: list[tuple[str, set[str]]]

    @classmethod
    def load(cls) -> Labelled:
        raw: dict[str, Any] = json.loads(RELEVANCE_FILE.read_text(encoding="utf-8"))
        events = [(e["id"], [(g["id"], g["text"]) for g in e["gists"]]) for e in raw["events"]]
        queries = [(q["query"], set(q["relevant_gists"])) for q in raw["queries"]]
        return cls(events, queries)


def mrr(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant item in the top ``k`` (0 when none)."""
    total = 0.0
    for ranking, wanted in zip(ranked, relevant, strict=True):
        for rank, label in enumerate(ranking[:k], start=1):
            if label in wanted:
                total += 1.0 / rank
                break
    return total / len(ranked)


def recall_at(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean share of the relevant items found in the top ``k``."""
    shares = [
        len(set(ranking[:k]) & wanted) / len(wanted)
        for ranking, wanted in zip(ranked, relevant, strict=True)
    ]
    return math.fsum(shares) / len(shares)
