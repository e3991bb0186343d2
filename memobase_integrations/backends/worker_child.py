"""The flush-worker process: ``python -m memobase_integrations.backends.worker_child``.

Started by :class:`~.worker_process.ProcessWorker`, never by hand. It runs the same
:class:`~.worker.FlushWorker` the thread mode runs, against the same store, so processing
(LLM calls, parsing, the result transaction) happens outside the app's interpreter and never
competes with ``record`` for the app's GIL. It builds only what processing needs (a store, an
LLM client, a :class:`~.processor.Processor`), runs at a lower CPU priority
(``FlushPolicy.worker_nice``) and is woken by the app's pipe and, on PostgreSQL, by
``LISTEN/NOTIFY`` (:mod:`..engine.notify`); it polls only as a safety net.

Lifetime: the parent's pipe is the child's lifeline. A ``stop`` message drains (if asked) and
exits; end-of-file on stdin means the parent is gone (even by SIGKILL), and the child stops
at once without draining - whatever it had claimed stays leased, the lease expires and the
next worker takes the turns over, exactly as after any crash.

The real stdout becomes the private message channel; ``sys.stdout`` is pointed at stderr so
a stray ``print`` in user code or a library can never corrupt a frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from typing import IO, Any

from .worker_channel import read_frame, write_frame

__all__ = ["main"]


class _Channel:
    """The child's side of the pipe: thread-safe writes, broken pipe means the parent is gone."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False

    def send(self, *message: Any) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                write_frame(self._stream, message)
            except (OSError, ValueError):
                self.broken = True


class _ForwardLogs(logging.Handler):
    """Sends this package's log records to the parent, which logs them under its own config."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._channel.send("log", record.name, record.levelno, text)
        except Exception:  # logging must never take the worker down
            self.handleError(record)


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group; the app decides when its worker
    # stops (close() drains through it), so the child does not die with the first SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_fd = os.dup(1)
    os.dup2(2, 1)  # fd 1 is stderr from here on: prints cannot reach the channel
    sys.stdout = sys.stderr
    channel = _Channel(os.fdopen(channel_fd, "wb"))
    inbox = sys.stdin.buffer

    try:
        kind, config = read_frame(inbox)
    except EOFError:
        return 0
    if kind != "config":
        print(f"memobase worker: expected a config frame, got {kind!r}", file=sys.stderr)
        return 2

    package_logger = logging.getLogger("memobase_integrations")
    package_logger.setLevel(config.pop("log_level", logging.WARNING))
    package_logger.addHandler(_ForwardLogs(channel))
    package_logger.propagate = False

    _lower_priority(config.pop("nice", 0))
    # Imported after the pipe is set up so an import-time message cannot corrupt it.
    from ..models import BlobType, ChatModalResponse
    from .worker import FlushWorker, StopOutcome

    processor, listener = _open_processor(config)
    # This process exists to process: pay the first-use costs (the openai SDK, the o200k
    # encoder) now, in the background while idle, not in the first flush - and never
    # before a "stop" can be read (a short-lived worker must not wait for them).
    from .. import tokens

    tokens.preload()
    threading.Thread(target=processor.llm.warm_up, name="memobase-warm-up", daemon=True).start()

    def forward(user_id: uuid.UUID, responses: Sequence[ChatModalResponse]) -> None:
        channel.send("processed", str(user_id), [r.model_dump(mode="json") for r in responses])

    processor.add_listener(forward)
    worker = FlushWorker(processor, processor.policy, name="memobase-flush")
    worker.start()
    listener.start_for(worker.wake)
    channel.send("ready", os.getpid())

    def close_all() -> None:
        listener.stop()
        processor.close()
        processor.llm.close()
        processor.store.close()

    while True:
        try:
            message = read_frame(inbox)
        except EOFError:
            # The parent is gone: stop without draining; leases cover what was in flight.
            worker.stop(drain=False, timeout=0.0)
            os._exit(0)
        match message:
            case ("wake",):
                worker.wake()
            case ("request", user_id, blob_type):
                worker.request(uuid.UUID(user_id), BlobType(blob_type))
            case ("stop", drain, timeout):
                outcome = worker.stop(drain=bool(drain), timeout=float(timeout))
                finished = outcome is StopOutcome.FINISHED
                if finished:
                    close_all()
                channel.send("stopped", finished)
                # A worker thread still inside an LLM call is abandoned, not joined: its
                # claim's lease expires and the next start takes the turns over.
                os._exit(0 if finished else 3)
            case _:
                package_logger.warning("memobase worker: ignoring unknown message %r", message[0])


def _lower_priority(increment: int) -> None:
    """Run below the app's CPU priority (``FlushPolicy.worker_nice``): processing can wait
    a moment, a request cannot. Best effort: not every platform or sandbox allows it."""
    if increment > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(increment)


class _Listener:
    """The PostgreSQL wake-ups of this worker, if the store offers them."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._listener: Any = None

    def start_for(self, wake: Any) -> None:
        from ..engine.notify import TurnListener

        listener = TurnListener(self._engine, wake)
        if listener.start():
            self._listener = listener

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()


def _open_processor(config: dict[str, Any]) -> tuple[Any, _Listener]:
    """Only what processing needs: the store, the LLM client and the processor (no reader,
    no recorder, no ``EmbeddedBackend``)."""
    from ..engine.llm import LLMClient
    from ..engine.llm_gate import LLMGate
    from ..engine.store import Store
    from .processor import Processor
    from .project_config import ConfigCache

    policy = config["policy"]
    store = Store(config["database_url"], engine_options=config.get("engine_options"), create=False)
    gate = LLMGate(policy.max_llm_requests, max_pause_seconds=policy.llm_pause_max_seconds)
    llm = LLMClient(config["llm"], gate)
    processor = Processor(
        store,
        llm,
        policy,
        config=ConfigCache(store),
        lease_seconds=config["lease_seconds"],
        keep_processed_blobs=config["keep_processed_blobs"],
    )
    return processor, _Listener(store.engine)


if __name__ == "__main__":
    sys.exit(main())
