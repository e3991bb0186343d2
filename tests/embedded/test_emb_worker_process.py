"""The flush worker in a child process (``EmbeddedBackend(worker="process")``).

The stand-in LLM is served on loopback from this test process, so every request the worker
process makes is answered - and counted - here, while this process's own httpx clients are
watched to prove it made none of them. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from embedded.emb_support import MARKER_LINE, BackendFactory, DbTarget, marker_turn, turn
from pydantic import SecretStr
from support import wait_until

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.backends.worker_process import ProcessWorker, process_worker_obstacle
from memobase_integrations.errors import ConfigurationError
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.settings import FlushPolicy, LLMSettings
from memobase_integrations.testing import StandInLLM
from memobase_integrations.values import ProfileOptions

CHILD = Path(__file__).with_name("emb_child.py")

#: Small threshold and a fast poll, so the worker process flushes while the test records.
POLICY = FlushPolicy(
    buffer_token_threshold=60,
    idle_flush_seconds=None,
    flush_on_close=True,
    worker_poll_seconds=0.05,
    retry_base_seconds=0.2,
)


@pytest.fixture
def stand_in() -> Iterator[tuple[StandInLLM, LLMSettings]]:
    llm = StandInLLM()
    with llm.serve() as url:
        yield llm, LLMSettings(base_url=url, api_key=SecretStr("placeholder-llm-key-value"))


@pytest.fixture
def parent_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The address of every TCP connection *this* process opens. Patched at the socket, so
    no HTTP stack (httpx, the ``httpx2`` fork recent ``openai`` releases use) goes unseen."""
    seen: list[Any] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        seen.append(address)
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def summarized_markers(llm: StandInLLM) -> list[str]:
    return [
        m
        for call in llm.history
        if call.step == "entry_summary"
        for m in MARKER_LINE.findall(call.user)
    ]


def app_argv(db: DbTarget, settings: LLMSettings, *, turns: int) -> list[str]:
    """An app process (``emb_child.py procworker``) with a worker process on the stand-in."""
    assert settings.base_url is not None
    return [sys.executable, str(CHILD), "procworker", *db.argv(), settings.base_url, str(turns)]


def in_flight(backend: EmbeddedBackend, user: uuid.UUID) -> bool:
    return any(u.processing for u in backend.status(user).users)


def pid_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan nobody reaped is dead too)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


# -- choosing where the worker runs ------------------------------------------------------------


def test_obstacles_name_what_prevents_a_worker_process() -> None:
    plain = {"database_url": "sqlite:///x.db", "llm": LLMSettings(base_url="http://h/v1")}
    assert process_worker_obstacle(plain, in_memory=False) is None
    assert "in-memory" in (process_worker_obstacle(plain, in_memory=True) or "")
    injected = {**plain, "llm": StandInLLM().settings()}
    assert "http_client" in (process_worker_obstacle(injected, in_memory=False) or "")
    creator = {**plain, "engine_options": {"creator": lambda: None}}
    assert "cannot be sent" in (process_worker_obstacle(creator, in_memory=False) or "")


def test_auto_uses_a_thread_when_a_process_cannot_work(tmp_path: Path) -> None:
    injected = EmbeddedBackend(f"sqlite:///{tmp_path / 'a.db'}", llm=StandInLLM().settings())
    memory = EmbeddedBackend("sqlite://", llm=LLMSettings(base_url="http://127.0.0.1:9/v1"))
    unconfigured = EmbeddedBackend(f"sqlite:///{tmp_path / 'b.db'}", llm=LLMSettings())
    try:
        assert [b.worker_mode for b in (injected, memory, unconfigured)] == ["thread"] * 3
        assert injected.worker_pid is None
    finally:
        for backend in (injected, memory, unconfigured):
            backend.close(timeout=0)


def test_asking_for_an_impossible_worker_process_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"http_client.*worker='thread'"):
        EmbeddedBackend(
            f"sqlite:///{tmp_path / 'a.db'}", llm=StandInLLM().settings(), worker="process"
        )
    with pytest.raises(ConfigurationError, match="'auto', 'thread' or 'process'"):
        EmbeddedBackend(f"sqlite:///{tmp_path / 'b.db'}", worker="processes")  # type: ignore[arg-type]


# -- the worker process at work ----------------------------------------------------------------


