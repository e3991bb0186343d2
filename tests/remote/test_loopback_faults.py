"""The remote backend against a loopback Memobase fake that misbehaves like a real server.

Real sockets on 127.0.0.1 (``fake_server.LoopbackServer``): a server that never answers,
one that answers late, one that is killed and restarted mid-burst. Nothing here asserts a
speed: the read-deadline test allows ten times the deadline, the fail-fast tests count
connections at the server instead of timing, and the event-loop tests compare the largest
gap between ticks with a delay the server was told to inject (a causal check).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from llama_index.core.base.llms.types import ChatMessage
from pydantic import Field
from support import wait_until

from langchain_memobase import MemobaseMiddleware
from llamaindex_memobase import MemobaseMemory
from memobase_integrations import errors
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.facade import Memobase
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.models import BlobType, ChatBlob, ChatModalResponse, SummaryBlob
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.values import ContextOptions, ProfileOptions

from .fake_server import FakeMemobase, LoopbackServer, loopback

KEY = "sk-proj-faults-test"


def quick_policy(**overrides: Any) -> FlushPolicy:
    values: dict[str, Any] = {
        "buffer_token_threshold": 100_000,
        "idle_flush_seconds": None,
        "worker_poll_seconds": 0.01,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.1,
        "close_timeout_seconds": 30,
    }
    values.update(overrides)
    return FlushPolicy(**values)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    fake = FakeMemobase()
    with loopback(fake) as srv:
        srv.start()
        yield srv


class Clock:
    """A clock the breaker reads, moved by the test (no sleeping through a cool-down)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeModel(GenericFakeChatModel):
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


# -- 4. bounded reads and the circuit breaker -------------------------------------------------


def test_a_hanging_read_ends_at_its_deadline_and_the_next_ones_fail_fast(
    server: LoopbackServer, tmp_path: Path
) -> None:
    fake = server.fake
    fake.fault = lambda method, path: "hang" if "/users/context/" in path else None
    backend = RemoteBackend(
        server.url,
        KEY,
        outbox_path=tmp_path / "o.db",
        read_deadline=0.5,
        breaker_cooldown=30,
        max_retries=2,
        retry_backoff=0.01,
    )
    clock = Clock()
    backend._http.breaker._clock = clock
    user = uuid4()
    started = time.monotonic()
    with pytest.raises(errors.MemobaseTimeoutError):
        backend.context(user, ContextOptions())
    assert time.monotonic() - started < 5.0  # 10x the deadline; unbounded it hangs forever
    seen = (server.connections, len(fake.requests))

    # open: request-path reads answer at once, without even connecting
    for _ in range(3):
        with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
            backend.context(user, ContextOptions())
        with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
            asyncio.run(backend.acontext(user, ContextOptions()))
    with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
        backend.profile(user, ProfileOptions())
    mb = Memobase(backend)
    assert _langchain_turn(mb) == "answered without memory"
    assert asyncio.run(_llamaindex_turn(mb)) == "no memory block"
    assert (server.connections, len(fake.requests)) == seen  # nothing reached the server

    # cool-down over: one probe goes out (and hangs again, to its deadline)
    clock.now += 31
    with pytest.raises(errors.MemobaseTimeoutError):
        backend.context(user, ContextOptions())
    assert len(fake.requests) == seen[1] + 1
    with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
        backend.context(user, ContextOptions())
    # the server recovers: the next probe succeeds and closes the breaker
    fake.fault = None
    clock.now += 31
    assert "Memory" in backend.context(user, ContextOptions())
    assert "Memory" in backend.context(user, ContextOptions())
    assert len(fake.requests) == seen[1] + 3
    mb.close()


def test_a_stale_context_stands_in_while_the_server_is_down(
    server: LoopbackServer, tmp_path: Path
) -> None:
    mb = Memobase.remote(server.url, KEY, outbox_path=tmp_path / "o.db", max_retries=0)
    alice = mb.user("alice")
    before = alice.context()
    alice.add_profile("Alice", "basic_info", "name")  # the cached context is stale now
    server.kill()
    assert alice.context() == before  # the last known context, not an error
    with pytest.raises(errors.MemobaseConnectionError):
        mb.user("bob").context()  # nothing known: the fail-open path (adapters answer without)
    mb.close()


