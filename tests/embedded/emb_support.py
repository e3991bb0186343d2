"""Helpers for the embedded-engine tests: database targets, a tapping LLM transport, turns.

``Tap`` wraps the stand-in LLM's httpx transport. It lets a test see every request the
pipeline made (step, markers of the turns in an entry-summary prompt, calling thread), inject
faults per step (timeout, HTTP 500, empty/null answers, garbage, half-formatted lines) and
refuse calls from a given thread - while the real ``openai`` client code path runs.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.settings import FlushPolicy, LLMSettings

if TYPE_CHECKING:
    from memobase_integrations.testing import StandInLLM

#: A chat line of a turn marker as ``render_chat_line`` writes it: ``[ts] user: turn mk-3-17 ...``.
MARKER_LINE = re.compile(r"\] user: turn (mk-\d+-\d+)\b")

#: Processing only when the test asks (no threshold, idle or close flush).
MANUAL = FlushPolicy(
    buffer_token_threshold=10**9,
    idle_flush_seconds=None,
    flush_on_close=False,
    worker_poll_seconds=0.05,
)


def manual(**updates: Any) -> FlushPolicy:
    """:data:`MANUAL` with some fields changed."""
    return MANUAL.model_copy(update=updates)


@dataclass(frozen=True)
class DbTarget:
    """Where a test's store lives: a URL plus the engine options isolating it."""

    kind: str
    url: str
    engine_options: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    def backend_kwargs(self) -> dict[str, Any]:
        return {"database_url": self.url, "engine_options": dict(self.engine_options)}

    def argv(self) -> list[str]:
        """For child processes: the URL and the PostgreSQL schema ("-" for none)."""
        return [self.url, self.schema or "-"]


def pg_engine_options(schema: str) -> dict[str, Any]:
    return {"connect_args": {"options": f"-csearch_path={schema}"}}


@contextmanager
def pg_schema(base_url: str) -> Iterator[DbTarget]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"mbt_{uuid.uuid4().hex[:12]}"
    url = base_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield DbTarget("postgres", url, pg_engine_options(schema), schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# -- the LLM tap -------------------------------------------------------------------------------


def completion(content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "test",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


Fault = Callable[[httpx.Request], httpx.Response]


def fault(kind: str, text: str = "") -> Fault:
    """A fault to inject: ``timeout``, ``http500``, ``null``, ``text`` (answer ``text``)."""

    def inject(request: httpx.Request) -> httpx.Response:
        if kind == "timeout":
            raise httpx.ReadTimeout("simulated read timeout", request=request)
        if kind == "http500":
            return httpx.Response(500, json={"error": {"message": "simulated failure"}})
        if kind == "null":
            return httpx.Response(200, json=completion(None))
        if kind == "text":
            return httpx.Response(200, json=completion(text))
        raise ValueError(kind)

    return inject


@dataclass
class Call:
    step: str
    thread: int
    markers: list[str]
    user: str


class Tap(httpx.BaseTransport):
    """Delegates to the stand-in; records, injects faults, guards threads."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self.faults: dict[str, Fault] = {}
        self.forbidden_threads: set[int] = set()
        self.violations: list[str] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        step = request.headers.get("x-memobase-step", "?")
        user = ""
        if request.url.path.endswith("/chat/completions"):
            body = json.loads(request.content)
            user = body["messages"][-1]["content"]
        call = Call(step, threading.get_ident(), MARKER_LINE.findall(user), user)
        with self._lock:
            self.calls.append(call)
            if call.thread in self.forbidden_threads:
                self.violations.append(step)
                raise RuntimeError(f"LLM called on a forbidden thread (step {step})")
            inject = self.faults.get(step)
        if inject is not None:
            return inject(request)
        return self.inner.handle_request(request)

    # -- views ----------------------------------------------------------------------------
    def steps(self) -> Counter[str]:
        return Counter(c.step for c in self.calls)

    def summarized_markers(self) -> list[list[str]]:
        """The turn markers of each entry-summary call, in call order."""
        return [c.markers for c in self.calls if c.step == "entry_summary"]


def tapped_settings(
    standin: StandInLLM | None = None, **overrides: Any
) -> tuple[LLMSettings, Tap, StandInLLM]:
    """LLMSettings on the stand-in through a :class:`Tap` (no openai retries: faults are
    seen once, and quickly)."""
    from memobase_integrations.testing import StandInLLM

    standin = standin or StandInLLM()
    tap = Tap(standin.transport())
    base = standin.settings()
    settings = base.model_copy(
        update={"http_client": httpx.Client(transport=tap), "max_retries": 0, **overrides}
    )
    return settings, tap, standin


# -- conversations -----------------------------------------------------------------------------


def turn(user: str, assistant: str = "I see.", when: str | None = None) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]
    if when:
        for m in msgs:
            m["created_at"] = when
    return msgs


def marker_turn(user_no: int, n: int) -> list[dict[str, Any]]:
    """A small turn carrying a unique marker the Tap can find in entry-summary prompts."""
    return turn(f"turn mk-{user_no}-{n} about the weather today", "Noted.")


#: The ``make_backend`` fixture's type: builds an EmbeddedBackend on the test's database.
BackendFactory = Callable[..., EmbeddedBackend]