def test_worker_process_processes_every_turn_once_and_this_process_calls_no_llm(
    db: DbTarget,
    make_backend: BackendFactory,
    stand_in: tuple[StandInLLM, LLMSettings],
    parent_connections: list[Any],
) -> None:
    llm, settings = stand_in
    backend = make_backend(llm=settings, policy=POLICY)
    assert backend.worker_mode == "process" and backend.worker_pid not in (None, os.getpid())
    notified: list[uuid.UUID] = []
    backend.add_listener(lambda user_id, responses: notified.append(user_id))

    users = [uuid.uuid4() for _ in range(3)]
    recorded = []
    for n in range(60):
        k = n % 3
        backend.record(users[k], turn_to_blobs(marker_turn(k, n)), f"mk-{k}-{n}")
        recorded.append(f"mk-{k}-{n}")
    wait_until(lambda: len(notified) >= 3, "the worker process to flush")
    backend.close(timeout=30)  # drains the rest through the worker process

    counts = collections.Counter(summarized_markers(llm))
    assert set(counts) == set(recorded)  # every turn reached the LLM...
    assert max(counts.values()) == 1  # ...exactly once
    assert set(notified) == set(users)  # processed notifications came back to this process
    llm_port = httpx.URL(settings.base_url or "").port
    assert [a for a in parent_connections if a[1] == llm_port] == []  # none from this process

    reopened = EmbeddedBackend(start_worker=False, llm=settings, **db.backend_kwargs())
    try:
        assert reopened.status().pending_turns == 0
        # The detector works: an inline flush in this process is seen connecting.
        reopened.record(users[0], turn_to_blobs(turn("I live in Lyon.")), "inline")
        reopened.flush(users[0])
        assert [a for a in parent_connections if a[1] == llm_port] != []
    finally:
        reopened.close(timeout=0)


