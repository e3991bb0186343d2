"""Child process for the crash and multi-process tests (run as a script, not collected).

``python emb_child.py record URL SCHEMA USERS TURNS DELAY``
    Records TURNS small turns round-robin over USERS users with the background worker running
    (low threshold, so flushes happen while recording). After each ``record`` returns it prints
    ``R <turn_id>``; each LLM request prints ``L <step> <in flight> fast|slow`` before it is
    answered (``<in flight>``: LLM requests of this process in flight, this one included). From
    the 200th turn on, requests are answered only after DELAY seconds ("slow"), so a parent that
    kills on a "slow" line kills while that flush's LLM call is surely in flight. The parent
    kills this process with SIGKILL at a moment of its choosing.

``python emb_child.py exit URL SCHEMA TURNS``
    Records TURNS turns for one user (no threshold flush) and returns from the script without
    calling ``close()``: the interpreter-exit hook must drain and flush them.

``python emb_child.py flush URL SCHEMA DELAY MAX_TOKENS USER_ID...``
    Prints ``READY``, waits for a line on stdin, then flushes the users in the given order with
    small batches. Each entry-summary request prints ``S <turn markers in prompt order>``.

``python emb_child.py procworker URL SCHEMA LLM_URL TURNS``
    Opens a backend with ``worker="process"`` against the stand-in served at LLM_URL and prints
    ``W <worker pid>``. With TURNS 0 it waits to be killed (the parent checks the worker does
    not outlive it); otherwise it records TURNS turns for one user (no threshold flush) and
    returns without ``close()``: the exit hook must drain them through the worker process.

SCHEMA is a PostgreSQL schema for ``search_path`` or ``-``.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, as under pytest

from embedded.emb_support import MARKER_LINE, marker_turn, pg_engine_options

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import StandInLLM

_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Announce(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        step = request.headers.get("x-memobase-step", "?")
        if step == "entry_summary":
            markers = MARKER_LINE.findall(request.content.decode("utf-8", "replace"))
            say("S " + " ".join(markers))
        delay = self.delay
        with self.lock:
            self.in_flight += 1
            in_flight = self.in_flight
        try:
            # "L <step> <requests in flight now, this one included> fast|slow"
            say(f"L {step} {in_flight} {'slow' if delay else 'fast'}")
            if delay:
                time.sleep(delay)
            return self.inner.handle_request(request)
        finally:
            with self.lock:
                self.in_flight -= 1


def build(
    url: str, schema: str, delay: float, policy: FlushPolicy, **kw: Any
) -> tuple[EmbeddedBackend, Announce]:
    standin = StandInLLM()
    announce = Announce(standin.transport(), delay)
    settings = standin.settings().model_copy(
        update={"http_client": httpx.Client(transport=announce), "max_retries": 0}
    )
    options = pg_engine_options(schema) if schema != "-" else {}
    backend = EmbeddedBackend(url, llm=settings, policy=policy, engine_options=options, **kw)
    return backend, announce


def user_ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"crash-user-{k}") for k in range(count)]


def record(url: str, schema: str, users: int, turns: int, delay: float) -> None:
    policy = FlushPolicy(
        buffer_token_threshold=120,
        idle_flush_seconds=None,
        flush_on_close=False,
        worker_poll_seconds=0.1,
    )
    backend, announce = build(url, schema, 0.0, policy, lease_seconds=1.0)
    ids = user_ids(users)
    say("READY")
    for n in range(turns):
        if n == 200:
            announce.delay = delay
        k = n % users
        turn_id = f"mk-{k}-{n}"
        backend.record(ids[k], turn_to_blobs(marker_turn(k, n)), turn_id)
        say(f"R {turn_id}")
    say("DONE")
    time.sleep(3600)  # wait to be killed


def exit_without_close(url: str, schema: str, turns: int) -> None:
    policy = FlushPolicy(
        buffer_token_threshold=10**9, idle_flush_seconds=None, close_timeout_seconds=60
    )
    backend, _ = build(url, schema, 0.0, policy)
    user = user_ids(1)[0]
    for n in range(turns):
        backend.record(user, turn_to_blobs(marker_turn(0, n)), f"mk-0-{n}")
    say("RECORDED")
    # No close(): the atexit hook drains the buffer.


def flush(url: str, schema: str, delay: float, max_tokens: int, users: list[str]) -> None:
    policy = FlushPolicy(
        max_process_tokens=max_tokens, idle_flush_seconds=None, flush_on_close=False
    )
    backend, _ = build(url, schema, delay, policy, start_worker=False, lease_seconds=5.0)
    say("READY")
    sys.stdin.readline()
    for user in users:
        backend.flush(uuid.UUID(user))
    backend.close(timeout=5)
    say("DONE")


def process_worker(url: str, schema: str, llm_url: str, turns: int) -> None:
    """With ``turns == 0`` wait to be killed; otherwise record and exit without close()."""
    from pydantic import SecretStr

    from memobase_integrations.settings import LLMSettings

    options = pg_engine_options(schema) if schema != "-" else {}
    settings = LLMSettings(base_url=llm_url, api_key=SecretStr("stand-in"), max_retries=0)
    policy = FlushPolicy(
        buffer_token_threshold=10**9, idle_flush_seconds=None, close_timeout_seconds=60
    )
    backend = EmbeddedBackend(
        url, llm=settings, engine_options=options, worker="process", policy=policy
    )
    say(f"W {backend.worker_pid}")
    if not turns:
        time.sleep(3600)  # wait to be killed
    user = user_ids(1)[0]
    for n in range(turns):
        backend.record(user, turn_to_blobs(marker_turn(0, n)), f"mk-0-{n}")
    say("RECORDED")
    # No close(): the interpreter-exit hook must drain through the worker process.


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "record":
        record(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
    elif command == "exit":
        exit_without_close(args[0], args[1], int(args[2]))
    elif command == "procworker":
        process_worker(args[0], args[1], args[2], int(args[3]))
    elif command == "flush":
        flush(args[0], args[1], float(args[2]), int(args[3]), args[4:])
    else:
        raise SystemExit(f"unknown command {command}")
