"""``SpyBackend``: the in-memory backend, plus what adapter tests need to observe and provoke.

The storage, processing and context are the real engine's (``InMemoryBackend``); the spy only
adds, around each Backend protocol method called from outside:

* ``calls`` (a Counter by method name: ``record`` and ``arecord`` apart; :meth:`count` sums
  both) and ``log`` (each call's arguments and result);
* ``fail[name] = exc``: raise ``exc`` from that method and its twin (``fail["context"]``
  covers ``acontext`` too) before the backend is touched;
* ``delay``: seconds each call takes first (``asyncio.sleep`` in async twins);
* ``sync_on_loop``: sync methods called while an event loop runs in the calling thread
  (a blocking call inside async code, which fail-open adapters would otherwise hide);
  ``loops``: the event loops async twins ran on; ``max_in_flight``.

Calls the backend makes to itself (``aflush`` runs ``flush`` in a thread) are not counted.
Seeding goes through the real methods without being counted: :meth:`add_fact`
(a profile row), :meth:`seed` (record and process a turn: events come from processing,
as in production), :meth:`process` (tell listeners a user was processed).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from memobase_integrations.backends.base import Backend
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import ChatBlob, EventData, EventTag, Profile, UserEvent
from memobase_integrations.testing import InMemoryBackend
from memobase_integrations.values import ContextOptions, RecordReceipt

__all__ = ["Call", "RecordedTurn", "SpyBackend"]

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("spy_inside", default=False)

PROTOCOL = frozenset(
    name for name, member in vars(Backend).items() if callable(member) and not name.startswith("_")
)


def base_name(name: str) -> str:
    """``acontext`` -> ``context``; names without an async twin stay as they are."""
    return name[1:] if name.startswith("a") and name[1:] in PROTOCOL else name


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class RecordedTurn:
    """A turn the adapter recorded (a new one, not a replay)."""

    user_id: uuid.UUID
    turn_id: str
    blobs: list[ChatBlob]

    @property
    def lines(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for b in self.blobs for m in b.messages]


class SpyBackend(InMemoryBackend):
    """See the module doc."""

    def __init__(self, *, delay: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.calls: Counter[str] = Counter()
        self.log: list[Call] = []
        self.fail: dict[str, BaseException] = {}
        self.delay = delay
        self.sync_on_loop: list[str] = []
        self.loops: set[int] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self._spy_lock = threading.Lock()

    # -- what tests read ------------------------------------------------------------------
    def count(self, name: str) -> int:
        """Calls of ``name`` and its async twin."""
        return self.calls[name] + self.calls[f"a{name}"]

    def of(self, name: str) -> list[Call]:
        """The calls of ``name`` and its twin, in order."""
        return [c for c in self.log if base_name(c.name) == name]

    @property
    def turns(self) -> list[RecordedTurn]:
        return [
            RecordedTurn(c.args[0], c.args[2], list(c.args[1]))
            for c in self.of("record")
            if isinstance(c.result, RecordReceipt) and not c.result.duplicate
        ]

    @property
    def context_requests(self) -> list[tuple[uuid.UUID, ContextOptions]]:
        """``(user_id, options)`` of every context read."""
        return [(c.args[0], c.args[1]) for c in self.of("context")]

    @property
    def deleted(self) -> list[uuid.UUID]:
        """The users ``delete_user`` was called for, in order."""
        return [c.args[0] for c in self.of("delete_user")]

    def turns_of(self, user_id: uuid.UUID) -> list[RecordedTurn]:
        return [t for t in self.turns if t.user_id == user_id]

    def recorded(self, user_id: uuid.UUID) -> list[list[tuple[str, str]]]:
        """Each recorded turn of the user as ``[(role, content), ...]``."""
        return [t.lines for t in self.turns_of(user_id)]

    # -- seeding (real methods, not counted) ------------------------------------------------
    @contextmanager
    def quietly(self) -> Iterator[None]:
        token = _inside.set(True)
        try:
            yield
        finally:
            _inside.reset(token)

    def _profiles(self, user_id: uuid.UUID) -> list[Profile]:
        """The user's profile rows, read from the store (no spied call, no filter)."""
        return [p.to_model() for p in self.store.list_profiles(user_id)]

    def add_fact(self, user_id: uuid.UUID, topic: str, sub_topic: str, content: str) -> Profile:
        with self.quietly():
            row = self.add_profile(user_id, content, topic, sub_topic)
            return next(p for p in self._profiles(user_id) if p.id == row)

    def set_profile(self, user_id: uuid.UUID, lines: Sequence[str]) -> None:
        """Make the user's profile exactly ``lines`` (``"topic::sub_topic: content"`` each,
        as a context shows them). Listeners are not told: a cached context stays until
        :meth:`process` (as when another process changed the store)."""
        with self.quietly():
            for row in self._profiles(user_id):
                self.delete_profile(user_id, row.id)
            for line in lines:
                slot, content = line.split(": ", 1)
                topic, sub_topic = slot.split("::", 1)
                self.add_profile(user_id, content, topic, sub_topic)

    def seed(self, user_id: uuid.UUID, *texts: str) -> None:
        """Record each text as a user turn and process it, one at a time (so each becomes
        an event of its own, newest last; the stand-in's rules decide what is kept)."""
        with self.quietly():
            for text in texts:
                self.record(user_id, turn_to_blobs([Message.of("user", text)]), str(uuid.uuid4()))
                self.flush(user_id)

    def add_event(
        self, user_id: uuid.UUID, tip: str, tags: dict[str, str] | None = None
    ) -> UserEvent:
        """An event with exactly this tip and these tags, made the real way: a turn is
        processed into an event (its profile rows are removed again), then ``update_event``
        sets the tip and tags."""
        with self.quietly():
            rows_before = {p.id for p in self._profiles(user_id)}
            events_before = {e.id for e in self.events(user_id, topk=10_000)}
            self.seed(user_id, "I'm going to Paris next week.")
            for row in self._profiles(user_id):
                if row.id not in rows_before:
                    self.delete_profile(user_id, row.id)
            (event,) = [e for e in self.events(user_id, topk=10_000) if e.id not in events_before]
            data = EventData(
                event_tip=tip,
                event_tags=[EventTag(tag=k, value=v) for k, v in (tags or {}).items()],
            )
            self.update_event(user_id, event.id, data)
            (updated,) = [e for e in self.events(user_id, topk=10_000) if e.id == event.id]
            return updated

    def process(self, user_id: uuid.UUID) -> None:
        """Tell the listeners the user was processed, as the backend does after a flush."""
        self.processor.notify(user_id, [])

    # -- instrumentation --------------------------------------------------------------------
    def _enter(self, name: str) -> None:
        with self._spy_lock:
            self.calls[name] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._spy_lock:
            self.in_flight -= 1