def test_flush_request_and_retry_reach_the_worker_process(
    make_backend: BackendFactory, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    llm, settings = stand_in
    backend = make_backend(llm=settings, policy=POLICY.model_copy(update={"max_attempts": 1}))
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I work as a nurse.")), "t1")  # under the threshold
    llm.fail_next("entry_summary", "http500", times=None)
    backend.flush(user, wait=False)
    wait_until(lambda: backend.status(user).failed == 1, "the failed flush")
    llm.clear_faults()
    assert backend.retry_failed(user) == 1
    wait_until(lambda: backend.status(user).pending_turns == 0, "the retried flush")
    profiles = backend.profile(user, ProfileOptions())
    assert [(p.sub_topic, p.content.split(" [")[0]) for p in profiles] == [("title", "nurse")]


def test_worker_process_logs_reach_this_process_logger(
    make_backend: BackendFactory,
    stand_in: tuple[StandInLLM, LLMSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm, settings = stand_in
    caplog.set_level(logging.WARNING, logger="memobase_integrations")
    backend = make_backend(llm=settings, policy=POLICY)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I live in Lyon.")), "t1")
    llm.fail_next("entry_summary", "http500", times=None)
    backend.flush(user, wait=False)
    wait_until(lambda: "[worker process" in caplog.text, "a forwarded log record")
    llm.clear_faults()
    forwarded = [r for r in caplog.records if "[worker process" in r.getMessage()]
    assert forwarded[0].name == "memobase_integrations.backends.worker"
    assert str(user) in forwarded[0].getMessage()
    assert "placeholder-llm-key-value" not in caplog.text  # the key never shows in a log line


def test_the_api_key_is_not_on_the_worker_command_line(
    make_backend: BackendFactory, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    _, settings = stand_in
    backend = make_backend(llm=settings, policy=POLICY)
    pid = backend.worker_pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "worker_child" in cmdline
    assert "placeholder-llm-key-value" not in cmdline
    assert "placeholder-llm-key-value" not in repr(backend)


def test_a_killed_worker_process_is_restarted_and_loses_nothing(
    make_backend: BackendFactory, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    llm, settings = stand_in
    llm.delay_s = 0.3  # keep a flush in flight when the worker is killed
    backend = make_backend(llm=settings, policy=POLICY, lease_seconds=1.0)
    first = backend.worker_pid
    assert first is not None
    user = uuid.uuid4()
    turns = [f"mk-0-{n}" for n in range(12)]
    for n, turn_id in enumerate(turns):
        backend.record(user, turn_to_blobs(marker_turn(0, n)), turn_id)
    wait_until(lambda: in_flight(backend, user), "a flush in flight")
    os.kill(first, signal.SIGKILL)

    wait_until(lambda: backend.worker_pid not in (None, first), "a restarted worker")
    llm.delay_s = 0.0
    wait_until(lambda: backend.status(user).pending_turns == 0, "the lease takeover")
    assert not pid_running(first)

    committed = collections.Counter(
        turn_id for entry in backend.export_user(user)["flushes"] for turn_id in entry["turn_ids"]
    )
    assert set(committed) == set(turns) and max(committed.values()) == 1


def test_worker_process_does_not_outlive_a_killed_app(
    db: DbTarget, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    _, settings = stand_in
    app = subprocess.Popen(
        app_argv(db, settings, turns=0),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        line = app.stdout.readline()
        assert line.startswith("W "), line
        worker = int(line.split()[1])
        assert pid_running(worker)
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait(30)
    wait_until(lambda: not pid_running(worker), "the orphaned worker to exit", timeout=30)


def test_a_stalled_worker_process_never_blocks_the_caller(
    make_backend: BackendFactory, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    """Wake-ups and flush requests are handed to a sender thread: with the child frozen
    (SIGSTOP) the pipe fills up, and the caller still returns from every call."""
    _, settings = stand_in
    backend = make_backend(llm=settings, policy=POLICY)
    pid = backend.worker_pid
    assert pid is not None
    user = uuid.uuid4()

    def calls() -> None:
        # Far more than a 64 KiB pipe holds, were each request written on this thread.
        for _ in range(5000):
            backend.flush(uuid.uuid4(), wait=False)
        for n in range(30):
            backend.record(user, turn_to_blobs(marker_turn(0, n)), f"mk-0-{n}")
        backend.flush(user, wait=False)

    caller = threading.Thread(target=calls, daemon=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        caller.start()
        caller.join(120)  # a liveness bound, not a speed target: blocked means never
        assert not caller.is_alive(), "a call blocked on the frozen worker process"
        assert backend.status(user).pending_turns == 30  # nothing processed while frozen
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: backend.status(user).pending_turns == 0, "processing after SIGCONT")


def test_auto_falls_back_to_a_thread_when_the_worker_process_cannot_start(
    make_backend: BackendFactory,
    stand_in: tuple[StandInLLM, LLMSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """E.g. an embedding host whose ``sys.executable`` is not a Python interpreter."""
    llm, settings = stand_in
    monkeypatch.setattr(sys, "executable", "/bin/false")
    backend = make_backend(llm=settings, policy=POLICY)
    assert backend.worker_mode == "process"
    handle = backend._worker
    assert isinstance(handle, ProcessWorker)
    wait_until(lambda: backend.worker_mode == "thread", "the fallback to a thread")
    assert "failed to start 3 times in a row" in caplog.text
    # The given-up handle keeps no thread (its sender used to wait for ever).
    wait_until(
        lambda: not any(t.is_alive() for t in handle._threads), "the handle's threads", timeout=30
    )

    user = uuid.uuid4()
    for n in range(12):
        backend.record(user, turn_to_blobs(marker_turn(0, n)), f"mk-0-{n}")
    wait_until(lambda: backend.status(user).pending_turns == 0, "the thread worker")
    assert sorted(summarized_markers(llm)) == sorted(f"mk-0-{n}" for n in range(12))


def test_interpreter_exit_drains_through_the_worker_process(
    db: DbTarget, stand_in: tuple[StandInLLM, LLMSettings]
) -> None:
    llm, settings = stand_in
    app = subprocess.run(
        app_argv(db, settings, turns=12),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert app.returncode == 0, app.stderr
    worker = int(app.stdout.split()[1])
    assert "RECORDED" in app.stdout
    assert sorted(summarized_markers(llm)) == sorted(f"mk-0-{n}" for n in range(12))
    wait_until(lambda: not pid_running(worker), "the worker to exit", timeout=30)

    reopened = EmbeddedBackend(start_worker=False, **db.backend_kwargs())
    try:
        assert reopened.status().pending_turns == 0
    finally:
        reopened.close(timeout=0)


# -- close(): a dead worker, and nothing left behind (issue 12, items 14 and 15) ----------------


def test_close_after_the_worker_process_died_drains_inline_and_says_so(
    db: DbTarget,
    make_backend: BackendFactory,
    stand_in: tuple[StandInLLM, LLMSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm, settings = stand_in
    policy = POLICY.model_copy(update={"buffer_token_threshold": 10**9})  # only close flushes
    backend = make_backend(llm=settings, policy=policy)
    pid = backend.worker_pid
    assert pid is not None
    user = uuid.uuid4()
    for n in range(3):
        backend.record(user, turn_to_blobs(marker_turn(0, n)), f"mk-0-{n}")
    worker = backend._worker
    assert worker is not None
    worker._restart_delay = 600.0  # type: ignore[union-attr]  # keep it dead until close()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_running(pid), "the worker process to die")
    wait_until(lambda: not worker.alive, "the handle to notice")

    caplog.set_level(logging.WARNING, logger="memobase_integrations")
    backend.close(timeout=60)

    assert "had exited (code -9) before close(); processing what is buffered" in caplog.text
    assert "nothing is left buffered" in caplog.text
    assert "timed out" not in caplog.text
    assert sorted(summarized_markers(llm)) == ["mk-0-0", "mk-0-1", "mk-0-2"]  # once each
    reopened = EmbeddedBackend(start_worker=False, llm=LLMSettings(), **db.backend_kwargs())
    try:
        assert reopened.status(user).pending_turns == 0
    finally:
        reopened.close(timeout=0)


def test_close_without_a_worker_keeps_its_budget_while_the_llm_is_slow(
    make_backend: BackendFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # close() drains in this process when no worker runs; an LLM call slower than the
    # budget used to hold it for the whole call (and the calls after it).
    llm = StandInLLM()
    backend = make_backend(llm=llm.settings(), policy=POLICY, start_worker=False)
    user = uuid.uuid4()
    backend.record(user, turn_to_blobs(turn("I live in Lyon.")), "slow-1")
    llm.delay_s = 8.0
    caplog.set_level(logging.WARNING, logger="memobase_integrations")
    started = time.monotonic()
    backend.close(timeout=0.5)
    elapsed = time.monotonic() - started
    llm.delay_s = 0.0
    assert elapsed < 5.0, elapsed  # a liveness bound (10x the budget), not a speed target
    assert "ran out of time while processing in this process" in caplog.text
    for thread in threading.enumerate():  # let the abandoned drain finish its LLM call
        if thread.name == "memobase-close-drain":
            thread.join(60)


def _children() -> set[int]:
    """Pids of this process's live children (zombies included: an unreaped child leaks)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def _resources() -> tuple[list[str], int, set[int]]:
    threads = sorted(t.name for t in threading.enumerate())
    return threads, len(os.listdir("/proc/self/fd")), _children()


def _cycles(db: DbTarget, settings: LLMSettings, worker: str, n: int) -> None:
    for i in range(n):
        backend = EmbeddedBackend(llm=settings, policy=POLICY, worker=worker, **db.backend_kwargs())  # type: ignore[arg-type]
        assert backend.worker_mode == worker
        if i % 10 == 0:  # now and then a turn, drained through the worker on close
            backend.record(uuid.uuid4(), turn_to_blobs(turn("I live in Lyon.")), f"c{i}")
        backend.close(timeout=60)


#: Create/close cycles per worker kind. A worker process costs an interpreter start (about
#: 2 s per cycle on a loaded 2-core machine), so its count is lower: a leak of one thread,
#: fd or child per cycle shows after 20 cycles as clearly as after 100.
CYCLES = {"thread": 100, "process": 20}


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_create_close_cycles_leave_no_thread_fd_or_process(
    db: DbTarget, stand_in: tuple[StandInLLM, LLMSettings], worker: str
) -> None:
    llm, served = stand_in
    # The thread worker runs the stand-in in-process; the process worker needs its URL.
    settings = llm.settings() if worker == "thread" else served
    _cycles(db, settings, worker, 1)  # warm-up: lazily built module-level state
    gc.collect()
    threads, fds, children = _resources()
    calls = llm.calls
    _cycles(db, settings, worker, CYCLES[worker])
    gc.collect()
    after_threads, after_fds, after_children = _resources()
    # No thread that was not there before (threads of earlier tests may end meanwhile).
    assert not collections.Counter(after_threads) - collections.Counter(threads), after_threads
    assert after_fds <= fds, sorted(os.listdir("/proc/self/fd"))
    assert after_children <= children
    assert llm.calls > calls  # the cycles did process turns on close
