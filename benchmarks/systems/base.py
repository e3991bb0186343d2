"""What every system under test offers the hot-path harness, and the shared run environment."""

from __future__ import annotations

import abc
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.conversations import Turn
from benchmarks.llm import ServedBenchLLM
from benchmarks.probe import CallerThreadProbe

__all__ = ["BenchEnv", "BenchSystem", "Script"]


@dataclass(slots=True)
class Script:
    """The reply the fake chat model gives next: the conversation's own assistant text, so
    every system stores exactly the same bytes."""

    reply: str = "OK."


@dataclass(slots=True)
class BenchEnv:
    """Shared by all systems of one run (one latency mode)."""

    llm: ServedBenchLLM
    probe: CallerThreadProbe
    script: Script = field(default_factory=Script)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mb-bench-")))
    remote_url: str | None = None


class BenchSystem(abc.ABC):
    """One memory system wrapped in its framework's chat loop.

    ``framework`` groups systems with their framework's baseline, the configuration an app has
    before adding long-term memory (overhead is measured against it); ``peer`` marks the
    systems Memobase is compared with; ``floor`` the physical floor.
    """

    name: str = ""
    framework: str = ""
    baseline: bool = False
    peer: bool = False
    memobase: bool = False
    floor: bool = False

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

    def drain(self) -> None:  # noqa: B027 - optional hook
        """Finish background work (processing) so its LLM cost is complete. Not timed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