def _langchain_turn(mb: Memobase) -> str:
    model = FakeModel(messages=iter([AIMessage("Hello!")]))
    agent = create_agent(
        model,
        system_prompt="You are helpful.",
        middleware=[MemobaseMiddleware(mb, user_id="alice", record=False)],
    )
    result = agent.invoke({"messages": [HumanMessage("hi")]})
    assert result["messages"][-1].content == "Hello!"
    system = model.seen[0][0].content
    return "answered without memory" if "Memory" not in str(system) else "memory injected"


async def _llamaindex_turn(mb: Memobase) -> str:
    memory = MemobaseMemory.from_defaults("alice", mb, session_id="s1")
    await memory.aput(ChatMessage(role="user", content="hi"))
    messages = await memory.aget()
    text = " ".join(str(m.content) for m in messages)
    return "no memory block" if "Memory" not in text else "memory block"


# -- 14/15. close(timeout) --------------------------------------------------------------------


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_close_stops_a_delivery_stuck_on_a_silent_server(
    server: LoopbackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = server.fake
    fake.fault = lambda method, path: "hang" if "/blobs/insert/" in path else None
    outbox = tmp_path / "o.db"
    backend = RemoteBackend(server.url, KEY, outbox_path=outbox, timeout=60, policy=quick_policy())
    user = uuid4()
    backend.record(user, turn_to_blobs([Message.of("user", "I play chess.")]), "t1")
    wait_until(lambda: any("/blobs/insert/" in p for _, p in fake.requests), "send in flight")
    with caplog.at_level(logging.INFO, logger="memobase_integrations"):
        backend.close(timeout=0.5)
    assert _threads("memobase-outbox") == [] and _threads("memobase-listeners") == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    fake.fault = None
    again = RemoteBackend(server.url, KEY, outbox_path=outbox, policy=quick_policy())
    wait_until(lambda: again.status().pending_turns == 0, "delivered at the next start")
    again.close()
    assert fake.processed_keys() == [(str(user), "t1", 0)]


def _resources() -> tuple[int, int, int]:
    """Live threads, open file descriptors, child processes of this process."""
    threads = sum(1 for t in threading.enumerate() if t.is_alive())
    fds = len(os.listdir("/proc/self/fd"))
    me = str(os.getpid())
    children = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            children += fields[1] == me  # the parent pid
    return threads, fds, children


def test_a_hundred_create_close_cycles_leave_nothing_behind(
    server: LoopbackServer, tmp_path: Path
) -> None:
    def cycle(n: int) -> None:
        mb = Memobase.remote(server.url, KEY, outbox_path=tmp_path / "o.db", policy=quick_policy())
        user = mb.user(f"user-{n % 7}")
        user.record([{"role": "user", "content": f"fact {n}"}], turn_id=f"t{n}")
        user.context()
        asyncio.run(user.acontext(max_token_size=200))
        if n % 10 == 0:
            user.flush()  # listeners and the context refresher run
        mb.close()

    cycle(0)  # warm up: lazy imports, the server's first threads
    gc.collect()
    baseline = _resources()
    for n in range(1, 101):
        cycle(n)
    gc.collect()

    def settled() -> bool:
        gc.collect()
        return all(now <= then for now, then in zip(_resources(), baseline, strict=True))

    wait_until(settled, f"resources back to {baseline} (now {_resources()})", timeout=30)
    processed = {t for _, t, _ in server.fake.processed_keys()}
    assert processed == {f"t{n}" for n in range(101)}


# -- 3. nothing blocks the event loop ---------------------------------------------------------

HOLD = 1.5  # seconds the context endpoint is held (the listener's I/O)


@dataclass
class Ticks:
    gaps: list[float]

    @property
    def largest(self) -> float:
        return max(self.gaps, default=0.0)


async def _ticking(stop: asyncio.Event, ticks: Ticks) -> None:
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        ticks.gaps.append(now - last)
        last = now


def _facade(server: LoopbackServer, tmp_path: Path) -> Memobase:
    return Memobase.remote(server.url, KEY, outbox_path=tmp_path / "o.db", policy=quick_policy())


async def _run_held(
    server: LoopbackServer, call: Callable[[], Awaitable[object]], done: Callable[[], bool]
) -> tuple[bool, Ticks]:
    """Run ``call`` while the context endpoint is held for HOLD seconds; tick meanwhile.

    Returns whether ``call`` returned before the endpoint was released, and the ticks up to
    the moment ``done()`` (the listener's work finished).
    """
    server.gate.clear()
    timer = threading.Timer(HOLD, server.gate.set)
    ticks = Ticks([])
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticking(stop, ticks))
    await asyncio.sleep(0.02)
    timer.start()
    try:
        await asyncio.wait_for(call(), 60)
        returned_early = not server.gate.is_set()
        await asyncio.to_thread(wait_until, done, "the listener's work")
    finally:
        timer.cancel()
        server.gate.set()
        stop.set()
        await ticker
    return returned_early, ticks


