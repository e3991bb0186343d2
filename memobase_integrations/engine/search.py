"""Lexical ranking and rank fusion for event and gist search (pure: no I/O).

Why search is ranked here and not by the database: one scorer serves three ways of finding
the candidates (SQLite FTS5, PostgreSQL ``tsvector``, and a bounded scan where neither is
available), so the same memory ranks the same on every store. The databases only find the
rows that share a term with the query, fast; this module scores them.

**Analysis** (:func:`analyze`, the same at index and at query time): Unicode NFKC, case
folding, accents stripped from non-CJK words, English words stemmed with the Snowball
English stemmer ("hiking", "hikes" and "hike" are one term), and Chinese/Japanese text cut
into overlapping character pairs. Neither FTS5's ``unicode61`` tokenizer nor PostgreSQL's
parsers segment Chinese (a run of Han characters is one "word"), so "徒步" would never match
"我喜欢在多洛米蒂徒步"; pairs make it match, at the cost of some false pairs across word
boundaries that the ranking discounts. A text keeps every term, pairs and single characters
alike; a query drops common English words (:data:`STOPWORDS`) and common Chinese single
characters, unless nothing else is left, and uses pairs for runs of two or more characters.

The analysis does not depend on the profile config's language: memos of a ``zh`` project
still carry English names and places ("Dolomites"), the language can be changed after rows
are indexed, and the English stemmer leaves non-English words alone. The stemmer is the
pure-Python one on purpose: ``snowballstemmer.stemmer()`` switches to PyStemmer when that is
installed, and two processes sharing a store must produce identical terms. Changing the
analysis changes the stored terms, so it bumps the store's schema version (re-indexing).

**Scoring**: Okapi BM25 (``k1=1.2``, ``b=0.75``) with the document frequencies and lengths of
the user's own items in the searched time window, never the whole store: one user's memory
does not shift another's ranking. :func:`relative` turns scores into a ``similarity`` in
(0, 1]: the score's share of the best match's score, so ``similarity_threshold`` means "at
least this share of the best match". Unlike a cosine it cannot say that even the best match
is poor; any item sharing a term with the query can come first.

**Fusion** (:func:`fuse`): with embeddings on, the lexical and the vector ranking are merged
by reciprocal rank fusion (Cormack et al., 2009) with ``k = 60``, the value of that paper and
the usual default, not tuned here. An item's fused ``similarity`` is its RRF score over the
best possible (first in every list), so 1.0 means first in both.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from snowballstemmer.english_stemmer import EnglishStemmer

from ..models import EventData

__all__ = [
    "FORMAT_WORDS",
    "MAX_QUERY_TERMS",
    "RRF_K",
    "STOPWORDS",
    "Doc",
    "Scored",
    "analyze",
    "bm25",
    "event_text",
    "fuse",
    "query_terms",
    "relative",
]

#: Reciprocal rank fusion constant (Cormack, Clarke and Buettcher, SIGIR 2009).
RRF_K: Final = 60
#: BM25 parameters (the common defaults; not tuned to any data set).
BM25_K1: Final = 1.2
BM25_B: Final = 0.75
#: Distinct terms kept from a query: a context query is the last three messages, which can
#: be a pasted page; the first terms are kept.
MAX_QUERY_TERMS: Final = 64
#: Longer "words" (hashes, base64, URLs without separators) are not indexed.
MAX_TERM_CHARS: Final = 40

_STOPWORD_TEXT: Final = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t m d ll ve re don doesn didn won isn aren wasn anything something
    please tell know let
"""
#: Common English words dropped from queries (not from indexed texts, so a query made only
#: of them still finds something). Contractions split at the apostrophe ("don't": "don", "t").
STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())
#: Chinese characters too common to search on their own.
_CJK_STOP: Final = frozenset("的了是在我你他她它们这那和与也都就吗呢吧啊么个有")
#: Never searched for: every Memobase memo line starts with "User" ("用户" in ``zh``) and
#: carries a "[mention DATE]", so these would match every item of the user.
FORMAT_WORDS: Final = frozenset({"user", "mention", "用户"})

