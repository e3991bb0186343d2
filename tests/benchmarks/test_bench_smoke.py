"""The benchmark runner in its tiny ``--quick`` configuration, so it cannot rot unnoticed, and
the pieces of method the numbers rest on.

Nothing here is timed: the assertions are about the report's shape and about behaviour the
benchmark's numbers rest on (calls counted on the caller's thread, intervals that cover the
truth, prompt caching counted by OpenAI's rule, the simulated clock driving the library's
own flush policy, databases named per run and never dropped unless created here).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import logging
import sys
import threading
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain ``pytest`` does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.probe import CallerThreadProbe  # noqa: E402

SYSTEM_KEYS = {
    "name",
    "mode",
    "turn_overhead_p50_ms",
    "turn_overhead_p95_ms",
    "overhead_ci95_ms",
    "memory_injected_fraction",
    "llm_calls_per_100_messages",
    "prompt_tokens_per_raw_token",
    "embedding_tokens_per_raw_token",
}


def _client() -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))


def test_probe_counts_what_the_turn_waits_for_and_not_background_work() -> None:
    probe = CallerThreadProbe()
    client = _client()
    background_done = threading.Event()

    def background() -> None:  # a worker started outside the turn: not the caller's cost
        client.post("http://x/v1/chat/completions")
        background_done.set()

    with probe:
        with probe.turn():
            client.post("http://x/v1/chat/completions")  # on the caller's thread
            with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a waited-on helper
                ctx = contextvars.copy_context()
                pool.submit(ctx.run, client.post, "http://x/v1/embeddings").result()
            worker = threading.Thread(target=background)
            worker.start()
            worker.join()
        client.get("http://x/api/v1/users/context/u")  # after the turn: not counted
    assert background_done.is_set()
    assert probe.turns == 1
    assert probe.counts == {"llm": 1, "embedding": 1}
    assert probe.same_thread == {"llm": 1}
    # uninstalled: httpx is back to normal and nothing more is counted
    client.post("http://x/v1/chat/completions")
    assert sum(probe.counts.values()) == 2


def test_paired_bootstrap_covers_a_known_shift_and_an_a_a_difference() -> None:
    from benchmarks.stats import bootstrap_quantile_diff, verdict

    rng = np.random.default_rng(1)
    load = rng.gamma(2.0, 2.0, size=400)  # shared momentary load: cancels in the pairs
    base = 10.0 + load + rng.normal(0, 0.1, size=400)
    shifted = base + 3.0 + rng.normal(0, 0.1, size=400)
    low, high = bootstrap_quantile_diff(list(shifted), list(base), 50)
    assert low < 3.0 < high and high - low < 1.0
    again = bootstrap_quantile_diff(list(shifted), list(base), 50)
    assert again == (low, high)  # seeded: the report is reproducible from the samples
    a_a = bootstrap_quantile_diff(list(base + rng.normal(0, 0.1, 400)), list(base), 95)
    assert a_a[0] < 0 < a_a[1]
    # a target is met only when the whole interval is under the threshold
    assert verdict((low, high), 4.0) == "met"
    assert verdict((low, high), 2.0) == "missed"
    assert verdict((-1.0, 3.0), 2.0) == "undecided"


def test_prefix_cache_follows_openais_rule() -> None:
    from benchmarks.llm import PrefixCache

    fixed = " ".join(f"word{i}" for i in range(1500))  # > 1,024 tokens of shared prefix
    cache = PrefixCache()
    assert cache.cached(["system\n" + fixed, "user\nfirst question"]) == 0  # first sight
    hit = cache.cached(["system\n" + fixed, "user\nanother question"])
    assert hit >= 1024 and hit % 128 == 0
    assert cache.cached(["system\nshort", "user\nq"]) == 0  # under 1,024 tokens: never
    assert PrefixCache().cached(["system\n" + fixed, "user\nq"]) == 0  # per system


def test_bench_llm_answers_langmem_with_memory_tool_calls() -> None:
    from benchmarks.llm import answer_langmem, is_langmem_request
    from memobase_integrations.testing import StandInLLM

    human = "=" * 32 + " Human Message " + "=" * 33
    ai = "=" * 32 + " Ai Message " + "=" * 34
    session = f"{human}\n\nI live in Berlin and I like jazz.\n\n{ai}\n\nNice!"
    body = {
        "tools": [{"type": "function", "function": {"name": "Memory"}}],
        "messages": [
            {
                "role": "system",
                "content": "You are a memory subroutine for an AI.\n<existing>\n"
                "<instance id=1 schema_type=\"Memory\">\n{'content': 'User likes jazz.'}\n"
                "</instance>\n</existing>",
            },
            {"role": "user", "content": f"Extract.\n<session_1>\n{session}\n</session_1>"},
        ],
    }
    assert is_langmem_request(body)
    calls = answer_langmem(StandInLLM(), body)
    contents = [json.loads(c["function"]["arguments"])["content"] for c in calls]
    assert contents and all(c["function"]["name"] == "Memory" for c in calls)
    assert any("Berlin" in c for c in contents)
    assert "User likes jazz." not in contents  # already stored: not inserted again


def test_simulated_clock_lets_the_library_fire_the_idle_flush(tmp_path: Path) -> None:
    """The pace harness moves time; the engine's own rule decides the flush."""
    from datetime import UTC, datetime

    from benchmarks.simclock import SimClock
    from memobase_integrations.backends.embedded import EmbeddedBackend
    from memobase_integrations.facade import Memobase
    from memobase_integrations.testing import StandInLLM

    clock = SimClock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    with clock.installed():
        memobase = Memobase.embedded(
            f"sqlite:///{tmp_path / 'sim.db'}", llm=StandInLLM().settings(), start_worker=False
        )
        try:
            backend = memobase.backend
            assert isinstance(backend, EmbeddedBackend)
            user = memobase.user("sim-user")
            user.record([{"role": "user", "content": "I live in Lisbon."}])
            assert backend.processor.due_users(drain=False) == []  # neither threshold nor idle yet
            clock.advance(299)
            assert backend.processor.due_users(drain=False) == []
            clock.advance(2)  # idle_flush_seconds (300) has passed on the simulated clock
            due = backend.processor.due_users(drain=False)
            assert [(d.user_id, d.reason) for d in due] == [(user.id, "idle")]
        finally:
            memobase.close(timeout=0)


