"""Hybrid search against lexical and vector search alone, on a labelled query set.

The set (``data/search_relevance.json``) is one user's memory of 30 events (32 gists) and 25
queries with the gists that answer them, written by hand before any method ran on them.
The vectors are the stand-in LLM's embeddings (hashed bag of words: no meaning, so
paraphrases such as "family in Portugal" for Lisbon and Porto are lost to every method).
Ranking metrics use ``similarity_threshold=0.0`` for every method (every positive match is
ranked), no value tuned to the set; the default threshold (0.2) is reported beside them.

Measured (SQLite and PostgreSQL give the same rankings):

=================  ======  ========  =========  ======  ========  =========
gists               MRR@10  recall@3  recall@10  MRR@10  recall@3  recall@10
(events alike)      threshold 0.0                threshold 0.2 (default)
=================  ======  ========  =========  ======  ========  =========
lexical (BM25)      0.600   0.560     0.560      0.600   0.560     0.560
vector (cosine)     0.520   0.480     0.480      0.360   0.333     0.333
hybrid (RRF k=60)   0.600   0.560     0.560      0.600   0.560     0.560
=================  ======  ========  =========  ======  ========  =========

Events: the same at threshold 0.0; vector MRR 0.320 at 0.2. Hybrid ties lexical: the
stand-in's vectors are word hashes, so they find nothing the words miss (their one hit
lexical lacks is wrong), while fusion never pushed a relevant item down. Gains over words
need embeddings with meaning; what this asserts is that fusion does not lose to either list
on the aggregate (MRR@10, threshold 0.0), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from emb_support import MANUAL, BackendFactory
from search_support import Labelled, mrr, recall_at, seed_event

from memobase_integrations.backends.embedded import EmbeddedBackend, _rank
from memobase_integrations.engine.store import utcnow
from memobase_integrations.testing import StandInLLM

Ranker = Callable[[str, float], list[str]]


def _rankers(make_backend: BackendFactory) -> tuple[dict[str, Ranker], dict[str, Ranker], Labelled]:
    labelled = Labelled.load()
    llm = StandInLLM()
    hybrid = make_backend(
        llm=llm.settings(enable_embeddings=True), policy=MANUAL, start_worker=False
    )
    lexical = make_backend(llm=llm.settings(), policy=MANUAL, start_worker=False)
    user = uuid.uuid4()
    gist_label: dict[str, str] = {}
    event_label: dict[uuid.UUID, str] = {}
    for event, gists in labelled.events:
        event_id = seed_event(hybrid, user, [text for _, text in gists])
        event_label[event_id] = event
        gist_label.update({text: label for label, text in gists})

    def vector_ids(query: str, threshold: float, kind: str) -> list[uuid.UUID]:
        since = utcnow() - timedelta(days=180)
        store = hybrid.store
        rows = (
            store.gist_embeddings(user, since)
            if kind == "gist"
            else store.event_embeddings(user, since)
        )
        ranked = _rank(hybrid.llm.embed([query])[0], rows)
        return [row.id for sim, row in ranked if sim > threshold][:10]

    def gists(backend: EmbeddedBackend) -> Ranker:
        return lambda q, th: [
            gist_label[g.gist_data.content]
            for g in backend.search_gists(user, q, topk=10, similarity_threshold=th)
        ]

    def events(backend: EmbeddedBackend) -> Ranker:
        return lambda q, th: [
            event_label[e.id]
            for e in backend.search_events(user, q, topk=10, similarity_threshold=th)
        ]

    stored = hybrid.store.list_gists(user, since=None, limit=None)
    content = {g.id: g.gist_data.content for g in stored}
    gist_rankers: dict[str, Ranker] = {
        "lexical": gists(lexical),
        "vector": lambda q, th: [gist_label[content[i]] for i in vector_ids(q, th, "gist")],
        "hybrid": gists(hybrid),
    }
    event_rankers: dict[str, Ranker] = {
        "lexical": events(lexical),
        "vector": lambda q, th: [event_label[i] for i in vector_ids(q, th, "event")],
        "hybrid": events(hybrid),
    }
    assert len(event_label) == 30 and len(gist_label) == 32
    return gist_rankers, event_rankers, labelled


def _metrics(
    rankers: dict[str, Ranker], queries: list[tuple[str, set[str]]], threshold: float
) -> dict[str, tuple[float, float, float]]:
    relevant = [wanted for _, wanted in queries]
    out = {}
    for name, ranker in rankers.items():
        ranked = [ranker(q, threshold) for q, _ in queries]
        out[name] = (
            mrr(ranked, relevant),
            recall_at(ranked, relevant, 3),
            recall_at(ranked, relevant, 10),
        )
    return out


def test_hybrid_ranks_at_least_as_well_as_either_alone(make_backend: BackendFactory) -> None:
    gist_rankers, event_rankers, labelled = _rankers(make_backend)
    gist_queries = labelled.queries
    event_of = {g: e for e, gists in labelled.events for g, _ in gists}
    event_queries = [(q, {event_of[g] for g in wanted}) for q, wanted in gist_queries]
    report = []
    for what, rankers, queries in (
        ("gists", gist_rankers, gist_queries),
        ("events", event_rankers, event_queries),
    ):
        for threshold in (0.0, 0.2):
            for name, (m, r3, r10) in _metrics(rankers, queries, threshold).items():
                report.append(
                    f"{what:6} th={threshold:.1f} {name:8} MRR@10 {m:.3f}  "
                    f"recall@3 {r3:.3f}  recall@10 {r10:.3f}"
                )
    print("\n".join(report))
    scores = _metrics(gist_rankers, gist_queries, 0.0)
    hybrid, lexical, vector = scores["hybrid"][0], scores["lexical"][0], scores["vector"][0]
    assert hybrid >= max(lexical, vector), (hybrid, lexical, vector)
    event_scores = _metrics(event_rankers, event_queries, 0.0)
    assert event_scores["hybrid"][0] >= max(
        event_scores["lexical"][0], event_scores["vector"][0]
    ), event_scores