# Han (with extensions and compatibility ideographs), Hiragana and Katakana: scripts written
# without spaces between words.
_CJK_CHARS: Final = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_RUN: Final = re.compile(f"[{_CJK_CHARS}]+")
_WORD: Final = re.compile(r"[^\W_]+")
_ASCII_WORD: Final = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class Doc:
    """A candidate item: its id, its analysed terms (with repeats) and when it was made."""

    id: uuid.UUID
    terms: Sequence[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Scored:
    """An item id with its score (BM25, a share of the best, or fused) and time."""

    id: uuid.UUID
    score: float
    created_at: datetime


def event_text(event: EventData) -> str:
    """The text an event is searched (and embedded) by: Memobase's embedding layout, the
    memo, then ``- topic::sub_topic: content`` lines, then ``- tag: value`` lines."""
    parts = [event.event_tip or ""]
    if event.profile_delta:
        parts.append(
            "\n".join(
                f"- {d.attributes.get('topic')}::{d.attributes.get('sub_topic')}: {d.content}"
                for d in event.profile_delta
            )
        )
    if event.event_tags:
        parts.append("\n".join(f"- {t.tag}: {t.value}" for t in event.event_tags))
    return "\n".join(p for p in parts if p)


_local = threading.local()


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    # A Snowball stemmer keeps its working state on the instance: one per thread.
    stemmer: EnglishStemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = EnglishStemmer()
    stemmed: str = stemmer.stemWord(word)
    return stemmed


def _fold(word: str) -> str:
    """Accents off a non-CJK word ("café" -> "cafe"), as users rarely type them."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    )


def _runs(text: str) -> Iterable[tuple[bool, str]]:
    """``(is_cjk, run)`` for each word or CJK run of the normalised text, in order."""
    spaced = _CJK_RUN.sub(lambda m: f" {m.group()} ", text)
    for match in _WORD.finditer(spaced):
        run = match.group()
        yield _CJK_RUN.fullmatch(run) is not None, run


def _word_term(word: str) -> str | None:
    word = _fold(word)
    if not word or len(word) > MAX_TERM_CHARS:
        return None
    return _stem(word) if _ASCII_WORD.fullmatch(word) else word


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def analyze(text: str) -> list[str]:
    """The terms a text is indexed by, in order and with repeats (see the module doc).

    Each term is made of letters and digits only, so the databases' own tokenizers keep it
    whole when the terms are stored space-separated.
    """
    terms: list[str] = []
    for cjk, run in _runs(_normalise(text)):
        if cjk:
            terms.extend(run)
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            term = _word_term(run)
            if term:
                terms.append(term)
    return terms


def query_terms(text: str) -> list[str]:
    """The distinct terms to search for, in order of first appearance (at most
    :data:`MAX_QUERY_TERMS`): :data:`FORMAT_WORDS` dropped, stopwords too unless nothing else
    is left; CJK runs as character pairs (a single character stands for itself)."""
    kept: dict[str, None] = {}
    stop: dict[str, None] = {}
    for cjk, run in _runs(_normalise(text)):
        if cjk:
            if len(run) == 1:
                (stop if run in _CJK_STOP else kept).setdefault(run)
            else:
                for i in range(len(run) - 1):
                    pair = run[i : i + 2]
                    if pair not in FORMAT_WORDS:
                        kept.setdefault(pair)
            continue
        term = _word_term(run)
        if term and term not in FORMAT_WORDS:
            (stop if _fold(run) in STOPWORDS else kept).setdefault(term)
    chosen = kept or stop
    return list(chosen)[:MAX_QUERY_TERMS]


def bm25(
    terms: Sequence[str],
    docs: Sequence[Doc],
    *,
    n_docs: int,
    avg_len: float,
    k1: float = BM25_K1,
    b: float = BM25_B,
) -> list[Scored]:
    """Okapi BM25 of ``docs`` for the query ``terms``, best first; docs without any query
    term are left out.

    ``n_docs`` and ``avg_len`` describe the collection searched (the user's items in the
    window); document frequencies are counted over ``docs``, which must hold every item of
    that collection containing a query term (or the newest of them, when bounded).
    Ties: newer first, then by id, so the order is the same on every run and store.
    """
    wanted = set(terms)
    if not wanted or not docs:
        return []
    counts: list[tuple[Doc, dict[str, int]]] = []
    df: dict[str, int] = {}
    for doc in docs:
        found = wanted.intersection(doc.terms)
        if not found:
            continue
        counts.append((doc, {t: doc.terms.count(t) for t in found}))
        for t in found:
            df[t] = df.get(t, 0) + 1
    n = max(n_docs, len(docs))
    avg = avg_len if avg_len > 0 else 1.0
    idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    scored: list[Scored] = []
    for doc, tf in counts:
        norm = k1 * (1.0 - b + b * len(doc.terms) / avg)
        score = sum(idf[t] * f * (k1 + 1.0) / (f + norm) for t, f in tf.items())
        scored.append(Scored(doc.id, score, doc.created_at))
    return _sorted(scored)


def relative(scored: Sequence[Scored], threshold: float) -> list[Scored]:
    """Scores as shares of the best one (1.0 = the best match), keeping those strictly above
    ``threshold`` (as Memobase keeps cosine similarities above it)."""
    if not scored:
        return []
    best = max(s.score for s in scored)
    if best <= 0:
        return []
    shares = (Scored(s.id, s.score / best, s.created_at) for s in scored)
    return [s for s in shares if s.score > threshold]


def fuse(rankings: Sequence[Sequence[Scored]], k: int = RRF_K) -> list[Scored]:
    """Reciprocal rank fusion of best-first rankings: ``sum(1 / (k + rank))`` over the lists
    an item is in, divided by the best possible sum, so 1.0 = first in every list."""
    if not rankings:
        return []
    total: dict[uuid.UUID, float] = {}
    when: dict[uuid.UUID, datetime] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            total[item.id] = total.get(item.id, 0.0) + 1.0 / (k + rank)
            when[item.id] = item.created_at
    best = len(rankings) / (k + 1)
    return _sorted([Scored(i, s / best, when[i]) for i, s in total.items()])


def _order(item: Scored) -> tuple[float, float, str]:
    return (-item.score, -item.created_at.timestamp(), str(item.id))


def _sorted(items: list[Scored]) -> list[Scored]:
    return sorted(items, key=_order)