def test_quick_run_writes_the_issue_schema(tmp_path: Path) -> None:
    from benchmarks.run import NOISY_LOGGERS, main

    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    systems = "lc-none,lc-memobase-embedded,li-memory,li-memobase-embedded,li-fact,floor"
    code = main(
        [
            "--quick",
            "--out",
            str(tmp_path),
            "--systems",
            systems,
            "--scale-sizes",
            "20,60",
            "--skip-postgres",
        ]
    )
    assert code == 0
    # the run silences chatty loggers only while it runs (other tests read their records)
    assert {name: logging.getLogger(name).level for name in NOISY_LOGGERS} == levels
    data = json.loads((tmp_path / "latest.json").read_text())
    for section in ("systems", "pace", "growth", "capacity", "scale"):
        assert isinstance(data[section], list)
        assert all("name" in row for row in data[section])
    assert all(set(s) >= SYSTEM_KEYS for s in data["systems"])
    assert {s["mode"] for s in data["systems"]} == {"instant", "hosted"}
    assert [s["error"] for s in data["systems"] if s["error"]] == []
    for s in data["systems"]:
        low, high = s["overhead_ci95_ms"]
        assert low <= high

    memobase = [s for s in data["systems"] if "Memobase" in s["name"]]
    assert len(memobase) == 4
    # the hot path of the embedded adapters makes no LLM/embedding/network call ...
    assert all(s["calls_on_caller_thread"] == 0 for s in memobase)
    # ... and in hosted mode the worker processed during the conversation: memory is there
    hosted = [s for s in memobase if s["mode"] == "hosted"]
    assert all(s["memory_injected_fraction"] >= 0.8 for s in hosted)
    # cost comes from the simulated pace and is on every Memobase row
    assert all(s["llm_calls_per_100_messages"] > 0 for s in memobase)
    assert all(s["prompt_tokens_per_raw_token"] > 0 for s in memobase)
    pace = {p["key"]: p for p in data["pace"]}
    assert pace["lc-memobase-embedded"]["calls_by_kind"]["memobase:entry_summary"] >= 1
    assert pace["lc-memobase-embedded"]["cost_per_100_messages_usd"] > 0
    assert {g["messages_per_user"] for g in data["growth"]} == {20, 60}

    assert [(p["backend"], p["users"]) for p in data["scale"]] == [("sqlite", 20), ("sqlite", 60)]
    assert all(p["raw_sql_floor_p95_ms"] is not None for p in data["scale"])
    records = {r["name"]: r for r in data["record"]}
    for worker in ("process", "thread"):
        row = records[f"Memobase record (embedded SQLite, worker={worker})"]
        assert row["error"] is None and row["calls_on_caller_thread"] == 0
    ratios = data["ratios"]  # issue 13 item 4: four measurements of the same run
    for key in ("record_vs_floor", "context_vs_raw_sql"):
        assert ratios[key]["error"] is None and ratios[key]["ratio_p50"] > 0
        low, high = ratios[key]["ratio_p50_ci95"]
        assert low <= high
    for key in ("first_record", "import"):
        assert ratios[key]["error"] is None and ratios[key]["runs"] >= 2
    assert all(d["heavy_modules_loaded"] == [] for d in ratios["import"]["details"])
    assert {d["worker"] for d in ratios["first_record"]["details"]} == {"process"}
    assert data["targets"] and all(
        t["verdict"] in ("met", "missed", "undecided", None) for t in data["targets"]
    )
    assert sum("<= 10x" in t["target"] or "<= 5x" in t["target"] for t in data["targets"]) == 2
    markdown = (tmp_path / "latest.md").read_text()
    assert "## Targets" in markdown and "## LLM cost at a conversational pace" in markdown
    assert (tmp_path / "overview.png").stat().st_size > 0


