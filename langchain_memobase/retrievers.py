"""Retrievers over one user's Memobase memory: profile rows and timeline events.

The user is bound when the retriever is built; nothing in a query can change whose memory is
read. Both honour ``k`` in the constructor and per call (``retriever.invoke(q, k=3)``), and
both have native async paths through the facade's async methods.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from memobase_integrations import (
    ConfigurationError,
    Memobase,
    MemoryTools,
    Profile,
    UserEvent,
    UserMemory,
)

__all__ = ["MemobaseEventRetriever", "MemobaseProfileRetriever", "event_text"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def _checked_k(k: int | None, default: int) -> int:
    value = default if k is None else k
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"k must be a positive integer, got {value!r}.")
    return value


#: An event as text (kept under its old name; the core's ``event_summary``).
event_text = MemoryTools.event_summary


class _UserBoundRetriever(BaseRetriever):
    memobase: Memobase
    """The facade (embedded or remote)."""
    user_id: str | uuid.UUID
    """Whose memory is read; fixed for the retriever's lifetime."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Outside pydantic validation so InvalidUserIdError escapes as itself, not wrapped
        # in a pydantic ValidationError.
        self.memobase.user(self.user_id)

    @property
    def _user(self) -> UserMemory:
        return self.memobase.user(self.user_id)


class MemobaseProfileRetriever(_UserBoundRetriever):
    """The user's profile rows (``topic::sub_topic: memo``) as Documents.

    A profile is small (tens of rows), so every row is read and ranked by how many words it
    shares with the query; ties keep Memobase's order. The ``k`` best are returned even when
    they share no word with the query: the profile is context, not a keyword search.
    """

    k: int = Field(default=10, ge=1)
    prefer_topics: list[str] | None = None
    only_topics: list[str] | None = None

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.prefer_topics:
            options["prefer_topics"] = list(self.prefer_topics)
        if self.only_topics:
            options["only_topics"] = list(self.only_topics)
        return options

    def _documents(self, profiles: list[Profile], query: str, k: int) -> list[Document]:
        wanted = _words(query)
        scored = [
            (len(wanted & _words(f"{p.topic} {p.sub_topic} {p.content}")), index, p)
            for index, p in enumerate(profiles)
        ]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [
            Document(
                page_content=p.describe(),
                id=str(p.id),
                metadata={
                    "source": "memobase_profile",
                    "user_id": str(self._user.id),
                    "profile_id": str(p.id),
                    "topic": p.topic,
                    "sub_topic": p.sub_topic,
                    "score": score,
                    "created_at": p.created_at.isoformat() if p.created_at else None,
                    "updated_at": p.updated_at.isoformat() if p.updated_at else None,
                },
            )
            for score, _, p in scored[:k]
        ]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        **_: Any,
    ) -> list[Document]:
        top = _checked_k(k, self.k)
        return self._documents(self._user.profile(**self._options()), query, top)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        **_: Any,
    ) -> list[Document]:
        top = _checked_k(k, self.k)
        return self._documents(await self._user.aprofile(**self._options()), query, top)


class MemobaseEventRetriever(_UserBoundRetriever):
    """Events from the user's timeline most similar to the query (Memobase event search).

    The embedded engine searches by words without embeddings and adds meaning with them; a
    Memobase server searches only with its embeddings on.
    """

    k: int = Field(default=10, ge=1)
    similarity_threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    time_range_in_days: int = Field(default=180, ge=1)

    def _documents(self, events: list[UserEvent]) -> list[Document]:
        docs = []
        for event in events:
            text = event_text(event)
            if not text:
                continue
            tags = {t.tag: t.value for t in (event.event_data.event_tags or [])}
            docs.append(
                Document(
                    page_content=text,
                    id=str(event.id),
                    metadata={
                        "source": "memobase_event",
                        "user_id": str(self._user.id),
                        "event_id": str(event.id),
                        "created_at": event.created_at.isoformat() if event.created_at else None,
                        "similarity": event.similarity,
                        "tags": tags,
                    },
                )
            )
        return docs

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        **_: Any,
    ) -> list[Document]:
        top = _checked_k(k, self.k)
        events = self._user.search_events(
            query,
            top,
            similarity_threshold=self.similarity_threshold,
            time_range_in_days=self.time_range_in_days,
        )
        return self._documents(events)[:top]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        **_: Any,
    ) -> list[Document]:
        top = _checked_k(k, self.k)
        events = await self._user.asearch_events(
            query,
            top,
            similarity_threshold=self.similarity_threshold,
            time_range_in_days=self.time_range_in_days,
        )
        return self._documents(events)[:top]
