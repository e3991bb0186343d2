"""What opens the circuit breaker and what does not (mock transport, a clock the test moves).

The breaker exists so that request-path reads stop paying for a server that is down; it
must not take memory away for a cool-down because of a single dropped connection, and any
answer from the server closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from memobase_integrations import errors
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.values import ContextOptions

CONTEXT = {"data": {"context": "# Memory"}, "errno": 0, "errmsg": ""}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def backend_with(
    tmp_path: Path, answer: Callable[[httpx.Request], httpx.Response]
) -> tuple[RemoteBackend, list[str], Clock]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answer(request)

    backend = RemoteBackend(
        "http://memobase.test",
        "sk-proj-breaker-test",
        outbox_path=tmp_path / "o.db",
        transport=httpx.MockTransport(handler),
        max_retries=0,
        breaker_cooldown=10,
    )
    clock = Clock()
    backend._http.breaker._clock = clock
    return backend, calls, clock


def test_a_refused_connection_opens_it_and_a_probe_closes_it(tmp_path: Path) -> None:
    down = True

    def answer(request: httpx.Request) -> httpx.Response:
        if down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return httpx.Response(200, json=CONTEXT)

    backend, calls, clock = backend_with(tmp_path, answer)
    user = uuid4()
    with pytest.raises(errors.MemobaseConnectionError, match="could not connect"):
        backend.context(user, ContextOptions())
    with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
        backend.context(user, ContextOptions())
    assert len(calls) == 1
    down = False
    clock.now += 11
    assert backend.context(user, ContextOptions()) == "# Memory"  # the probe
    assert backend.context(user, ContextOptions()) == "# Memory"  # closed again
    assert len(calls) == 3
    backend.close()


def test_a_single_dropped_connection_does_not_open_it(tmp_path: Path) -> None:
    drops = 1

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal drops
        if drops:
            drops -= 1
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return httpx.Response(200, json=CONTEXT)

    backend, calls, _ = backend_with(tmp_path, answer)
    user = uuid4()
    with pytest.raises(errors.MemobaseConnectionError, match="lost the connection"):
        backend.context(user, ContextOptions())
    assert backend.context(user, ContextOptions()) == "# Memory"
    assert len(calls) == 2
    backend.close()


def test_any_answer_from_the_server_closes_it(tmp_path: Path) -> None:
    state = "down"

    def answer(request: httpx.Request) -> httpx.Response:
        if state == "down":
            return httpx.Response(503, text="Service Unavailable")  # a gateway: server gone
        if request.url.path.endswith("/project/profile_config"):
            return httpx.Response(200, json={"data": {"profile_config": ""}, "errno": 0})
        return httpx.Response(200, json=CONTEXT)

    backend, calls, _ = backend_with(tmp_path, answer)
    user = uuid4()
    with pytest.raises(errors.ServerError):
        backend.context(user, ContextOptions())
    with pytest.raises(errors.MemobaseConnectionError, match="was not sent"):
        backend.context(user, ContextOptions())
    state = "up"
    assert backend.get_profile_config() == ""  # not gated, and it answered: closes it
    assert backend.context(user, ContextOptions()) == "# Memory"
    assert len(calls) == 3
    backend.close()
