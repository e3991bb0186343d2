"""Hot path per chat turn: each system against its framework's baseline, turn by turn.

For every system a fresh instance of its framework's baseline (LangChain: ``create_agent``
with no memory; LlamaIndex: ``SimpleChatEngine`` with its default ``Memory``) runs the same
turns *interleaved* with it: turn i of the system right before or after turn i of the
baseline (the order drawn per pair from a seeded RNG), so each pair shares the machine's
momentary load. The overhead is the difference of the two samples' p50 (p95), and its 95%
interval is the paired bootstrap in :mod:`benchmarks.stats`. The baseline rows themselves
are an A/A test: the baseline against a second instance of itself (their interval should
straddle 0; how wide it is shows the method's resolution on this machine).

A run has two phases:

* **history** (hosted mode only; not timed): the user's earlier session(s) go through the
  system exactly as any other turn, with the chat model instant; then the system *settles*
  (what a days-long pause before the next session triggers: Memobase's idle flush, LangMem's
  debounced reflection, mem0's pending background adds). Every system gets the same history.
* **measured**: the following turns, paired with the baseline. Between two sessions the
  system settles again (sessions are days apart; not timed). After every system turn the
  harness checks whether the chat model's prompt carried the system's long-term memory
  (``memory_injected_fraction``) and counts the LLM, embedding and network calls the turn
  made its caller wait on (:mod:`benchmarks.probe`).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.conversations import Conversation, Session
from benchmarks.llm import LLMCounts
from benchmarks.stats import (
    Interval,
    bootstrap_quantile,
    bootstrap_quantile_diff,
    ms,
    percentile,
)
from benchmarks.systems.base import BenchEnv, BenchSystem

__all__ = ["HotPlan", "SystemRun", "details_json", "run_paired"]

logger = logging.getLogger("benchmarks")

SystemFactory = Callable[[BenchEnv], BenchSystem]


@dataclass(slots=True)
class HotPlan:
    """What one mode runs: unmeasured history, then measured sessions (per user)."""

    mode: str
    history: list[Conversation]
    measured: list[Conversation]
    warmup_pairs: int

    @property
    def measured_turns(self) -> int:
        return sum(len(s.turns) for c in self.measured for s in c.sessions)


@dataclass(slots=True)
class SystemRun:
    """Everything measured for one system in one latency mode."""

    key: str
    name: str
    framework: str
    mode: str
    peer: bool
    memobase: bool
    floor: bool
    baseline: bool = False
    uses_llm: bool = False
    long_term: bool = False
    waits_for_model: bool = False
    turn_s: list[float] = field(default_factory=list)
    base_s: list[float] = field(default_factory=list)
    injected: list[bool] = field(default_factory=list)
    calls_per_turn: float = 0.0
    calls_breakdown: dict[str, float] = field(default_factory=dict)
    same_thread_per_turn: float = 0.0
    counts: LLMCounts | None = None
    history_turns: int = 0
    measured_turns: int = 0
    wall_s: float = 0.0
    drain_s: float = 0.0
    error: str | None = None
    overhead_p50_ms: float | None = None
    overhead_p95_ms: float | None = None
    overhead_p50_ci_ms: Interval | None = None
    overhead_p95_ci_ms: Interval | None = None

    @property
    def p50_ms(self) -> float:
        return ms(percentile(self.turn_s, 50))

    @property
    def p95_ms(self) -> float:
        return ms(percentile(self.turn_s, 95))

    @property
    def base_p50_ms(self) -> float | None:
        return ms(percentile(self.base_s, 50)) if self.base_s else None

    @property
    def base_p95_ms(self) -> float | None:
        return ms(percentile(self.base_s, 95)) if self.base_s else None

    @property
    def memory_injected_fraction(self) -> float | None:
        if not self.injected:
            return None
        return round(sum(self.injected) / len(self.injected), 4)

    def finish(self, seed: int) -> None:
        """Point estimates and paired-bootstrap intervals of the overhead."""
        if self.error or len(self.turn_s) < 2:
            return
        if self.floor or not self.base_s:
            # No framework: the floor's "overhead" is its own latency.
            self.overhead_p50_ms, self.overhead_p95_ms = self.p50_ms, self.p95_ms
            lo50, hi50 = bootstrap_quantile(self.turn_s, 50, seed=seed)
            lo95, hi95 = bootstrap_quantile(self.turn_s, 95, seed=seed)
        else:
            self.overhead_p50_ms = round(self.p50_ms - (self.base_p50_ms or 0.0), 4)
            self.overhead_p95_ms = round(self.p95_ms - (self.base_p95_ms or 0.0), 4)
            lo50, hi50 = bootstrap_quantile_diff(self.turn_s, self.base_s, 50, seed=seed)
            lo95, hi95 = bootstrap_quantile_diff(self.turn_s, self.base_s, 95, seed=seed)
        self.overhead_p50_ci_ms = (ms(lo50), ms(hi50))
        self.overhead_p95_ci_ms = (ms(lo95), ms(hi95))


def _sessions(conversation: Conversation, first_index: int) -> list[tuple[int, Session]]:
    return [(first_index + i, s) for i, s in enumerate(conversation.sessions)]


def _feed_history(system: BenchSystem, env: BenchEnv, history: Sequence[Conversation]) -> int:
    """Run the history turns through the system (chat model instant), then settle."""
    fed = 0
    env.script.paced = False
    try:
        for conversation in history:
            for index, session in _sessions(conversation, 0):
                system.begin_session(conversation.user_id, index)
                for turn in session.turns:
                    env.script.reply = turn.assistant
                    system.run_turn(turn)
                    fed += 1
                system.settle()
    finally:
        env.script.paced = True
    return fed


def run_paired(
    key: str,
    factory: SystemFactory,
    baseline_factory: SystemFactory | None,
    env: BenchEnv,
    plan: HotPlan,
    *,
    seed: int = 14,
) -> SystemRun:
    """Run one system (and its paired baseline) through ``plan``; never raises."""
    system = factory(env)
    base = baseline_factory(env) if baseline_factory is not None else None
    run = SystemRun(
        key=key,
        name=system.name,
        framework=system.framework,
        mode=plan.mode,
        peer=system.peer,
        memobase=system.memobase,
        floor=system.floor,
        baseline=system.baseline,
        uses_llm=system.uses_llm,
        long_term=system.long_term,
        waits_for_model=system.waits_for_model,
    )
    label = f"{plan.mode}:{key}"
    rng = random.Random(seed)
    started = time.perf_counter()
    history_sessions = {c.user_id: len(c.sessions) for c in plan.history}
    try:
        env.llm.label = f"{label}:baseline"
        if base is not None:
            base.setup()
        env.llm.label = label
        system.setup()
        run.history_turns = _feed_history(system, env, plan.history)
        env.probe.reset()
        pair = 0
        for conversation in plan.measured:
            first = history_sessions.get(conversation.user_id, 0)
            for n, (index, session) in enumerate(_sessions(conversation, first)):
                if n:
                    system.settle()  # the days between two sessions (not timed)
                system.begin_session(conversation.user_id, index)
                if base is not None:
                    base.begin_session(conversation.user_id, index)
                for turn in session.turns:
                    env.script.reply = turn.assistant
                    system_first = base is None or rng.random() < 0.5
                    if not system_first and base is not None:
                        t0 = time.perf_counter()
                        base.run_turn(turn)
                        base_elapsed = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    with env.probe.turn():
                        system.run_turn(turn)
                    elapsed = time.perf_counter() - t0
                    hit = system.injected(env.script.last_prompt)
                    if system_first and base is not None:
                        t0 = time.perf_counter()
                        base.run_turn(turn)
                        base_elapsed = time.perf_counter() - t0
                    pair += 1
                    run.measured_turns += 1
                    if pair <= plan.warmup_pairs:
                        continue
                    run.turn_s.append(elapsed)
                    run.injected.append(hit)
                    if base is not None:
                        run.base_s.append(base_elapsed)
        run.wall_s = time.perf_counter() - started
        run.calls_per_turn = round(env.probe.per_turn(), 4)
        run.calls_breakdown = {k: round(v, 4) for k, v in env.probe.breakdown_per_turn().items()}
        turns = env.probe.turns or 1
        run.same_thread_per_turn = round(sum(env.probe.same_thread.values()) / turns, 4)
        t0 = time.perf_counter()
        system.drain()
        run.drain_s = time.perf_counter() - t0
    except Exception as exc:  # one broken system must not sink the whole report
        run.error = f"{type(exc).__name__}: {exc}"
        logger.error("%s failed:\n%s", system.name, traceback.format_exc())
    finally:
        for closing in (system, base):
            if closing is None:
                continue
            try:
                closing.close()
            except Exception as exc:  # pragma: no cover - best effort
                logger.warning("%s close failed: %s", closing.name, exc)
    try:
        run.counts = env.llm.counts(label)
    except Exception as exc:  # pragma: no cover - the endpoint died
        run.error = run.error or f"counts unavailable: {exc}"
    run.finish(seed)
    return run


def details_json(run: SystemRun) -> dict[str, Any]:
    """Everything measured for the system in the hot path (``latest-details.json``)."""
    return {
        "key": run.key,
        "name": run.name,
        "mode": run.mode,
        "framework": run.framework,
        "turn_p50_ms": run.p50_ms,
        "turn_p95_ms": run.p95_ms,
        "baseline_turn_p50_ms": run.base_p50_ms,
        "baseline_turn_p95_ms": run.base_p95_ms,
        "overhead_p50_ms": run.overhead_p50_ms,
        "overhead_p50_ci95_ms": run.overhead_p50_ci_ms,
        "overhead_p95_ms": run.overhead_p95_ms,
        "overhead_p95_ci95_ms": run.overhead_p95_ci_ms,
        "history_turns": run.history_turns,
        "measured_turns": run.measured_turns,
        "timed_pairs": len(run.turn_s),
        "memory_injected_fraction": run.memory_injected_fraction,
        "calls_on_caller_thread": run.calls_per_turn,
        "calls_on_caller_thread_breakdown": run.calls_breakdown,
        "calls_on_same_thread": run.same_thread_per_turn,
        "endpoint_counts_this_run": run.counts.as_dict() if run.counts else None,
        "wall_s": round(run.wall_s, 3),
        "drain_s": round(run.drain_s, 3),
        "error": run.error,
    }
