"""``record`` latency (issue 4) and the engine's non-LLM processing time per flush (issue 8).

``record`` p50/p95/p99 is measured for the embedded backend on SQLite and for the remote
backend's local outbox (against the loopback fake server), next to LangChain's
``InMemoryChatMessageHistory.add_messages`` and the bare SQLite floor, in the same run, on
the same turns. Calls made on the caller's behalf are counted as for the chat turns.

The embedded rows run while the background worker flushes: Memobase's 1024-token threshold
is crossed every dozen turns, and each row reports how many flushes finished inside its timed
window. Their LLM is the run's endpoint, served from its own process
(:class:`~benchmarks.llm.ServedBenchLLM`), as a hosted model is: its work must not be billed
to the app's interpreter. Both worker placements are measured, ``worker="process"``
(the default whenever it is possible) and ``worker="thread"``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage

from benchmarks.conversations import Conversation, Turn
from benchmarks.stats import ms, percentile
from benchmarks.systems.base import BenchEnv
from benchmarks.systems.floor import open_floor_db
from benchmarks.systems.memobase_env import BENCH_POLICY, build_memobase
from memobase_integrations.facade import Memobase
from memobase_integrations.settings import FlushPolicy

__all__ = ["FlushCost", "RecordResult", "run_flush_cost", "run_record_latency"]

logger = logging.getLogger("benchmarks")


@dataclass(slots=True)
class RecordResult:
    name: str
    samples: list[float] = field(default_factory=list)
    calls_per_record: float = 0.0
    flushes: int | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "p50_ms": ms(percentile(self.samples, 50)),
            "p95_ms": ms(percentile(self.samples, 95)),
            "p99_ms": ms(percentile(self.samples, 99)),
            "samples": len(self.samples),
            "calls_on_caller_thread": round(self.calls_per_record, 4),
            "flushes_during_run": self.flushes,
            "error": self.error,
        }


def _turns(conversations: Sequence[Conversation], n: int) -> list[tuple[str, int, Turn]]:
    out: list[tuple[str, int, Turn]] = []
    while len(out) < n:
        for conversation in conversations:
            for index, session in enumerate(conversation.sessions):
                out.extend((conversation.user_id, index, turn) for turn in session.turns)
        if not out:
            break
    return out[:n]


def _measure(
    env: BenchEnv,
    name: str,
    turns: Sequence[tuple[str, int, Turn]],
    op: Callable[[str, int, Turn], object],
    warmup: int = 5,
) -> RecordResult:
    result = RecordResult(name=name)
    env.llm.label = f"record:{name}"
    env.probe.reset()
    try:
        for n, (user_id, session, turn) in enumerate(turns):
            t0 = time.perf_counter()
            with env.probe.turn():
                op(user_id, session, turn)
            if n >= warmup:
                result.samples.append(time.perf_counter() - t0)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        logger.exception("record benchmark %s failed", name)
    result.calls_per_record = env.probe.per_turn()
    return result


def run_record_latency(
    env: BenchEnv, conversations: Sequence[Conversation], n_records: int
) -> list[RecordResult]:
    """All four ``record`` paths over the same ``n_records`` turns."""
    turns = _turns(conversations, n_records)
    results: list[RecordResult] = []

    histories: dict[tuple[str, int], InMemoryChatMessageHistory] = {}

    def lc_append(user_id: str, session: int, turn: Turn) -> None:
        history = histories.setdefault((user_id, session), InMemoryChatMessageHistory())
        history.add_messages([HumanMessage(content=turn.user), AIMessage(content=turn.assistant)])

    results.append(
        _measure(env, "LangChain InMemoryChatMessageHistory.add_messages", turns, lc_append)
    )

    conn = open_floor_db(str(env.workdir / "record-floor.db"))

    def floor(user_id: str, session: int, turn: Turn) -> None:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO turns (user_id, data) VALUES (?, ?)",
            (user_id, json.dumps(turn.messages())),
        )
        conn.execute("COMMIT")

    results.append(_measure(env, "floor: bare SQLite insert + commit", turns, floor))
    conn.close()

    for worker in ("process", "thread"):
        label = f"embedded SQLite, worker={worker}"
        url = f"sqlite:///{env.workdir / f'record-{worker}.db'}"
        results.append(
            _measure_memobase(
                env,
                f"Memobase record ({label})",
                turns,
                lambda url=url, worker=worker: Memobase.embedded(  # type: ignore[misc]
                    url, llm=env.llm.settings(), policy=BENCH_POLICY, worker=worker
                ),
            )
        )
    results.append(
        _measure_memobase(
            env,
            "Memobase record (remote outbox)",
            turns,
            lambda: build_memobase(env, "remote", "record-remote", policy=BENCH_POLICY),
        )
    )
    return results


def _measure_memobase(
    env: BenchEnv,
    name: str,
    turns: Sequence[tuple[str, int, Turn]],
    build: Callable[[], Memobase],
) -> RecordResult:
    try:
        memobase = build()
    except Exception as exc:
        return RecordResult(name=name, error=str(exc))
    flushed: list[object] = []
    embedded = memobase.backend.kind == "embedded"
    if embedded:
        memobase.backend.add_listener(lambda user_id, responses: flushed.append(user_id))
        _warm_up(memobase)
        flushed.clear()

    def record(user_id: str, session: int, turn: Turn) -> None:
        memobase.user(user_id).record(turn.messages())

    result = _measure(env, name, turns, record)
    result.flushes = len(flushed) if embedded else None
    try:
        memobase.close(timeout=600.0)
    except Exception as exc:  # pragma: no cover - reported, not fatal
        logger.warning("closing %s failed: %s", name, exc)
    return result


def _warm_up(memobase: Memobase) -> None:
    """One flush before timing, so the worker (thread or process) has started and imported
    everything: the timed window measures steady state, not interpreter start-up."""
    user = memobase.user("record-bench-warm-up")
    user.record([{"role": "user", "content": "I work as a nurse and I love hiking."}])
    deadline = time.monotonic() + 60.0
    user.flush(wait=False)
    while time.monotonic() < deadline and memobase.status().pending_turns:
        time.sleep(0.05)


@dataclass(slots=True)
class FlushCost:
    """Wall time of each embedded flush minus the time spent inside the LLM endpoint."""

    wall_s: list[float] = field(default_factory=list)
    non_llm_s: list[float] = field(default_factory=list)
    llm_calls: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        n = len(self.wall_s) or 1
        return {
            "flushes": len(self.wall_s),
            "non_llm_p50_ms": ms(percentile(self.non_llm_s, 50)),
            "non_llm_p95_ms": ms(percentile(self.non_llm_s, 95)),
            "non_llm_mean_ms": ms(sum(self.non_llm_s) / n),
            "wall_p50_ms": ms(percentile(self.wall_s, 50)),
            "llm_calls_per_flush": round(sum(self.llm_calls) / n, 2),
            "chat_tokens_per_flush": round(sum(self.tokens) / n, 1),
            "error": self.error,
        }


def run_flush_cost(env: BenchEnv, conversations: Sequence[Conversation]) -> FlushCost:
    """Record each session, then flush it explicitly (wait=True) and time the flush."""
    from memobase_integrations.tokens import count_tokens

    cost = FlushCost()
    label = "flush-cost"
    env.llm.label = label
    policy = FlushPolicy(
        buffer_token_threshold=10**9, idle_flush_seconds=None, flush_on_close=False
    )
    memobase = build_memobase(env, "embedded", "flush-cost", policy=policy)
    try:
        for conversation in conversations:
            user = memobase.user(conversation.user_id)
            for session in conversation.sessions:
                for turn in session.turns:
                    user.record(turn.messages())
                before = env.llm.counts(label)
                handler0, calls0 = before.handler_seconds, before.llm_calls
                t0 = time.perf_counter()
                user.flush(wait=True)
                wall = time.perf_counter() - t0
                after = env.llm.counts(label)
                cost.wall_s.append(wall)
                cost.non_llm_s.append(max(0.0, wall - (after.handler_seconds - handler0)))
                cost.llm_calls.append(after.llm_calls - calls0)
                cost.tokens.append(
                    sum(count_tokens(t.user) + count_tokens(t.assistant) for t in session.turns)
                )
    except Exception as exc:
        cost.error = f"{type(exc).__name__}: {exc}"
        logger.exception("flush cost benchmark failed")
    finally:
        memobase.close(timeout=60.0)
    return cost