def _sync_spy(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def spied(self: SpyBackend, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return fn(self, *args, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self.sync_on_loop.append(name)
        self._enter(name)
        token = _inside.set(True)
        try:
            if self.delay:
                time.sleep(self.delay)
            failure = self.fail.get(base_name(name))
            if failure is not None:
                raise failure
            result = fn(self, *args, **kwargs)
        except BaseException as exc:
            self.log.append(Call(name, args, kwargs, error=exc))
            raise
        finally:
            _inside.reset(token)
            self._leave()
        self.log.append(Call(name, args, kwargs, result))
        return result

    return spied


def _async_spy(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def spied(self: SpyBackend, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return await fn(self, *args, **kwargs)
        self.loops.add(id(asyncio.get_running_loop()))
        self._enter(name)
        token = _inside.set(True)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            failure = self.fail.get(base_name(name))
            if failure is not None:
                raise failure
            result = await fn(self, *args, **kwargs)
        except BaseException as exc:
            self.log.append(Call(name, args, kwargs, error=exc))
            raise
        finally:
            _inside.reset(token)
            self._leave()
        self.log.append(Call(name, args, kwargs, result))
        return result

    return spied


for _name in sorted(PROTOCOL - {"add_listener", "close", "aclose"}):
    _fn = getattr(InMemoryBackend, _name)
    _wrap = _async_spy if inspect.iscoroutinefunction(_fn) else _sync_spy
    setattr(SpyBackend, _name, _wrap(_name, _fn))
