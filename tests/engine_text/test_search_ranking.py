"""The pure parts of event search: analysis, BM25, relative scores, reciprocal rank fusion."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from memobase_integrations.engine.search import (
    MAX_QUERY_TERMS,
    RRF_K,
    Doc,
    Scored,
    analyze,
    bm25,
    event_text,
    fuse,
    query_terms,
    relative,
)
from memobase_integrations.models import EventData, EventTag, ProfileDelta

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def doc(text: str, minutes: int = 0) -> Doc:
    return Doc(uuid.uuid4(), analyze(text), T0 + timedelta(minutes=minutes))


# -- analysis ------------------------------------------------------------------------------------


def test_english_words_are_stemmed_folded_and_kept_whole() -> None:
    assert analyze("Hiking, hikes & HIKE!") == ["hike", "hike", "hike"]
    assert analyze("Café naïve ＡＢＣ") == ["cafe", "naiv", "abc"]  # accents off, NFKC
    assert analyze("2026/11/24 v2") == ["2026", "11", "24", "v2"]
    assert analyze("x" * 41 + " ok") == ["ok"]  # over-long "words" are not terms
    # Every term is letters and digits only: the databases' tokenizers keep it whole.
    assert all(term.isalnum() for term in analyze("e-mail a_b it's (x) 1.5 [mention]"))


def test_stemming_does_not_depend_on_pystemmer() -> None:
    """snowballstemmer.stemmer() would switch to PyStemmer when installed; two processes
    sharing a store must stem alike, so the pure-Python stemmer is used directly."""
    from snowballstemmer.english_stemmer import EnglishStemmer

    words = ["running", "generously", "dolomites", "relational", "happily"]
    assert [analyze(w)[0] for w in words] == [EnglishStemmer().stemWord(w) for w in words]


def test_chinese_runs_become_characters_and_pairs() -> None:
    terms = analyze("我喜欢徒步")
    assert terms[:5] == list("我喜欢徒步")
    assert terms[5:] == ["我喜", "喜欢", "欢徒", "徒步"]
    assert analyze("iPhone手机") == ["iphon", "手", "机", "手机"]  # scripts split apart
    assert query_terms("徒步旅行") == ["徒步", "步旅", "旅行"]  # pairs only
    assert query_terms("书") == ["书"]  # a single character stands for itself
    assert query_terms("的书") == ["的书"]


def test_query_terms_drop_stopwords_unless_nothing_else_is_left() -> None:
    assert query_terms("Where did I go hiking?") == ["go", "hike"]
    assert query_terms("what is it") == ["what", "is", "it"]
    assert query_terms("hiking hikes HIKE") == ["hike"]  # distinct
    many = " ".join(f"word{i}" for i in range(200))
    assert len(query_terms(many)) == MAX_QUERY_TERMS


def test_memo_format_words_are_never_searched_for() -> None:
    """Every memo line starts with "User" / "用户" and carries "[mention DATE]"."""
    assert query_terms("What pets does the user have?") == ["pet"]
    assert query_terms("users mentioned") == []
    assert query_terms("用户喜欢") == ["户喜", "喜欢"]


def test_event_text_is_memobase_embedding_layout() -> None:
    event = EventData(
        event_tip="- User loves jazz. // info",
        profile_delta=[
            ProfileDelta(content="jazz", attributes={"topic": "interest", "sub_topic": "music"})
        ],
        event_tags=[EventTag(tag="emotion", value="happy")],
    )
    assert event_text(event) == (
        "- User loves jazz. // info\n- interest::music: jazz\n- emotion: happy"
    )


# -- BM25 ----------------------------------------------------------------------------------------


def test_bm25_prefers_rare_terms_short_texts_and_more_terms() -> None:
    docs = [
        doc("User loves hiking in the Dolomites.", 0),
        doc("User loves hiking near Berlin.", 1),
        doc("User loves jazz.", 2),
        doc("User loves the Dolomites and hiking and long walks and many other things.", 3),
    ]
    terms = query_terms("hiking Dolomites")
    ranked = bm25(terms, docs, n_docs=4, avg_len=sum(len(d.terms) for d in docs) / 4)
    assert [r.id for r in ranked] == [docs[0].id, docs[3].id, docs[1].id]  # jazz: no term
    assert ranked[0].score > ranked[1].score > ranked[2].score > 0
    # A rare term outweighs a common one.
    (rare,) = bm25(["jazz"], docs, n_docs=4, avg_len=6)
    common = bm25(["love"], docs, n_docs=4, avg_len=6)
    assert rare.score > max(s.score for s in common)


def test_bm25_ties_go_newest_first_then_by_id() -> None:
    a, b = doc("User loves tea.", 0), doc("User loves tea.", 5)
    assert [r.id for r in bm25(["tea"], [a, b], n_docs=2, avg_len=3)] == [b.id, a.id]
    same = [Doc(uuid.UUID(int=i), ["tea"], T0) for i in (3, 1, 2)]
    assert [r.id.int for r in bm25(["tea"], same, n_docs=3, avg_len=1)] == [1, 2, 3]


def test_bm25_of_nothing_is_nothing() -> None:
    assert bm25([], [doc("x")], n_docs=1, avg_len=1) == []
    assert bm25(["x"], [], n_docs=0, avg_len=0) == []


# -- relative scores and fusion ------------------------------------------------------------------


def scored(*scores: float) -> list[Scored]:
    return [Scored(uuid.uuid4(), s, T0 - timedelta(minutes=i)) for i, s in enumerate(scores)]


def test_relative_scores_are_shares_of_the_best_and_the_threshold_is_strict() -> None:
    items = scored(4.0, 2.0, 1.0)
    shares = relative(items, 0.0)
    assert [s.score for s in shares] == [1.0, 0.5, 0.25]
    assert [s.id for s in relative(items, 0.25)] == [items[0].id, items[1].id]
    assert relative(items, 1.0) == []
    assert relative([], 0.0) == []


def test_fusion_rewards_items_both_lists_agree_on() -> None:
    a, b, c = scored(3.0, 2.0, 1.0)
    fused = fuse([[a, b], [b, c]])
    assert [f.id for f in fused] == [b.id, a.id, c.id]
    best = 2 / (RRF_K + 1)
    assert fused[0].score == pytest.approx((1 / (RRF_K + 2) + 1 / (RRF_K + 1)) / best)
    assert fused[1].score == pytest.approx((1 / (RRF_K + 1)) / best)
    assert fuse([[a], [a]])[0].score == pytest.approx(1.0)
    assert fuse([]) == []
    # One empty list (e.g. no vector above the threshold): the other's order is kept.
    assert [f.id for f in fuse([[a, b, c], []])] == [a.id, b.id, c.id]


def test_analysis_is_thread_safe() -> None:
    """Searches run on many threads (async twins use ``asyncio.to_thread``); a Snowball
    stemmer keeps its working state on the instance, so a shared one gave wrong stems and
    ``IndexError`` under contention."""
    import sys
    import threading

    from snowballstemmer.english_stemmer import EnglishStemmer

    bases = ["generously", "relational", "hopefulness", "conditional", "internationally"]
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word(i: int) -> str:  # distinct letters-only words: no stem cache hit
        tail = ""
        while True:
            tail, i = tail + letters[i % 26], i // 26
            if not i:
                return bases[len(tail) % len(bases)] + tail + "ness"

    words = [word(i) for i in range(20_000)]
    expected = [EnglishStemmer().stemWord(w) for w in words]
    wrong: list[str] = []
    errors: list[BaseException] = []

    def work(part: int) -> None:
        try:
            for w, stem in zip(words[part::8], expected[part::8], strict=True):
                if analyze(w) != [stem]:
                    wrong.append(w)
        except BaseException as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors and not wrong
