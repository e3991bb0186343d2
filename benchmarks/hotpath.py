"""Hot path per chat turn and LLM cost per conversation, for every system, in one pass.

Each system runs the same conversations turn by turn through its framework; each turn is
timed end to end (framework + memory; the chat model is a scripted fake), the calls it made
its caller wait on are counted (:mod:`benchmarks.probe`), and after the last turn the system
drains its background work so the LLM cost counted at :class:`~benchmarks.llm.BenchLLM` is
complete. Overhead is a system's turn latency minus its framework's baseline, measured again
right before the system (a paired run) so that drifting machine load cancels out.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.conversations import Conversation, raw_tokens
from benchmarks.llm import LLMCounts
from benchmarks.stats import ms, percentile
from benchmarks.systems.base import BenchEnv, BenchSystem

__all__ = ["SystemRun", "add_overheads", "as_json", "details_json", "run_system"]

logger = logging.getLogger("benchmarks")

SystemFactory = Callable[[BenchEnv], BenchSystem]


@dataclass(slots=True)
class SystemRun:
    """Everything measured for one system in one latency mode."""

    name: str
    framework: str
    mode: str
    peer: bool
    memobase: bool
    floor: bool
    baseline: bool = False
    turn_s: list[float] = field(default_factory=list)
    calls_per_turn: float = 0.0
    calls_breakdown: dict[str, float] = field(default_factory=dict)
    same_thread_per_turn: float = 0.0
    counts: LLMCounts | None = None
    cost_measured: bool = True
    n_turns: int = 0
    n_messages: int = 0
    raw_tokens: int = 0
    wall_s: float = 0.0
    drain_s: float = 0.0
    error: str | None = None
    overhead_p50_ms: float | None = None
    overhead_p95_ms: float | None = None
    #: The framework baseline measured right before this system (same turns, same mode), so
    #: slow drift of the machine's load affects both sides of the difference alike.
    paired_baseline: SystemRun | None = None

    @property
    def p50_ms(self) -> float:
        return ms(percentile(self.turn_s, 50))

    @property
    def p95_ms(self) -> float:
        return ms(percentile(self.turn_s, 95))

    @property
    def llm_calls_per_100_messages(self) -> float | None:
        if self.counts is None or not self.cost_measured or not self.n_messages:
            return None
        return round(100.0 * self.counts.llm_calls / self.n_messages, 3)

    @property
    def embedding_calls_per_100_messages(self) -> float | None:
        if self.counts is None or not self.cost_measured or not self.n_messages:
            return None
        return round(100.0 * self.counts.embedding_calls / self.n_messages, 3)

    @property
    def prompt_tokens_per_raw_token(self) -> float | None:
        if self.counts is None or not self.cost_measured or not self.raw_tokens:
            return None
        return round(self.counts.prompt_tokens / self.raw_tokens, 3)

    @property
    def completion_tokens_per_100_messages(self) -> float | None:
        if self.counts is None or not self.cost_measured or not self.n_messages:
            return None
        return round(100.0 * self.counts.completion_tokens / self.n_messages, 3)


def run_system(
    factory: SystemFactory,
    env: BenchEnv,
    conversations: Sequence[Conversation],
    mode: str,
    *,
    warmup_turns: int = 3,
) -> SystemRun:
    """Run one system over the conversations; never raises (errors are reported)."""
    system = factory(env)
    run = SystemRun(
        name=system.name,
        framework=system.framework,
        mode=mode,
        peer=system.peer,
        memobase=system.memobase,
        floor=system.floor,
        baseline=system.baseline,
    )
    label = f"{mode}:{system.name}"
    env.llm.label = label
    env.probe.reset()
    started = time.perf_counter()
    seen = 0
    try:
        system.setup()
        for conversation in conversations:
            for index, session in enumerate(conversation.sessions):
                system.begin_session(conversation.user_id, index)
                for turn in session.turns:
                    env.script.reply = turn.assistant
                    t0 = time.perf_counter()
                    with env.probe.turn():
                        system.run_turn(turn)
                    elapsed = time.perf_counter() - t0
                    seen += 1
                    if seen > warmup_turns:
                        run.turn_s.append(elapsed)
        run.wall_s = time.perf_counter() - started
        t0 = time.perf_counter()
        system.drain()
        run.drain_s = time.perf_counter() - t0
    except Exception as exc:  # one broken system must not sink the whole report
        run.error = f"{type(exc).__name__}: {exc}"
        logger.error("%s failed:\n%s", system.name, traceback.format_exc())
    finally:
        try:
            system.close()
        except Exception as exc:  # pragma: no cover - best effort
            logger.warning("%s close failed: %s", system.name, exc)
    run.n_turns = seen
    run.n_messages = 2 * seen
    run.raw_tokens = _raw_tokens_of_first(conversations, seen)
    run.calls_per_turn = round(env.probe.per_turn(), 4)
    run.calls_breakdown = {k: round(v, 4) for k, v in env.probe.breakdown_per_turn().items()}
    turns = env.probe.turns or 1
    run.same_thread_per_turn = round(sum(env.probe.same_thread.values()) / turns, 4)
    run.counts = env.llm.counts(label)
    return run


def _raw_tokens_of_first(conversations: Sequence[Conversation], n_turns: int) -> int:
    """Raw chat tokens of the first ``n_turns`` turns (all of them when the run finished)."""
    total = sum(c.n_messages for c in conversations) // 2
    if n_turns >= total:
        return raw_tokens(list(conversations))
    from memobase_integrations.tokens import count_tokens

    count = 0
    tokens = 0
    for conversation in conversations:
        for turn in conversation.turns():
            if count >= n_turns:
                return tokens
            tokens += count_tokens(turn.user) + count_tokens(turn.assistant)
            count += 1
    return tokens


def add_overheads(runs: Sequence[SystemRun]) -> None:
    """Overhead = p50/p95 of the system minus p50/p95 of its framework's baseline (LangChain:
    ``create_agent`` with no memory; LlamaIndex: ``SimpleChatEngine`` with its default
    ``Memory``) in the same mode: the paired baseline run when there is one, else the reported
    baseline row. The floor's overhead is its own latency (no framework)."""
    baselines: dict[tuple[str, str], SystemRun] = {}
    for run in runs:
        if run.baseline and not run.error:
            baselines[(run.framework, run.mode)] = run
    for run in runs:
        if run.error or not run.turn_s:
            continue
        if run.floor:
            run.overhead_p50_ms, run.overhead_p95_ms = run.p50_ms, run.p95_ms
            continue
        base = run.paired_baseline
        if base is None or base.error or not base.turn_s:
            base = baselines.get((run.framework, run.mode))
        if base is None:
            continue
        run.overhead_p50_ms = round(run.p50_ms - base.p50_ms, 4)
        run.overhead_p95_ms = round(run.p95_ms - base.p95_ms, 4)


