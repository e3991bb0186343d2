"""The benchmark runner in its tiny ``--quick`` configuration, so it cannot rot unnoticed.

Nothing here is timed: the assertions are about the report's shape and about behaviour the
benchmark's numbers rest on (calls counted on the caller's thread, LLM cost counted at the
stand-in, the store seeded for the scale runs).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import json
import sys
import threading
from pathlib import Path

import httpx
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
    "llm_calls_per_100_messages",
    "prompt_tokens_per_raw_token",
    "calls_on_caller_thread",
}
SCALE_KEYS = {"backend", "users", "context_p95_ms", "record_per_s"}


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


def test_quick_run_writes_the_issue_schema(tmp_path: Path) -> None:
    from benchmarks.run import main

    systems = "lc-none,lc-memobase-embedded,li-memory,li-memobase-embedded,floor"
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
    data = json.loads((tmp_path / "latest.json").read_text())
    assert set(data) == {"systems", "scale", "floor_sqlite_insert_p50_ms", "machine", "date"}
    assert all(set(s) == SYSTEM_KEYS for s in data["systems"])
    assert all(set(p) == SCALE_KEYS for p in data["scale"])
    assert {s["mode"] for s in data["systems"]} == {"instant", "hosted"}
    assert len(data["systems"]) == 2 * len(systems.split(","))
    assert data["floor_sqlite_insert_p50_ms"] > 0

    details = json.loads((tmp_path / "latest-details.json").read_text())
    assert [s["error"] for s in details["systems"] if s["error"]] == []
    by_name = {(s["name"], s["mode"]): s for s in data["systems"]}
    embedded = [v for (name, _), v in by_name.items() if "Memobase" in name]
    assert len(embedded) == 4
    # the hot path of the embedded adapters makes no LLM/embedding/network call
    assert all(s["calls_on_caller_thread"] == 0 for s in embedded)
    # ... while their turns were processed (at drain) and counted at the stand-in
    instant = [s for s in embedded if s["mode"] == "instant"]
    assert all(s["llm_calls_per_100_messages"] > 0 for s in instant)
    assert all(s["prompt_tokens_per_raw_token"] > 0 for s in instant)

    assert [(p["backend"], p["users"]) for p in data["scale"]] == [("sqlite", 20), ("sqlite", 60)]
    assert all(p["context_p95_ms"] is not None and p["record_per_s"] > 0 for p in data["scale"])
    records = {r["name"]: r for r in details["record"]}
    for worker in ("process", "thread"):
        row = records[f"Memobase record (embedded SQLite, worker={worker})"]
        assert row["error"] is None and row["calls_on_caller_thread"] == 0
        assert row["flushes_during_run"] is not None
    assert records["Memobase record (remote outbox)"]["calls_on_caller_thread"] == 0
    assert details["flush_cost"]["flushes"] > 0 and details["flush_cost"]["error"] is None

    markdown = (tmp_path / "latest.md").read_text()
    assert "## Targets" in markdown and "## `record` latency" in markdown


def test_postgres_seed_lands_in_the_engine_tables(postgres_url: str) -> None:
    from benchmarks.scale import prepare_postgres, run_scale
    from memobase_integrations.testing import StandInLLM

    url = prepare_postgres(postgres_url, "memobase_bench_test")
    try:
        llm = StandInLLM().settings()
        points = run_scale("postgresql", url, [15, 40], llm, context_samples=5, record_samples=5)
    finally:
        admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text('DROP DATABASE IF EXISTS "memobase_bench_test" WITH (FORCE)'))
        admin.dispose()
    assert [p.error for p in points] == [None, None]
    assert [p.rows["mb_users"] for p in points] == [15, 40]
    assert points[-1].rows["mb_profiles"] >= 40 * 5
    assert all(len(p.context_s) == 5 and p.record_per_s > 0 for p in points)
