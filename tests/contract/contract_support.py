"""The four backends every contract check runs on, behind one :class:`Subject`
(the ``subject`` fixture is in ``conftest.py``).

* ``memory``: :class:`~memobase_integrations.testing.InMemoryBackend`.
* ``sqlite``: the embedded engine on a SQLite file, with its background worker.
* ``postgres``: the embedded engine on PostgreSQL (``MEMOBASE_TEST_POSTGRES_URL``; skipped,
  visibly, only when it is unset), with its background worker.
* ``remote``: a ``RemoteBackend`` (its outbox and delivery thread) talking over loopback HTTP
  to the project's own ``serve`` on the embedded engine (SQLite).

All process with the offline stand-in LLM (rules, not a model) and never on their own
(no threshold or idle flush): a check decides when processing happens. Automatic retries
wait for minutes, so a failed turn stays failed until the check acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import httpx
from support.serving import Store, serving, sqlite_store

from memobase_integrations import Memobase, UserMemory
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import InMemoryBackend, StandInLLM

KINDS = ["memory", "sqlite", "postgres", "remote"]

#: Processing only when a check asks; a failed turn is not retried behind its back.
CONTRACT_POLICY = FlushPolicy(
    buffer_token_threshold=10**9,
    idle_flush_seconds=None,
    flush_on_close=False,
    worker_poll_seconds=0.05,
    retry_base_seconds=600,
    retry_max_seconds=600,
)

#: The remote backend delivers at once and retries a failed delivery after minutes.
REMOTE_POLICY = CONTRACT_POLICY.model_copy(update={"worker_poll_seconds": 0.01})


class Refusal:
    """A switch in front of the remote backend's transports: when on, the server "refuses"
    every blob upload as invalid (422), which the outbox takes as permanent and parks."""

    def __init__(self) -> None:
        self.on = False

    def answer(self, request: httpx.Request) -> httpx.Response | None:
        if self.on and "/blobs/insert/" in request.url.path:
            detail = [{"type": "value_error", "loc": ["body"], "msg": "refused by the test"}]
            return httpx.Response(422, json={"detail": detail}, request=request)
        return None


class _SyncTransport(httpx.HTTPTransport):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.refusal.answer(request) or super().handle_request(request)


class _AsyncTransport(httpx.AsyncHTTPTransport):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.refusal.answer(request) or await super().handle_async_request(request)


@dataclass
class Subject:
    """One backend under test, behind the facade, with the levers the checks need."""

    kind: str
    mb: Memobase
    #: Make every later processing attempt (remote: delivery attempt) fail, until ``heal``.
    break_processing: Callable[[], None]
    heal: Callable[[], None]
    #: The stand-in that processes this backend's turns (the server's, for ``remote``).
    llm: StandInLLM
    users: list[UserMemory] = field(default_factory=list)

    def user(self) -> UserMemory:
        """A user of this test alone."""
        user = self.mb.user(f"contract-{uuid4().hex[:10]}")
        self.users.append(user)
        return user


def embedded_subject(kind: str, store: Store) -> Iterator[Subject]:
    llm = StandInLLM()
    mb = Memobase.embedded(
        store.url,
        llm=llm.settings(),
        policy=CONTRACT_POLICY,
        engine_options=dict(store.engine_options),
    )
    try:
        yield Subject(
            kind,
            mb,
            lambda: llm.fail_next(None, "http500", times=None),
            llm.clear_faults,
            llm,
        )
    finally:
        mb.close(timeout=30)


def memory_subject() -> Iterator[Subject]:
    backend = InMemoryBackend()
    llm = backend.stand_in
    mb = Memobase(backend)
    try:
        yield Subject(
            "memory", mb, lambda: llm.fail_next(None, "http500", times=None), llm.clear_faults, llm
        )
    finally:
        mb.close(timeout=30)


def remote_subject(tmp_path: Path) -> Iterator[Subject]:
    with ExitStack() as stack:
        served = stack.enter_context(serving(sqlite_store(tmp_path)))
        refusal = Refusal()
        mb = Memobase.remote(
            served.url,
            served.token,
            outbox_path=tmp_path / "outbox.db",
            policy=REMOTE_POLICY,
            max_retries=0,
            timeout=120,
            read_deadline=120,
            breaker_cooldown=0,
            transport=_SyncTransport(refusal),
            async_transport=_AsyncTransport(refusal),
        )
        stack.callback(mb.close, 30)

        def refuse() -> None:
            refusal.on = True

        def heal() -> None:
            refusal.on = False

        yield Subject("remote", mb, refuse, heal, served.llm)


def differs(subject: Subject, kinds: set[str], reason: str) -> bool:
    """True when ``subject`` is one of the backends that legitimately behave otherwise for
    this check; ``reason`` documents why at the call site (and in a failure message)."""
    assert reason, "say why the backend differs"
    return subject.kind in kinds
