"""What every system under test offers the harnesses, and the shared run environment."""

from __future__ import annotations

import abc
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.conversations import Turn
from benchmarks.llm import INSTANT, LatencyModel, ServedBenchLLM
from benchmarks.probe import CallerThreadProbe
from memobase_integrations.tokens import count_tokens

if TYPE_CHECKING:
    from benchmarks.simclock import SimClock

__all__ = ["BenchEnv", "BenchSystem", "Script"]


@dataclass(slots=True)
class Script:
    """The fake chat model's behaviour, shared by every framework's scripted model.

    It answers with the conversation's own assistant text (so every system stores exactly the
    same bytes), waits like a hosted chat model when ``chat`` has latency (the same latency
    model as the memory LLM: a turn takes as long as it would in production, so background
    processing runs *during* the conversation) and keeps the last prompt it was given, so the
    harness can tell whether that prompt carried memory.
    """

    reply: str = "OK."
    chat: LatencyModel = INSTANT
    #: Off while a system is fed its (unmeasured) history: those turns need no pacing.
    paced: bool = True
    last_prompt: str = ""

    def answer(self, prompt: str) -> str:
        self.last_prompt = prompt
        if self.paced and (self.chat.llm_delay_s or self.chat.per_token_delay_s):
            time.sleep(self.chat.chat_delay(count_tokens(self.reply)))
        return self.reply


@dataclass(slots=True)
class BenchEnv:
    """Shared by all systems of one run (one latency mode)."""

    llm: ServedBenchLLM
    probe: CallerThreadProbe
    script: Script = field(default_factory=Script)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mb-bench-")))
    remote_url: str | None = None
    #: The pace simulation: Memobase runs without a worker, the harness drives its flushes
    #: on a simulated clock (see :mod:`benchmarks.pace`).
    simulated: bool = False


class BenchSystem(abc.ABC):
    """One memory system wrapped in its framework's chat loop.

    ``framework`` groups systems with their framework's baseline, the configuration an app has
    before adding long-term memory (overhead is measured against it); ``peer`` marks the
    systems Memobase is compared with; ``floor`` the physical floor. ``uses_llm`` marks the
    systems whose memory costs LLM or embedding calls (they get a row in the pace section).
    """

    name: str = ""
    framework: str = ""
    baseline: bool = False
    peer: bool = False
    memobase: bool = False
    floor: bool = False
    uses_llm: bool = False
    #: Whether the system keeps long-term memory at all (else memory_injected_fraction is 0).
    long_term: bool = False
    #: By design, every turn waits for at least one LLM or embedding request (the probe
    #: cannot see requests a library sends from a helper thread that does not carry the
    #: turn's context, e.g. LangMem's InMemoryStore search; the overhead shows the wait).
    waits_for_model: bool = False

    def __init__(self, env: BenchEnv) -> None:
        self.env = env

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Build what the whole run shares (clients, stores). Not timed."""

    @abc.abstractmethod
    def begin_session(self, user_id: str, session_index: int) -> None:
        """A new chat session (new thread / memory object) for this user. Not timed."""

    @abc.abstractmethod
    def run_turn(self, turn: Turn) -> None:
        """One full chat turn through the framework: the part that is timed."""

    def injected(self, prompt: str) -> bool:
        """Whether the chat model's prompt carried this system's long-term memory."""
        return False

    def settle(self) -> None:  # noqa: B027 - optional hook
        """Finish, in real time, the background work a days-long pause before the next
        session would have triggered (idle flushes, debounced reflection). Not timed."""

    def sim_elapse(self, clock: SimClock, seconds: float) -> None:  # noqa: B027
        """Pace simulation: ``seconds`` of simulated time pass with no new turn. The system
        lets its background machinery do what it would in that time (see ``pace.py``)."""

    def drain(self) -> None:  # noqa: B027 - optional hook
        """Finish background work (processing) so its LLM cost is complete. Not timed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