def test_the_paired_ratio_bootstrap_covers_a_known_ratio() -> None:
    from benchmarks.stats import bootstrap_quantile_ratio

    rng = np.random.default_rng(3)
    base = rng.uniform(20, 40, size=400)
    system = 3.0 * base * rng.uniform(0.95, 1.05, size=400)
    low, high = bootstrap_quantile_ratio(system.tolist(), base.tolist(), 50)
    assert low < 3.0 < high and high - low < 0.5
    with pytest.raises(ValueError, match="paired"):
        bootstrap_quantile_ratio(system.tolist(), base[:-1].tolist(), 50)


def test_postgres_databases_are_unique_and_only_ours_are_dropped(postgres_url: str) -> None:
    from benchmarks.scale import drop_postgres, prepare_postgres, run_id, run_scale
    from memobase_integrations.testing import StandInLLM

    name = f"memobase_bench_{run_id()}_test"
    url, database = prepare_postgres(postgres_url, name)
    try:
        with pytest.raises(sa.exc.ProgrammingError):  # never reuses an existing database
            prepare_postgres(postgres_url, name)
        llm = StandInLLM().settings()
        points = run_scale("postgresql", url, [15, 40], llm, context_samples=5, record_samples=5)
    finally:
        assert drop_postgres(postgres_url, database)
    with pytest.raises(ValueError, match="did not create"):
        drop_postgres(postgres_url, f"someone_else_{uuid.uuid4().hex[:6]}")
    assert [p.error for p in points] == [None, None]
    assert [p.rows["mb_users"] for p in points] == [15, 40]
    assert points[-1].rows["mb_profiles"] >= 40 * 5
    assert all(len(p.context_s) == 5 and len(p.floor_s) == 5 for p in points)
    assert all(p.record_per_s > 0 for p in points)