def as_json(run: SystemRun) -> dict[str, Any]:
    """The entry of ``latest.json``'s ``systems`` list: exactly issue 8's schema."""
    return {
        "name": run.name,
        "mode": run.mode,
        "turn_overhead_p50_ms": run.overhead_p50_ms,
        "turn_overhead_p95_ms": run.overhead_p95_ms,
        "llm_calls_per_100_messages": run.llm_calls_per_100_messages,
        "prompt_tokens_per_raw_token": run.prompt_tokens_per_raw_token,
        "calls_on_caller_thread": run.calls_per_turn,
    }


def details_json(run: SystemRun) -> dict[str, Any]:
    """Everything else measured for the system (``latest-details.json``)."""
    return {
        "name": run.name,
        "mode": run.mode,
        "framework": run.framework,
        "turn_p50_ms": run.p50_ms,
        "turn_p95_ms": run.p95_ms,
        "turns": run.n_turns,
        "timed_turns": len(run.turn_s),
        "messages": run.n_messages,
        "raw_chat_tokens": run.raw_tokens,
        "calls_on_caller_thread_breakdown": run.calls_breakdown,
        "calls_on_same_thread": run.same_thread_per_turn,
        "embedding_calls_per_100_messages": run.embedding_calls_per_100_messages,
        "completion_tokens_per_100_messages": run.completion_tokens_per_100_messages,
        "endpoint_counts": run.counts.as_dict() if run.counts else None,
        "cost_measured": run.cost_measured,
        "wall_s": round(run.wall_s, 3),
        "drain_s": round(run.drain_s, 3),
        "error": run.error,
    }
