"""The embedded backend's flush worker in a child process (``worker="process"``).

Why a process: a flush is LLM calls plus parsing and a result transaction, and in one
interpreter the parsing and SQLAlchemy work hold the GIL for milliseconds at a time. A
``record`` on the app's request thread then waits for the GIL (and, with a fast LLM, for the
worker's next write), which is what pushed its p95 from about 1 ms to 8 ms under load.
Moving the worker into its own interpreter leaves the app's GIL to the app.

The child (:mod:`.worker_child`) is the same :class:`~.worker.FlushWorker` on the same store;
the store's leases already make several processes safe. This class is its handle in the app:
the same ``wake`` / ``request`` / ``stop`` / ``alive`` as the thread worker, messages over the
child's stdin/stdout (:mod:`.worker_channel`), processed notifications and log records sent
back and replayed here, and a restart with backoff if the child dies.

The configuration, including the API key and the database URL, goes to the child over its
stdin, never on its command line (which other users of the machine can read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from ..models import BlobType, ChatModalResponse
from .worker import StopOutcome
from .worker_channel import read_frame, write_frame

__all__ = ["ProcessWorker", "process_worker_obstacle"]

logger = logging.getLogger(__name__)

#: Extra time ``stop`` gives the child beyond the drain budget (interpreter start, imports).
STOP_GRACE_SECONDS = 2.0
#: Restart backoff after the child dies unexpectedly: 1 s doubling up to this.
MAX_RESTART_DELAY_SECONDS = 60.0
#: A child that has not said "ready" by then is taken for one that cannot start.
STARTUP_TIMEOUT_SECONDS = 60.0
#: Consecutive failed starts after which ``on_give_up`` is called (if given).
MAX_FAILED_STARTS = 3
#: Explicit flush requests kept to replay into a restarted child.
_MAX_REPLAYED_REQUESTS = 10_000
#: How long ``stop`` waits for the handle's own threads once the child is gone.
_THREAD_JOIN_SECONDS = 5.0
#: The exit code with which the child says "stopped, but the drain did not finish in time".
_UNFINISHED_EXIT_CODE = 3

ProcessedCallback = Callable[[UUID, Sequence[ChatModalResponse]], None]
GiveUpCallback = Callable[[str], None]


def process_worker_obstacle(config: dict[str, Any], *, in_memory: bool) -> str | None:
    """Why the worker cannot run in a child process, or ``None`` if it can.

    Pure: looks only at what it is given and at how this interpreter was started.
    """
    if in_memory:
        return "an in-memory SQLite database exists only inside this process"
    llm = config.get("llm")
    if llm is not None and (
        getattr(llm, "http_client", None) is not None
        or getattr(llm, "async_http_client", None) is not None
    ):
        return "LLMSettings carries an injected http_client, which cannot cross processes"
    if getattr(sys, "frozen", False) or not sys.executable:
        return "this interpreter cannot start another one (frozen app or no sys.executable)"
    try:
        pickle.dumps(config)
    except Exception as exc:  # what pickle raises for a lambda, a lock, a socket... varies
        return f"the backend options cannot be sent to another process ({exc})"
    return None


class ProcessWorker:
    """Runs and supervises the flush-worker child process.

    ``config`` is the child's ``EmbeddedBackend`` keyword arguments (check it first with
    :func:`process_worker_obstacle`); ``on_processed`` gets each processed notification, on
    this handle's reader thread. ``on_give_up``, if given, is called (and restarts stop) when
    the child failed to start ``MAX_FAILED_STARTS`` times in a row - e.g. an embedding host
    whose ``sys.executable`` is not a Python interpreter - so the caller can fall back to a
    thread; without it, restarts go on with backoff.

    ``wake`` and ``request`` are called from ``record`` and must never block, so they only
    note what to send; a sender thread writes it to the pipe (a stalled child fills the pipe
    and stalls that thread, never the caller). Wake-ups coalesce, requests are de-duplicated,
    and the requests of a child that died are replayed into its successor.
    """

    def __init__(
        self,
        config: dict[str, Any],
        on_processed: ProcessedCallback,
        *,
        on_give_up: GiveUpCallback | None = None,
        name: str = "memobase-flush-process",
    ) -> None:
        self._config = config
        self._on_processed = on_processed
        self._on_give_up = on_give_up
        self._ready = threading.Event()
        self._failed_starts = 0
        self._name = name
        self._cond = threading.Condition()
        self._wake_pending = False
        self._to_send: dict[tuple[UUID, BlobType], None] = {}
        self._sent: dict[tuple[UUID, BlobType], None] = {}
        self._stop_message: tuple[Any, ...] | None = None
        self._write_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._stopping = False
        self._stopped = threading.Event()
        self._restart_delay = 1.0
        self._threads: list[threading.Thread] = []
        self._spawning = False
        self._watchdog: threading.Timer | None = None
        self.pid: int | None = None
        self.restarts = 0
        #: The exit code of the child when ``stop`` found it dead (``StopOutcome.DIED``).
        self.exit_code: int | None = None
        #: What must live as long as this worker runs (its backend, whose exit hook drains).
        self.owner: object = None

    # -- the handle (same surface as FlushWorker) ----------------------------------------
    def start(self) -> None:
        self._spawn()
        self._run_thread(self._send_loop, f"{self._name}-send")

    def _run_thread(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    @property
    def alive(self) -> bool:
        proc = self._proc
        return not self._stopping and proc is not None and proc.poll() is None

    def wake(self) -> None:
        with self._cond:
            self._wake_pending = True
            self._cond.notify_all()

    def request(self, user_id: UUID, blob_type: BlobType) -> None:
        with self._cond:
            self._to_send[(user_id, blob_type)] = None
            self._cond.notify_all()

    def stop(self, *, drain: bool, timeout: float) -> StopOutcome:
        """Ask the child to stop (draining first if asked) and wait up to ``timeout`` plus a
        short grace for it to exit; a child that does not is terminated.

        ``FINISHED``: it drained and exited in time. ``TIMED_OUT``: it did not (unfinished
        work stays leased and is picked up on the next start). ``DIED``: the child was not
        running - it had died and its restart was pending - or died while draining, so
        nothing was drained through it (``exit_code`` says how it ended) and the caller
        should drain inline. Either way no thread, pipe or process of this handle is left
        behind when it returns.
        """
        budget = max(0.0, timeout)
        with self._cond:
            self._stopping = True
            while self._spawning:  # a restart in progress: stop the child it starts
                self._cond.wait()
            self._stop_message = ("stop", drain, budget)
            self._cond.notify_all()
        self._stopped.set()
        self._cancel_watchdog()
        proc = self._proc
        try:
            if proc is None or proc.poll() is not None:
                self.exit_code = None if proc is None else proc.returncode
                return StopOutcome.DIED
            try:
                code = proc.wait(budget + STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                return StopOutcome.TIMED_OUT
            if code == 0:
                return StopOutcome.FINISHED
            if code == _UNFINISHED_EXIT_CODE:
                return StopOutcome.TIMED_OUT
            self.exit_code = code
            return StopOutcome.DIED
        finally:
            self._close_stdin()
            self._join_threads()

    def _cancel_watchdog(self) -> None:
        with self._cond:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()

    def _join_threads(self) -> None:
        """Wait (bounded) for the sender and reader threads: the child is gone, so the reader
        sees end-of-file and the sender has written its last frame or found the pipe shut."""
        deadline = time.monotonic() + _THREAD_JOIN_SECONDS
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # -- the child -------------------------------------------------------------------------
    def _spawn(self) -> None:
        env = dict(os.environ)
        # Make the child import this very copy of the package, even from a source checkout.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "memobase_integrations.backends.worker_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        config = dict(self._config)
        config["log_level"] = logging.getLogger("memobase_integrations").getEffectiveLevel()
        with self._cond:
            replay = list(self._sent)
        ready = self._ready = threading.Event()
        with self._write_lock:
            self._proc, self._stdin, self.pid = proc, proc.stdin, proc.pid
            self._write(("config", config))
            for user_id, blob_type in replay:
                self._write(("request", str(user_id), blob_type.value))
        self._run_thread(self._read, self._name, proc, proc.stdout, ready)
        # Kills a child that never says "ready"; cancelled by "ready" and by stop(), so a
        # closed backend keeps no timer thread (nor, through it, the child's pipes) alive.
        watchdog = threading.Timer(STARTUP_TIMEOUT_SECONDS, self._kill_if_silent, (proc, ready))
        watchdog.daemon = True
        self._cancel_watchdog()
        with self._cond:
            self._watchdog = watchdog
        watchdog.start()

    @staticmethod
    def _kill_if_silent(proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        if not ready.is_set() and proc.poll() is None:
            logger.warning(
                "memobase: the flush worker process %s did not start within %.0fs; killing it",
                proc.pid,
                STARTUP_TIMEOUT_SECONDS,
            )
            proc.kill()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._wake_pending or self._to_send or self._stop_message):
                    self._cond.wait()
                wake, self._wake_pending = self._wake_pending, False
                requests, self._to_send = list(self._to_send), {}
                stop = self._stop_message
                if len(self._sent) + len(requests) <= _MAX_REPLAYED_REQUESTS:
                    self._sent.update(dict.fromkeys(requests))
            with self._write_lock:
                for user_id, blob_type in requests:
                    self._write(("request", str(user_id), blob_type.value))
                if wake and not requests:
                    self._write(("wake",))
                if stop is not None:
                    self._write(stop)
                    return

    def _write(self, message: tuple[Any, ...]) -> None:
        """Write one frame to the current child (caller holds ``_write_lock``). A failure
        means the child is gone: the reader notices and restarts it, replaying requests."""
        if self._stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                write_frame(self._stdin, message)

    def _close_stdin(self) -> None:
        with self._write_lock:
            stdin, self._stdin = self._stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read(
        self, proc: subprocess.Popen[bytes], stream: IO[bytes], ready: threading.Event
    ) -> None:
        started = time.monotonic()
        try:
            while True:
                message = read_frame(stream)
                try:
                    self._dispatch(message)
                except Exception:
                    logger.exception("memobase: handling a message from the worker failed")
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()  # the pipe's fd goes with the child, not with a GC cycle
        code = proc.wait()
        if self._stopping:
            return
        self._failed_starts = 0 if ready.is_set() else self._failed_starts + 1
        if self._on_give_up is not None and self._failed_starts >= MAX_FAILED_STARTS:
            self._close_stdin()
            with self._cond:
                self._stopping = True
                # Release the sender: its last frame goes nowhere (no stdin), then it ends.
                self._stop_message = ("stop", False, 0.0)
                self._cond.notify_all()
            self._cancel_watchdog()
            self._on_give_up(
                f"the worker process failed to start {self._failed_starts} times in a row "
                f"(last exit code {code})"
            )
            return
        if time.monotonic() - started > MAX_RESTART_DELAY_SECONDS:
            self._restart_delay = 1.0  # it ran for a while: not a crash loop
        delay = self._restart_delay
        self._restart_delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)
        logger.warning(
            "memobase: the flush worker process %s exited unexpectedly (code %s); restarting it "
            "in %.0fs. Buffered turns are safe in the store.",
            proc.pid,
            code,
            delay,
        )
        self._close_stdin()
        if self._stopped.wait(delay):
            return
        with self._cond:
            if self._stopping:
                return
            self.restarts += 1
            self._spawning = True
        try:
            self._spawn()
        except OSError:
            logger.exception("memobase: could not restart the flush worker process")
        finally:
            with self._cond:
                self._spawning = False
                self._cond.notify_all()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        match message:
            case ("processed", user_id, responses):
                uid = UUID(user_id)
                with self._cond:
                    self._sent.pop((uid, BlobType.chat), None)
                    self._sent.pop((uid, BlobType.summary), None)
                parsed = [ChatModalResponse.model_validate(r) for r in responses]
                self._on_processed(uid, parsed)
            case ("log", name, level, text):
                logging.getLogger(name).log(level, "[worker process %s] %s", self.pid, text)
            case ("ready", pid):
                self._ready.set()
                self._cancel_watchdog()
                logger.debug("memobase: flush worker process %s is ready", pid)
            case ("stopped", finished):
                logger.debug("memobase: flush worker process stopped (finished=%s)", finished)
            case _:
                logger.debug("memobase: unknown message from the worker process: %r", message)