def _hold_context(server: LoopbackServer) -> None:
    server.fake.fault = lambda method, path: "gate" if "/users/context/" in path else None


@pytest.mark.parametrize("method", ["ainsert", "aflush", "aflush_summary"])
async def test_async_calls_that_notify_never_stall_the_loop(
    server: LoopbackServer, tmp_path: Path, method: str
) -> None:
    """The facade refreshes a cached context when processing finished; with a held context
    endpoint that refresh waits HOLD seconds. The loop must keep ticking, and the call must
    return without waiting for it."""
    mb = _facade(server, tmp_path)
    user = mb.user("alice")
    key = ContextOptions().cache_key()
    await user.acontext()  # cached, so processing triggers a refresh
    if method == "aflush":
        await user.arecord([{"role": "user", "content": "I like tea."}], turn_id="t1")
        await asyncio.to_thread(
            wait_until, lambda: mb.status().users[0].pending_turns == 0, "delivered"
        )
        call: Callable[[], Awaitable[object]] = user.aflush
    elif method == "aflush_summary":
        await user.ainsert(SummaryBlob(summary="Alice likes tea."))

        def call() -> Awaitable[object]:
            return user.aflush(BlobType.summary)
    else:

        def call() -> Awaitable[object]:
            blob = ChatBlob(messages=[Message.of("user", "I like tea.").to_wire()])
            return user.ainsert(blob, wait_process=True)

    _hold_context(server)
    returned_early, ticks = await _run_held(
        server, call, lambda: mb._cache.get(user.id, key) is not None
    )
    assert returned_early, "the call waited for the listener's I/O"
    assert ticks.largest < HOLD / 2, f"the loop stalled for {ticks.largest:.2f}s"
    await mb.aclose()


