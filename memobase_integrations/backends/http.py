"""Speaking HTTP to a Memobase server: URLs, query encoding, retries and error mapping.

Everything here is about the wire, not about memory: :class:`HttpCore` sends one described
request (:class:`~.wire.Request`) with the sync or the async httpx client, retries it only
when that is safe, unwraps the ``{data, errno, errmsg}`` envelope and turns every failure
into one of the :mod:`memobase_integrations.errors` types (the mapping: :mod:`.http_errors`;
the breaker: :mod:`.breaker`).

Retries (tenacity, exponential backoff with jitter) are deliberately narrow:

* reads (``GET``) are retried on connection errors, timeouts and HTTP 502/503/504;
* writes are retried only when the request certainly never left this machine
  (:class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`, :class:`httpx.PoolTimeout`).
  A write whose answer was lost (read timeout, dropped connection) may have been applied, so
  re-sending it is the caller's decision (the outbox resolves it by asking the server).

Reads are bounded as a whole: ``read_deadline`` covers every attempt *and* the backoff
between them (each attempt's httpx timeout is cut to what is left; the async path also runs
under ``asyncio.timeout``). A :class:`CircuitBreaker` remembers that the server just failed:
for ``breaker_cooldown`` seconds the reads an app makes on its request path (context,
profile, events, searches: ``Call.request_path``) fail at once without a connection attempt,
then one probe goes out. Any answer from the server closes the breaker again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import weakref
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

import httpx
import tenacity

from .. import errors
from .breaker import CircuitBreaker
from .http_errors import (
    SendOutcome,
    UnsendableRequestError,
    answered,
    clean_errmsg,
    error_from_response,
    error_from_transport,
    refusal_is_permanent,
    retry_predicate,
    send_outcome,
    server_down,
)
from .wire import API_PREFIX, NO_BODY, Call, JsonParam, Request, encode_query, normalise_project_url

__all__ = [
    "API_PREFIX",
    "Call",
    "CircuitBreaker",
    "HttpCore",
    "JsonParam",
    "Request",
    "SendOutcome",
    "UnsendableRequestError",
    "clean_errmsg",
    "encode_query",
    "normalise_project_url",
    "refusal_is_permanent",
    "send_outcome",
]

T = TypeVar("T")


class HttpCore:
    """Sends :class:`Request` objects over one sync client and one async client per loop.

    An :class:`httpx.AsyncClient` is bound to the event loop it first ran on; using it from
    another loop fails with "Event loop is closed". Apps (and test suites) do use several
    loops, so one async client is created lazily per running loop.

    The sockets the sync client opens are remembered (httpx's ``trace`` extension reports
    each new connection), so :meth:`abort` can interrupt a request that is blocked waiting
    for an answer: ``close(timeout)`` uses it to stop the outbox thread on time.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "memobase-integrations",
        read_deadline: float | None = None,
        breaker_cooldown: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        #: Total seconds a read may take, every attempt and backoff included.
        self.read_deadline = timeout * (max_retries + 1) if read_deadline is None else read_deadline
        self.breaker = CircuitBreaker(breaker_cooldown)
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._transport = transport
        self._async_transport = async_transport
        self._sync: httpx.Client | None = None
        self._lock = threading.Lock()
        # Keyed by the loop itself (not weakly: uvloop's loops take no weak references);
        # clients of closed loops are dropped on the next lookup.
        self._async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpCore(base_url={self.base_url!r})"

    # -- clients ----------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise errors.MemobaseError(
                    "This Memobase client is closed. Create a new one (or do not call close() "
                    "before you are done with it)."
                )
            if self._sync is None:
                self._sync = httpx.Client(
                    base_url=self.base_url,
                    headers=self._headers,
                    timeout=self.timeout,
                    transport=self._transport,
                )
            return self._sync

    async def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise errors.MemobaseError(
                    "This Memobase client is closed. Create a new one (or do not call close() "
                    "before you are done with it)."
                )
            for old in [other for other in self._async if other.is_closed()]:
                del self._async[old]  # its connections died with the loop
            client = self._async.get(loop)
            if client is not None:
                return client
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self.timeout,
                transport=self._async_transport,
            )
            self._async[loop] = client
        # Close the client (and its sockets) while its loop still runs: asyncio.run() and
        # well-behaved loop owners close every live async generator before closing the loop
        # (``shutdown_asyncgens``), so this one's ``finally`` runs on that loop, in time.
        closer = self._close_with_loop(loop, client)
        await closer.asend(None)
        with self._lock:
            self._closers[loop] = closer
        return client

    async def _close_with_loop(
        self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._async.get(loop) is client:
                    del self._async[loop]
                self._closers.pop(loop, None)
            await client.aclose()

    # -- sending ----------------------------------------------------------------------------
    def _retrying_kwargs(self, call: Call) -> dict[str, Any]:
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.max_retries + 1)
        if call.idempotent_read:
            # Never start an attempt (or a backoff sleep) that would end past the deadline.
            stop = stop | tenacity.stop_before_delay(self.read_deadline)
        return {
            "retry": tenacity.retry_if_exception(retry_predicate(call)),
            "stop": stop,
            "wait": tenacity.wait_exponential_jitter(
                multiplier=self.backoff, max=self.backoff_max, jitter=self.backoff
            ),
            "reraise": True,
        }

    def _build(self, req: Request[Any]) -> dict[str, Any]:
        """httpx arguments; the JSON body is encoded here, so a body that cannot be sent
        (a lone surrogate has no UTF-8 form) is a typed, permanent refusal, not a crash."""
        kwargs: dict[str, Any] = {"params": list(req.params)}
        if req.json is not NO_BODY:
            try:
                content = json.dumps(
                    req.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                ).encode("utf-8")
            except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
                raise UnsendableRequestError(
                    f"{req.call} cannot be sent: its body is not valid JSON text "
                    f"({type(exc).__name__}: {clean_errmsg(str(exc), 120)}). What to do: "
                    "remove the offending characters (e.g. unpaired surrogates) from the "
                    "text and record it again."
                ) from exc
            kwargs["content"] = content
            kwargs["headers"] = {"Content-Type": "application/json"}
        return kwargs

    def _attempt_timeout(self, call: Call, deadline: float | None) -> float:
        """This attempt's httpx timeout: the per-attempt timeout, cut to the deadline."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._deadline_error(call)
        return min(self.timeout, left)

    def _deadline_error(self, call: Call) -> errors.MemobaseTimeoutError:
        return errors.MemobaseTimeoutError(
            f"{call} did not finish within its {self.read_deadline:g}s deadline (retries "
            f"included; server {self.base_url}). What to do: check that the server is up "
            "and reachable; raise read_deadline= if your server is slow.",
        )

    def _gate(self, call: Call) -> bool:
        """Admit a request; ``True`` when it is the breaker's probe. Refuses request-path
        reads while the breaker is open."""
        if not call.request_path:
            return False
        if self.breaker.admit():
            return self.breaker.is_open
        raise errors.MemobaseConnectionError(
            f"{call} was not sent: the Memobase server at {self.base_url} failed moments ago "
            f"({self.breaker.last_error or 'no answer'}), so request-path reads answer at "
            f"once for {self.breaker.cooldown:g}s before trying it again (next try in "
            f"{self.breaker.retry_in():.1f}s). What to do: nothing; memory comes back when "
            "the server does (check its health if this persists).",
        )

    def _record(self, exc: BaseException | None, probe: bool) -> None:
        if exc is None:
            self.breaker.succeeded()
        elif server_down(exc):
            message = exc.message if isinstance(exc, errors.MemobaseError) else str(exc)
            self.breaker.failed(clean_errmsg(message, 160))
        elif answered(exc):
            self.breaker.succeeded()  # the server answered (with a refusal): it is up
        elif probe:
            self.breaker.release_probe()

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx ``trace`` hook: remember every socket the sync client connects."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            get = getattr(stream, "get_extra_info", None)
            sock = get("socket") if get is not None else None
            if isinstance(sock, socket.socket):
                self._sockets.add(sock)

    def _finish(self, req: Request[T], response: httpx.Response) -> T:
        error = error_from_response(req.call, response)
        if error is not None:
            raise error
        data = response.json().get("data")
        try:
            return req.parse(data)
        except (ValueError, TypeError, KeyError) as exc:  # pydantic.ValidationError is a ValueError
            raise errors.ServerError(
                f"{req.call} answered data this client cannot read "
                f"({clean_errmsg(str(exc), 200)}). "
                "What to do: check that the server runs a Memobase version compatible with "
                "this client (0.0.40+).",
                status_code=response.status_code,
            ) from exc

    def send(self, req: Request[T]) -> T:
        """Send with the sync client (retrying where safe) and return the parsed ``data``.

        A read gives up after ``read_deadline`` seconds in total; a request-path read fails
        at once while the breaker is open.
        """
        client = self._client()
        probe = self._gate(req.call)
        path = req.url_path()
        kwargs = self._build(req)
        kwargs["extensions"] = {"trace": self._trace}
        deadline = time.monotonic() + self.read_deadline if req.call.idempotent_read else None
        try:
            for attempt in tenacity.Retrying(**self._retrying_kwargs(req.call)):
                with attempt:
                    timeout = self._attempt_timeout(req.call, deadline)
                    try:
                        response = client.request(req.call.method, path, timeout=timeout, **kwargs)
                    except httpx.HTTPError as exc:
                        raise error_from_transport(req.call, exc, self.base_url, timeout) from exc
                    result = self._finish(req, response)
                    self._record(None, probe)
                    return result
        except BaseException as exc:
            self._record(exc, probe)
            raise
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def asend(self, req: Request[T]) -> T:
        """The async twin of :meth:`send` (native httpx.AsyncClient, asyncio sleeps); the
        read deadline is also enforced by ``asyncio.timeout``."""
        client = await self._aclient()
        probe = self._gate(req.call)
        path = req.url_path()
        kwargs = self._build(req)
        read = req.call.idempotent_read
        deadline = time.monotonic() + self.read_deadline if read else None
        try:
            async with asyncio.timeout(self.read_deadline if read else None):
                async for attempt in tenacity.AsyncRetrying(**self._retrying_kwargs(req.call)):
                    with attempt:
                        timeout = self._attempt_timeout(req.call, deadline)
                        try:
                            response = await client.request(
                                req.call.method, path, timeout=timeout, **kwargs
                            )
                        except httpx.HTTPError as exc:
                            raise error_from_transport(
                                req.call, exc, self.base_url, timeout
                            ) from exc
                        result = self._finish(req, response)
                        self._record(None, probe)
                        return result
        except TimeoutError as exc:  # asyncio.timeout: the deadline passed mid-attempt
            error = self._deadline_error(req.call)
            self._record(error, probe)
            raise error from exc
        except BaseException as exc:
            self._record(exc, probe)
            raise
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # -- closing ----------------------------------------------------------------------------
    def abort(self) -> None:
        """Interrupt every request of the sync client that is waiting on the network.

        Shutting a socket down wakes a thread blocked reading from it at once (closing it
        would not); the request then fails as a lost connection, which the outbox records
        as "answer lost" (it asks the server before sending again).
        """
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the sync client; async clients are dropped (their loops may be gone)."""
        with self._lock:
            self._closed = True
            sync, self._sync = self._sync, None
            self._async = {}
        if sync is not None:
            sync.close()

    async def aclose(self) -> None:
        """Close the client of the running loop properly, then the rest like :meth:`close`."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            loop = None
        with self._lock:
            closer = self._closers.pop(loop, None) if loop is not None else None
            mine = self._async.pop(loop) if loop is not None and loop in self._async else None
        if closer is not None:
            await closer.aclose()  # its ``finally`` closes the client
        if mine is not None:
            await mine.aclose()
        self.close()
