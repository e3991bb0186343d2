"""LLM cost at a conversational pace, on a simulated clock (the ``pace`` and ``growth`` sections).

Cost depends on pace for any system that batches (Memobase processes a buffer when it
crosses its token threshold or has been idle for ``idle_flush_seconds``; LangMem processes a
thread once it has been quiet for its debounce delay). So each system runs the conversations
turn by turn through its framework (chat model instant; the LLM endpoint instant, since only
what is sent is counted here), while a simulated clock says what time it is:

* each session starts on its conversation day, at 09:00 plus a random 0-10 h;
* within a session a turn follows the previous one after 30-90 s (reading, typing and the
  model's answer), drawn from a seeded RNG;
* users run one after the other, each on their own calendar, and every user's history ends
  with a 30-day pause.

Between two turns the system is told how much simulated time passes (``sim_elapse``):

* **Memobase** runs without a worker; the harness performs the worker's cycle (the users the
  store says are due, by the library's own threshold and idle rules on the simulated
  clock) right after a turn and once more one poll after the idle flush becomes due;
* **LangMem**'s debounced task runs when a pause is at least its 30-minute delay (at the
  end of a session);
* **mem0 as documented** waits for its background ``add`` (seconds, against a minute);
* everything else is synchronous and needs nothing.

Counts come from the endpoint (:class:`~benchmarks.llm.BenchLLM`): calls, prompt tokens (with
tool definitions), the prompt tokens a prefix cache would bill as cached, completion tokens,
and embedding input tokens (separately). Cost uses :data:`PRICES`.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

from benchmarks.conversations import Conversation, raw_tokens
from benchmarks.llm import LLMCounts
from benchmarks.simclock import SimClock
from benchmarks.systems.base import BenchEnv, BenchSystem

__all__ = ["PRICES", "PaceRow", "run_pace"]

logger = logging.getLogger("benchmarks")

#: USD per 1M tokens, OpenAI's list prices for the models Memobase defaults to
#: (``gpt-4o-mini``; embeddings ``text-embedding-3-small``). Cached input is billed at half.
PRICES: dict[str, Any] = {
    "chat_model": "gpt-4o-mini",
    "input_per_mtok": 0.15,
    "cached_input_per_mtok": 0.075,
    "output_per_mtok": 0.60,
    "embedding_model": "text-embedding-3-small",
    "embedding_per_mtok": 0.02,
    "caching_rule": (
        "a prompt of >= 1,024 tokens is billed as cached for the longest prefix, in "
        "128-token steps, that an earlier request of the same system began with "
        "(OpenAI's rule); no expiry is modelled, so the cached column is a lower bound "
        "on cost"
    ),
}

TURN_GAP_S = (30.0, 90.0)
SESSION_START_H = (0.0, 10.0)
FINAL_PAUSE_S = 30 * 86400.0

SystemFactory = Callable[[BenchEnv], BenchSystem]


@dataclass(slots=True)
class PaceRow:
    """One system's LLM cost over one conversation set at the simulated pace."""

    key: str
    name: str
    section: str
    users: int
    messages: int
    raw_tokens: int
    counts: LLMCounts = field(default_factory=LLMCounts)
    flushes: int | None = None
    wall_s: float = 0.0
    error: str | None = None

    def _per100(self, value: float, digits: int = 3) -> float | None:
        return round(100.0 * value / self.messages, digits) if self.messages else None

    def _per_raw(self, value: float) -> float | None:
        return round(value / self.raw_tokens, 3) if self.raw_tokens else None

    def cost_usd(self, *, cached: bool) -> float:
        c = self.counts
        billed_cached = c.cached_prompt_tokens if cached else 0
        return (
            float(
                (c.prompt_tokens - billed_cached) * PRICES["input_per_mtok"]
                + billed_cached * PRICES["cached_input_per_mtok"]
                + c.completion_tokens * PRICES["output_per_mtok"]
                + c.embedding_tokens * PRICES["embedding_per_mtok"]
            )
            / 1e6
        )

    def as_json(self) -> dict[str, Any]:
        c = self.counts
        ok = self.error is None
        return {
            "name": self.name,
            "key": self.key,
            "users": self.users,
            "messages_per_user": self.messages // self.users if self.users else None,
            "messages": self.messages,
            "raw_tokens": self.raw_tokens,
            "llm_calls_per_100_messages": self._per100(c.llm_calls) if ok else None,
            "embedding_calls_per_100_messages": self._per100(c.embedding_calls) if ok else None,
            "prompt_tokens_per_raw_token": self._per_raw(c.prompt_tokens) if ok else None,
            "cached_prompt_share": round(c.cached_prompt_tokens / c.prompt_tokens, 3)
            if ok and c.prompt_tokens
            else (0.0 if ok else None),
            "completion_tokens_per_100_messages": self._per100(c.completion_tokens) if ok else None,
            "embedding_tokens_per_raw_token": self._per_raw(c.embedding_tokens) if ok else None,
            "cost_per_100_messages_usd": self._per100(self.cost_usd(cached=False), 8)
            if ok
            else None,
            "cost_per_100_messages_cached_usd": self._per100(self.cost_usd(cached=True), 8)
            if ok
            else None,
            "calls_by_kind": dict(sorted(c.by_kind.items())),
            "wall_s": round(self.wall_s, 1),
            "error": self.error,
        }


def _session_start(day: Any, rng: random.Random) -> datetime:
    hours = rng.uniform(*SESSION_START_H)
    return datetime.combine(day, dtime(9, 0), tzinfo=UTC) + timedelta(hours=hours)


def run_pace(
    key: str,
    factory: SystemFactory,
    env: BenchEnv,
    conversations: Sequence[Conversation],
    section: str,
    *,
    seed: int = 14,
) -> PaceRow:
    """Run one system over ``conversations`` at the simulated pace; never raises."""
    system = factory(env)
    label = f"{section}:{key}"
    row = PaceRow(
        key=key,
        name=system.name,
        section=section,
        users=len(conversations),
        messages=sum(c.n_messages for c in conversations),
        raw_tokens=raw_tokens(list(conversations)),
    )
    rng = random.Random(seed)
    clock = SimClock()
    started = time.perf_counter()
    env.script.paced = False
    try:
        env.llm.label = label
        with clock.installed():
            system.setup()
            for conversation in conversations:
                for index, session in enumerate(conversation.sessions):
                    start = _session_start(session.day, rng)
                    if index == 0:
                        # A new user on their own calendar; the previous one is fully settled.
                        clock.restart(start)
                    else:
                        _elapse(system, clock, (start - clock.now()).total_seconds())
                    system.begin_session(conversation.user_id, index)
                    for n, turn in enumerate(session.turns):
                        if n:
                            _elapse(system, clock, rng.uniform(*TURN_GAP_S))
                        env.script.reply = turn.assistant
                        system.run_turn(turn)
                _elapse(system, clock, FINAL_PAUSE_S)
            system.drain()
    except Exception as exc:  # one broken system must not sink the whole report
        row.error = f"{type(exc).__name__}: {exc}"
        logger.error("pace %s failed:\n%s", system.name, traceback.format_exc())
    finally:
        env.script.paced = True
        try:
            system.close()
        except Exception as exc:  # pragma: no cover - best effort
            logger.warning("%s close failed: %s", system.name, exc)
    row.wall_s = time.perf_counter() - started
    row.counts = env.llm.counts(label)
    return row


def _elapse(system: BenchSystem, clock: SimClock, seconds: float) -> None:
    target = clock.now() + timedelta(seconds=max(0.0, seconds))
    system.sim_elapse(clock, seconds)
    clock.set(max(target, clock.now()))