async def test_aclose_and_the_outbox_never_run_listeners_on_the_loop(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A backend listener doing blocking I/O (here: held for HOLD seconds) runs on the
    listener thread while aclose drains and flushes; the loop keeps ticking."""
    backend = RemoteBackend(server.url, KEY, outbox_path=tmp_path / "o.db", policy=quick_policy())
    heard: list[UUID] = []
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def listener(user_id: UUID, results: Sequence[ChatModalResponse]) -> None:
        threads.append(threading.get_ident())
        server.gate.wait(60)
        heard.append(user_id)

    backend.add_listener(listener)
    user = uuid4()
    await backend.arecord(user, turn_to_blobs([Message.of("user", "I like tea.")]), "t1")
    returned_early, ticks = await _run_held(server, backend.aclose, lambda: heard == [user])
    assert ticks.largest < HOLD / 2, f"the loop stalled for {ticks.largest:.2f}s"
    assert threads and loop_thread not in threads
    del returned_early  # aclose lets listeners finish within its budget, by design


# -- the fault run ----------------------------------------------------------------------------


class Chaos:
    """Faults for inserts, searches and flushes, from a seeded generator (reproducible)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.on = True

    def __call__(self, method: str, path: str) -> str | None:
        if not self.on:
            return None
        roll = self.rng.random()
        if "/blobs/insert/" in path:
            if roll < 0.05:
                return "crash_between"  # blob stored, buffer row lost, connection dropped
            if roll < 0.10:
                return "drop_after"
            if roll < 0.15:
                return "drop_before"
        if "/users/buffer/" in path and "capacity" not in path and roll < 0.10:
            return "drop_after"  # processed, answer lost
        if path.startswith("/api/v1/users/blobs/") and roll < 0.05:
            return "drop_before"
        return None


def test_fault_run_loses_nothing_processes_nothing_twice_and_a_refusal_blocks_nothing(
    tmp_path: Path,
) -> None:
    fake = FakeMemobase()
    chaos = Chaos(seed=12)
    fake.fault = chaos
    server = LoopbackServer(fake, restartable=True)
    server.start()
    backend = RemoteBackend(
        server.url,
        KEY,
        outbox_path=tmp_path / "o.db",
        timeout=5,
        max_retries=1,
        retry_backoff=0.001,
        retry_backoff_max=0.005,
        policy=quick_policy(buffer_token_threshold=300, idle_flush_seconds=0.05),
    )
    users = [uuid4() for _ in range(5)]
    expected: set[tuple[str, str, int]] = set()
    lock = threading.Lock()

    def burst(worker: int) -> None:
        for n in range(20):
            for user in users:
                text = f"Worker {worker} fact {n}: I visited town {n} with cousin {worker}."
                blobs = turn_to_blobs([Message.of("user", text), Message.of("assistant", "Ok")])
                turn_id = f"w{worker}-n{n}"
                backend.record(user, blobs, turn_id)
                with lock:
                    expected.update((str(user), turn_id, i) for i in range(len(blobs)))
                if worker == 0 and n == 4 and user == users[0]:
                    # a turn the server refuses for good, between this user's turns
                    store = backend._open_store()
                    bodies = backend._turn_bodies(turn_to_blobs([Message.of("user", "x")]), "nul")
                    bodies[0]["blob_data"]["messages"][0]["content"] = "NUL \x00 here"
                    store.add(backend._scope, user, "nul", bodies)
            time.sleep(0.01)

    def outages() -> None:
        for _ in range(4):
            time.sleep(0.25)
            server.kill()  # in-flight requests lose their answers; new ones are refused
            time.sleep(0.15)
            server.start()

    workers = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    killer = threading.Thread(target=outages)
    for t in [*workers, killer]:
        t.start()
    for t in [*workers, killer]:
        t.join(120)
    try:
        wait_until(
            lambda: set(fake.processed_keys()) >= expected and backend.status().pending_turns == 1,
            "every turn processed",
            timeout=120,
        )
        chaos.on = False
        backend.close()
        processed = Counter(fake.processed_keys())
        assert set(processed) == expected  # nothing lost, and the refused turn not processed
        assert [k for k, count in processed.items() if count > 1] == []  # nothing twice
        [failure] = backend.failures()
        assert failure.turn_id == "nul" and failure.parked and failure.user_id == users[0]
        assert "UntranslatableCharacter" in failure.error
        # the refused turn held nothing back: users[0]'s later turns were processed
        assert {(str(users[0]), "w0-n19", 0), (str(users[0]), "w3-n19", 0)} <= set(processed)
        with fake.lock:  # no copy of ours is left where a later flush would process it
            idle = [b for u in fake.blobs.values() for b in u.values() if b.status == "idle"]
        assert idle == []
        kinds = Counter(kind for kind, _, _ in fake.faults)
        assert kinds["crash_between"] > 0 and kinds["drop_after"] > 0
        print(f"fault run: {len(expected)} blobs, faults {dict(kinds)}, {server.kills} kills")
    finally:
        backend.close(timeout=1)
        server.stop()
