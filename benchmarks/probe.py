"""Count the HTTP requests (LLM, embedding, other network) a chat turn makes its caller wait on.

Every system under test talks to the stand-in LLM, the embedding endpoint and the loopback
Memobase server through ``httpx`` (the ``openai`` client is built on it), so wrapping
``httpx.Client.send`` and ``httpx.AsyncClient.send`` sees all of them.

"On the caller's thread" is decided with a ``ContextVar`` set for the duration of the turn,
not with the thread id alone: an integration that hands a call to a helper thread and waits
for it (a time-out pool that copies the context, ``asyncio.to_thread``, an event-loop task)
still makes the user wait, so such calls count too. Background workers started outside the
turn do not carry the variable and are not counted (their calls are counted at the LLM).
A request sent by a helper after the turn has ended is not counted either. The strict
same-thread count is kept beside it (``same_thread``) for comparison.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx

__all__ = ["CallerThreadProbe", "classify"]

_TURN: ContextVar[int | None] = ContextVar("benchmark_turn", default=None)
_TURN_IDS = itertools.count(1)


def classify(url: httpx.URL) -> str:
    """``llm``, ``embedding`` or ``network`` (anything else, e.g. the Memobase API)."""
    path = url.path
    if path.endswith("/embeddings"):
        return "embedding"
    if path.endswith("/chat/completions") or path.endswith("/completions"):
        return "llm"
    return "network"


class CallerThreadProbe:
    """Patches httpx while installed; :meth:`turn` marks the thread whose calls count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: int | None = None
        self._open_turn: int | None = None
        self.counts: Counter[str] = Counter()
        self.same_thread: Counter[str] = Counter()
        self.turns = 0
        self._originals: list[tuple[Any, Any]] | None = None

    def _note(self, request: httpx.Request) -> None:
        turn = _TURN.get()
        if turn is None or turn != self._open_turn:
            return
        kind = classify(request.url)
        with self._lock:
            self.counts[kind] += 1
            if threading.get_ident() == self._watched:
                self.same_thread[kind] += 1

    def install(self) -> None:
        """Patch ``send`` of httpx's clients, and of ``httpx2``'s when installed: recent
        ``openai`` releases build their default clients on that fork, so a client created from
        a bare URL (mem0's, the embedded engine's) is only seen there."""
        if self._originals is not None:
            return
        probe = self
        originals: list[tuple[Any, Any]] = []  # httpx's or httpx2's client classes
        for module in _http_modules():
            for cls in (module.Client, module.AsyncClient):
                originals.append((cls, cls.send))
                cls.send = _counting(probe, cls.send, is_async=cls is module.AsyncClient)
        self._originals = originals

    def uninstall(self) -> None:
        if self._originals is None:
            return
        for cls, send in self._originals:
            cls.send = send
        self._originals = None

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.same_thread.clear()
            self.turns = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Count the calls made on behalf of the block (one chat turn) while it runs."""
        turn_id = next(_TURN_IDS)
        token = _TURN.set(turn_id)
        self._watched = threading.get_ident()
        self._open_turn = turn_id
        try:
            yield
        finally:
            self._open_turn = None
            self._watched = None
            _TURN.reset(token)
            self.turns += 1

    def per_turn(self) -> float:
        """Average number of LLM + embedding + network calls per turn on the caller's thread."""
        return sum(self.counts.values()) / self.turns if self.turns else 0.0

    def breakdown_per_turn(self) -> dict[str, float]:
        n = self.turns or 1
        return {kind: self.counts.get(kind, 0) / n for kind in ("llm", "embedding", "network")}

    def __enter__(self) -> CallerThreadProbe:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def _http_modules() -> list[Any]:
    modules: list[Any] = [httpx]
    try:
        import httpx2
    except ImportError:
        return modules
    return [*modules, httpx2]


def _counting(probe: CallerThreadProbe, send: Any, *, is_async: bool) -> Any:
    if is_async:

        async def asend(self: Any, request: Any, **kwargs: Any) -> Any:
            probe._note(request)
            return await send(self, request, **kwargs)

        return asend

    def sync_send(self: Any, request: Any, **kwargs: Any) -> Any:
        probe._note(request)
        return send(self, request, **kwargs)

    return sync_send
