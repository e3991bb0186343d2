"""The read side of the embedded backend: profiles, the context, events and searches.

Reads never wait for the flush worker and never fail because the LLM is down: the LLM
profile filter (``profile(chats=...)``, ``context(..., full_profile_and_only_search_event=
False)``) keeps the unfiltered list when the call fails, and a context whose gist search
fails falls back to searching by words, then to the newest gists.

* Event and gist search works with embeddings off: a full-text index (SQLite FTS5 or
  PostgreSQL ``tsvector``, see :mod:`..engine.fts`) finds the user's items sharing a word
  with the query, and BM25 ranks them (:mod:`..engine.search`); ``similarity`` is then the
  score's share of the best match's. With embeddings on, that ranking and the cosine ranking
  of the stored vectors (an exact scan in Python over the user's rows in the window - fine
  for the thousands of gists one user accumulates) are fused by reciprocal rank fusion:
  each list keeps what passes ``similarity_threshold`` (its own kind of score), and
  ``similarity`` is the fused score (1.0 for an item first in both, 0.5 for one first in
  one list only), which must pass the threshold too. Items without a vector
  (written while embeddings were off) are still found by their words.
* The context's events for ``chats`` come from the same search over the last 3 messages.
  With embeddings off the matches come first, then the newest of the other gists: a word
  match is far stricter than a vector's similarity, and a chat that shares no word with the
  memory should not lose the recent events it had before.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..engine.config import ResolvedConfig
from ..engine.context import pack_context, truncate_profiles
from ..engine.fts import Kind
from ..engine.llm import LLMClient
from ..engine.parsing import parse_pick_ids
from ..engine.prompts import Step, pick_profiles_prompt
from ..engine.search import Scored, bm25, fuse, query_terms, relative
from ..engine.store import Store, StoredEmbedded, clock
from ..errors import MemobaseError, ValidationError
from ..messages import Message
from ..models import EventGist, Profile, UserEvent
from ..tokens import count_tokens
from ..values import ContextOptions, ProfileOptions
from .project_config import ConfigCache

__all__ = ["EmbeddedReader"]

logger = logging.getLogger(__name__)

#: Gist candidates considered for a context (the server's limit).
_CONTEXT_GISTS = 60
#: Messages of the recent chat that make the gist-search query (the server uses 3).
_QUERY_MESSAGES = 3


class EmbeddedReader:
    """What :class:`~.embedded.EmbeddedBackend`'s read calls do, on the store and the LLM
    client it was given (the backend delegates each read, sync and async, to this)."""

    def __init__(self, store: Store, llm: LLMClient, config: ConfigCache) -> None:
        self.store = store
        self.llm = llm
        self.config = config

    def _profiles(self, user_id: uuid.UUID) -> list[Profile]:
        return [p.to_model() for p in self.store.list_profiles(user_id)]

    def _pick_profiles(
        self,
        profiles: list[Profile],
        chats: Sequence[Message],
        only_topics: Sequence[str] | None,
        cfg: ResolvedConfig,
    ) -> list[Profile]:
        """The optional LLM profile filter; any failure keeps the unfiltered list (as the
        server does): a read must not fail because the LLM is down."""
        if not profiles or not chats or not self.llm.configured:
            return profiles
        system, user = pick_profiles_prompt(
            [m.to_wire() for m in chats], profiles, cfg, only_topics=only_topics
        )
        try:
            raw = self.llm.complete(Step.pick_related_profiles, system, user)
        except MemobaseError as exc:
            logger.warning("memobase: profile filter failed, using all profiles: %s", exc)
            return profiles
        picked = [profiles[i] for i in parse_pick_ids(raw) if 0 <= i < len(profiles)]
        return picked or profiles

    def profile(self, user_id: uuid.UUID, options: ProfileOptions) -> list[Profile]:
        """Profile rows, newest first, filtered like ``GET /users/profile`` (with ``chats``,
        the LLM picks the related ones first)."""
        profiles = self._profiles(user_id)
        if options.chats:
            profiles = self._pick_profiles(
                profiles, options.chats, options.only_topics, self.config.resolved()
            )
        return truncate_profiles(profiles, options, topk=options.topk)

    def context(self, user_id: uuid.UUID, options: ContextOptions) -> str:
        """The memory block for a prompt (``GET /users/context``).

        No LLM call unless asked: with ``chats``, the gists are searched by the last 3
        messages (one embedding call when embeddings are on; by words alone when they are off
        or the call fails); the LLM profile filter runs only with
        ``full_profile_and_only_search_event=False``, as on the server.
        """
        if options.chats:
            cfg = self.config.resolved()
            profiles = self._profiles(user_id)
            if not options.full_profile_and_only_search_event:
                profiles = self._pick_profiles(profiles, options.chats, options.only_topics, cfg)
            gists = self._context_gists(user_id, options)
        else:
            # The common read: config version, profiles and newest gists in one transaction.
            rows = self.store.context_rows(
                user_id,
                since=clock.utcnow() - timedelta(days=options.time_range_in_days),
                limit=_CONTEXT_GISTS,
                config_stamp=self.config.stamp(),
            )
            cfg = self.config.resolve(rows.config)
            profiles = [p.to_model() for p in rows.profiles]
            gists = rows.gists
        return pack_context(profiles, gists, options, cfg.language)

    def _context_gists(self, user_id: uuid.UUID, options: ContextOptions) -> list[EventGist]:
        """The gist candidates of a context, in the order to pack them: without ``chats`` the
        newest; with ``chats`` the search over the last messages (see the module doc)."""
        since = clock.utcnow() - timedelta(days=options.time_range_in_days)
        if not options.chats:
            return self.store.list_gists(user_id, since=since, limit=_CONTEXT_GISTS)
        query = "\n".join(m.content for m in options.chats[-_QUERY_MESSAGES:])
        threshold = options.event_similarity_threshold
        if self.llm.embeddings_enabled:
            try:
                ranked = self._ranked("gist", user_id, query, threshold, since, vectors=True)
                return self._gists(user_id, ranked[:_CONTEXT_GISTS])
            except MemobaseError as exc:
                logger.warning("memobase: gist search failed, searching by words only: %s", exc)
        try:
            ranked = self._ranked("gist", user_id, query, threshold, since, vectors=False)
            found = self._gists(user_id, ranked[:_CONTEXT_GISTS])
        except MemobaseError as exc:
            logger.warning("memobase: gist search failed, using the newest gists: %s", exc)
            found = []
        if len(found) < _CONTEXT_GISTS:
            chosen = {g.id for g in found}
            newest = self.store.list_gists(user_id, since=since, limit=_CONTEXT_GISTS)
            found += [g for g in newest if g.id not in chosen][: _CONTEXT_GISTS - len(found)]
        return found

    def _ranked(
        self,
        kind: Kind,
        user_id: uuid.UUID,
        query: str,
        threshold: float,
        since: datetime,
        *,
        vectors: bool,
    ) -> list[Scored]:
        """The user's events or gists since ``since`` for ``query``, best first: BM25 (as a
        share of the best match) alone, or fused with the cosine ranking when ``vectors``.

        Every item returned has its score above ``threshold``. Fused, an item must also be
        above it in the ranking it comes from (cosine, as on a Memobase server, or share of
        the best word match): a word match that is not among the best never passes a high
        threshold on the strength of its rank alone."""
        terms = query_terms(query)
        corpus = self.store.lexical_corpus(user_id, kind, terms, since)
        lexical = relative(
            bm25(terms, corpus.docs, n_docs=corpus.n_docs, avg_len=corpus.avg_len), threshold
        )
        if not vectors:
            return lexical
        stored = (
            self.store.gist_embeddings(user_id, since)
            if kind == "gist"
            else self.store.event_embeddings(user_id, since)
        )
        cosine = [
            Scored(row.id, sim, row.created_at)
            for sim, row in _rank(self._query_vector(query), stored)
            if sim > threshold
        ]
        return [item for item in fuse([lexical, cosine]) if item.score > threshold]

    def _gists(self, user_id: uuid.UUID, ranked: Sequence[Scored]) -> list[EventGist]:
        found = {g.id: g for g in self.store.gists_by_ids(user_id, [r.id for r in ranked])}
        return [
            found[r.id].model_copy(update={"similarity": r.score}) for r in ranked if r.id in found
        ]

    def _query_vector(self, query: str) -> list[float]:
        return self.llm.embed([query])[0]

    def events(
        self, user_id: uuid.UUID, topk: int = 10, max_token_size: int | None = None
    ) -> list[UserEvent]:
        """The newest ``topk`` events, newest first; with ``max_token_size``, cut at the first
        event whose ``event_tip`` no longer fits the running token count."""
        events = self.store.list_events(user_id, limit=topk)
        if max_token_size is None:
            return events
        kept: list[UserEvent] = []
        used = 0
        for e in events:
            used += count_tokens(e.event_data.event_tip or "")
            if used > max_token_size:
                break
            kept.append(e)
        return kept

    def search_events(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        """The user's events of the last ``time_range_in_days`` days most relevant to
        ``query``, best first, at most ``topk``; ``similarity`` says how relevant (see the
        module doc: a share of the best match with embeddings off, the fused score with
        them on). No LLM call; one embedding call when embeddings are on."""
        since = clock.utcnow() - timedelta(days=time_range_in_days)
        vectors = self.llm.embeddings_enabled
        ranked = self._ranked(
            "event", user_id, query, similarity_threshold, since, vectors=vectors
        )[:topk]
        found = {e.id: e for e in self.store.events_by_ids(user_id, [r.id for r in ranked])}
        return [
            found[r.id].model_copy(update={"similarity": r.score}) for r in ranked if r.id in found
        ]

    def search_gists(
        self,
        user_id: uuid.UUID,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[EventGist]:
        """Like :meth:`search_events`, over the gists (one line of an event's memo each)."""
        since = clock.utcnow() - timedelta(days=time_range_in_days)
        vectors = self.llm.embeddings_enabled
        ranked = self._ranked("gist", user_id, query, similarity_threshold, since, vectors=vectors)
        return self._gists(user_id, ranked[:topk])

    def search_events_by_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str] | None = None,
        tag_values: dict[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """The newest events carrying all ``tags`` (any value) and exactly ``tag_values``;
        with neither, simply the newest ``topk``. No LLM, no embeddings."""
        if topk < 1:
            raise ValidationError(f"topk must be >= 1, got {topk}.")
        return self.store.events_with_tags(user_id, list(tags or ()), dict(tag_values or {}), topk)


def _rank(
    query: Sequence[float], rows: Sequence[StoredEmbedded]
) -> list[tuple[float, StoredEmbedded]]:
    """Rows by cosine similarity to ``query``, best first (ties: newest first)."""
    qn = math.sqrt(sum(x * x for x in query)) or 1.0
    scored: list[tuple[float, StoredEmbedded]] = []
    for row in rows:
        vec = row.embedding
        if not vec or len(vec) != len(query):
            continue
        vn = math.sqrt(sum(x * x for x in vec)) or 1.0
        sim = sum(a * b for a, b in zip(query, vec, strict=True)) / (qn * vn)
        scored.append((sim, row))
    scored.sort(key=lambda sr: (sr[0], sr[1].created_at), reverse=True)
    return scored
