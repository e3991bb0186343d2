"""A small imitation of the Memobase server's user, blob and buffer endpoints.

It answers with the shapes and error texts recorded from the real server (``data/``): the
``{data, errno, errmsg}`` envelope, ``errno 404 "User <id> not found"``, the foreign-key
``errno 500`` for an insert without a user, the unique-violation ``errno 500`` for a duplicate
create. Like the real server it deletes chat blobs once a flush processed them, marks the
buffer ``failed`` (keeping the blobs) when its LLM is down, and never retries failed blobs.

It counts what matters for delivery guarantees: every stored blob (``stored``) and every
blob that reached processing (``processed``), both as ``(user, turn_id, blob_index)``.

Like the real server (0.0.42, PostgreSQL) it stores a blob and its buffer row in two
separate commits; the ``"crash_between"`` fault stores the blob, skips the buffer row and
drops the connection, as a server killed between the two does. With ``postgres=True`` (the
default) text containing U+0000 is refused as PostgreSQL refuses it in a JSONB column: HTTP
200, ``errno 500``, ``(psycopg2.errors.UntranslatableCharacter) ...`` (the shape the real
server gave for this input, whose errmsg follows its recorded foreign-key error), and
nothing is stored. Buffer rows have the server's statuses (``idle``, ``processing``,
``failed``); ``GET /users/buffer/capacity`` lists their ids.

Two front ends: :meth:`FakeMemobase.transport` (an ``httpx.MockTransport``) and
:func:`loopback` (a stdlib HTTP server on 127.0.0.1 for real sockets). A ``fault`` hook
decides per request: ``None``, ``"refuse"`` (connection refused), ``"503"`` (a gateway's
HTTP 503, nothing applied), ``"drop_before"`` (connection closed after reading the request,
nothing applied), ``"drop_after"`` (applied, then the connection closed without an answer),
``"crash_between"`` (an insert: blob stored without its buffer row, connection closed),
``"timeout_after"`` (mock only: applied, then a read timeout), and on the loopback server
``"hang"`` (the request is read and never answered), ``"slow:<seconds>"`` (answered after
that delay) and ``"gate"`` (answered once the test sets ``server.gate``). The loopback
server counts the connections it accepted (``connections``) and can be killed (listening
socket closed, every open connection cut) and restarted on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

Fault = Callable[[str, str], str | None]

FK_ERRMSG = (
    "Error inserting blob: (psycopg2.errors.ForeignKeyViolation) insert or update on table "
    '"general_blobs" violates foreign key constraint "general_blobs_user_id_project_id_fkey"\n'
    'DETAIL:  Key (user_id, project_id)=({user}, __root__) is not present in table "users".\n\n'
    "[SQL: INSERT INTO general_blobs (user_id, blob_type, blob_data, project_id, "
    "additional_fields, id) VALUES (...)]\n[parameters: {{...}}]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
)
DUP_ERRMSG = (
    "Sorry, we have encountered an unknown error: \n(psycopg2.errors.UniqueViolation) duplicate "
    'key value violates unique constraint "users_pkey"\nDETAIL:  Key (id, project_id)=({user}, '
    "__root__) already exists.\n\nPlease report this issue to "
    "https://github.com/memodb-io/memobase/issues"
)


NUL_ERRMSG = (
    "Error inserting blob: (psycopg2.errors.UntranslatableCharacter) unsupported Unicode "
    "escape sequence\nDETAIL:  \\u0000 cannot be converted to text.\nCONTEXT:  JSON data, "
    "line 1: ...\n\n[SQL: INSERT INTO general_blobs (user_id, blob_type, blob_data, "
    "project_id, additional_fields, id) VALUES (...)]\n[parameters: {...}]\n"
    "(Background on this error at: https://sqlalche.me/e/20/9h9h)"
)


@dataclass
class _Blob:
    body: dict[str, Any]
    status: str = "idle"  # the buffer row's status; "none": stored without a buffer row

    @property
    def buffer_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(self.body) + str(id(self))))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@dataclass
class FakeMemobase:
    users: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, dict[str, _Blob]] = field(default_factory=dict)
    stored: list[tuple[str, str, int]] = field(default_factory=list)
    processed: list[tuple[str, str, int]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: list[tuple[str, str, str]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    llm_down: bool = False
    postgres: bool = True
    fault: Fault | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    refused: list[tuple[str, str, int]] = field(default_factory=list)

    # -- the API ------------------------------------------------------------------------------
    def decide(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests.append((method, path))
            self.threads.append(threading.current_thread().name)
            verdict = self.fault(method, path) if self.fault else None
            if verdict:
                self.faults.append((verdict, method, path))
            return verdict

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        *,
        crash_between: bool = False,
    ) -> tuple[int, Any]:
        needs_body = "/blobs/insert/" in path or path.endswith("/users")
        if needs_body and not isinstance(body, dict):
            # e.g. a client killed half-way through sending its request
            return 422, {"detail": [{"loc": ["body"], "msg": "Field required"}]}
        with self.lock:
            parts = path.removeprefix("/api/v1").split("/")[1:]
            return self._route(method, parts, query, body, crash_between)

    def _route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, list[str]],
        body: Any,
        crash_between: bool = False,
    ) -> tuple[int, Any]:
        if parts == ["healthcheck"]:
            return _ok(None)
        if parts == ["users"] and method == "POST":
            uid = body.get("id") or str(uuid.uuid4())
            if uid in self.users:
                return _err(500, DUP_ERRMSG.format(user=uid))
            self.users[uid] = body.get("data")
            return _ok({"id": uid})
        if parts[0] == "users" and len(parts) == 2:
            uid = parts[1]
            if uid not in self.users:
                return _err(404, f"User {uid} not found")
            if method == "GET":
                return _ok(
                    {"data": self.users[uid], "id": None, "created_at": _NOW, "updated_at": _NOW}
                )
            if method == "DELETE":
                del self.users[uid]
                self.blobs.pop(uid, None)
                return _ok(None)
        if parts[:2] == ["blobs", "insert"]:
            uid = parts[2]
            if uid not in self.users:
                return _err(500, FK_ERRMSG.format(user=uid))
            if self.postgres and _has_nul(body):
                self.refused.append(_key(uid, body))
                return _err(500, NUL_ERRMSG)
            bid = str(uuid.uuid4())
            # commit 1: the blob; commit 2: its buffer row (skipped by a crash in between)
            self.blobs.setdefault(uid, {})[bid] = _Blob(body, "none" if crash_between else "idle")
            self.stored.append(_key(uid, body))
            results = []
            if query.get("wait_process") == ["true"] and not crash_between:
                # (the real server only processes over its token threshold; here always)
                results = self._process(uid)
            return _ok({"id": bid, "chat_results": results})
        if parts[:2] == ["users", "blobs"]:
            uid = parts[2]
            page = int(query.get("page", ["0"])[0])
            size = int(query.get("page_size", ["10"])[0])
            ids = list(self.blobs.get(uid, {}))
            return _ok({"ids": ids[page * size : (page + 1) * size]})
        if parts[0] == "blobs" and len(parts) == 3:
            uid, bid = parts[1], parts[2]
            blob = self.blobs.get(uid, {}).get(bid)
            if method == "DELETE":
                self.blobs.get(uid, {}).pop(bid, None)
                return _ok(None)
            if blob is None:
                return _err(404, f"Blob with id {bid} of user {uid} not found")
            data = {**blob.body, "created_at": _NOW, "updated_at": _NOW}
            return _ok(data)
        if parts[:2] == ["users", "context"]:
            processed = sum(1 for u, _, _ in self.processed if u == parts[2])
            return _ok({"context": f"# Memory\n{processed} processed blobs\n"})
        if parts[:2] == ["users", "profile"] and method == "POST":
            return _ok({"id": str(uuid.uuid4())})
        if parts[:2] == ["users", "profile"] and method == "GET":
            return _ok({"profiles": []})
        if parts[:2] == ["users", "event"] and method == "GET":
            return _ok({"events": [], "gists": []})
        if parts[:3] == ["users", "buffer", "capacity"]:
            uid = parts[3]
            status = query.get("status", ["processing"])[0]
            rows = [b.buffer_id for b in self.blobs.get(uid, {}).values() if b.status == status]
            return _ok({"ids": rows})
        if parts[:2] == ["users", "buffer"] and len(parts) == 4:
            uid = parts[2]
            idle = [(bid, b) for bid, b in self.blobs.get(uid, {}).items() if b.status == "idle"]
            if not idle:
                return _ok([])
            if self.llm_down:
                for _, b in idle:
                    b.status = "failed"
                return _err(503, "Error in llm_complete: Connection error.")
            return _ok(self._process(uid))
        return 404, {"detail": "Not Found"}

    def _process(self, uid: str) -> list[dict[str, Any]]:
        idle = [(bid, b) for bid, b in self.blobs.get(uid, {}).items() if b.status == "idle"]
        if not idle:
            return []
        for bid, b in idle:
            self.processed.append(_key(uid, b.body))
            del self.blobs[uid][bid]
        result = {
            "event_id": str(uuid.uuid4()),
            "add_profiles": [str(uuid.uuid4())],
            "update_profiles": [],
            "delete_profiles": [],
        }
        return [result]

    # -- front ends ---------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            verdict = self.decide(request.method, request.url.path)
            if verdict == "refuse":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            if verdict == "503":
                return httpx.Response(503, text="Service Unavailable")
            if verdict == "drop_before":
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
            query = parse_qs(request.url.query.decode())
            body = json.loads(request.content) if request.content else None
            crash = verdict == "crash_between"
            status, payload = self.handle(
                request.method, request.url.path, query, body, crash_between=crash
            )
            if verdict in ("drop_after", "crash_between"):
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
            if verdict == "timeout_after":
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(status, json=payload)

        return httpx.MockTransport(handler)

    def processed_keys(self) -> list[tuple[str, str, int]]:
        with self.lock:
            return list(self.processed)

    def leftover_blobs(self) -> int:
        with self.lock:
            return sum(len(b) for b in self.blobs.values())

    def unbuffered_blobs(self) -> int:
        with self.lock:
            return sum(1 for u in self.blobs.values() for b in u.values() if b.status == "none")


def on_nth_insert(n: int, verdict: str) -> Fault:
    """A fault hook: ``verdict`` for the ``n``-th blob insert (1-based), nothing else."""
    inserts = 0

    def fault(method: str, path: str) -> str | None:
        nonlocal inserts
        if "/blobs/insert/" not in path:
            return None
        inserts += 1
        return verdict if inserts == n else None

    return fault


_NOW = "2026-11-24T01:45:26.384150Z"


def _key(uid: str, body: dict[str, Any]) -> tuple[str, str, int]:
    fields = body.get("fields") or {}
    return (uid, str(fields.get("turn_id")), int(fields.get("blob_index", -1)))


def _ok(data: Any) -> tuple[int, Any]:
    return 200, {"data": data, "errno": 0, "errmsg": ""}


def _err(errno: int, errmsg: str) -> tuple[int, Any]:
    return 200, {"data": None, "errno": errno, "errmsg": errmsg}


# -- loopback ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's
    # delayed ACK stall every answer by ~40 ms.
    disable_nagle_algorithm = True
    fake: FakeMemobase
    owner: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        verdict = self.fake.decide(self.command, url.path)
        if verdict == "hang":
            # Read, never answered: the connection stays open until the server stops.
            self.owner.released.wait()
            self._drop()
            return
        if verdict == "gate":
            self.owner.gate.wait(60)  # held until the test opens the gate
        slow = verdict is not None and verdict.startswith("slow:")
        if slow and self.owner.released.wait(float(str(verdict).partition(":")[2])):
            self._drop()  # killed while waiting
            return
        if verdict == "drop_before":
            self._drop()
            return
        if verdict == "503":
            self._send(503, b"Service Unavailable", "text/plain")
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        status, payload = self.fake.handle(
            self.command,
            url.path,
            parse_qs(url.query),
            body,
            crash_between=verdict == "crash_between",
        )
        if verdict in ("drop_after", "crash_between"):
            self._drop()
            return
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve


class _CountingServer(ThreadingHTTPServer):
    owner: LoopbackServer

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.owner._accepted(conn)
        return conn, addr


class LoopbackServer:
    """Bound to a port on 127.0.0.1 at once, but refusing connections until :meth:`start`
    (the socket is not listening yet, so the kernel answers with a reset).

    :meth:`kill` stops it the hard way (no more listening, every open connection cut, a
    request being handled loses its answer); :meth:`start` serves again on the same port.
    """

    def __init__(self, fake: FakeMemobase, *, restartable: bool = False) -> None:
        self.fake = fake
        self.restartable = restartable
        self.connections = 0
        self.kills = 0
        self.released = threading.Event()
        self.gate = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.server = self._make(0, reuse=restartable)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def _make(self, port: int, *, reuse: bool) -> _CountingServer:
        handler = type("Handler", (_Handler,), {"fake": self.fake, "owner": self})
        server = _CountingServer(("127.0.0.1", port), handler, bind_and_activate=False)
        server.owner = self
        server.daemon_threads = True
        # No SO_REUSEADDR unless asked: on Linux another socket could then bind this (not
        # yet listening) port too, and "refused" would no longer be true. A restart needs
        # it on every socket of the port (its connections linger after the kill).
        server.allow_reuse_address = reuse
        server.server_bind()
        return server

    def _accepted(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._conns.append(conn)

    def start(self) -> None:
        if self.server.socket.fileno() < 0:  # killed: bind the same port again
            assert self.restartable, "LoopbackServer(restartable=True) to start it again"
            self.server = self._make(self.port, reuse=True)
        self.released.clear()
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def kill(self) -> None:
        """Stop listening and cut every connection (hanging requests included)."""
        self.kills += 1
        self.released.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server.server_close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.kill()


@contextmanager
def loopback(fake: FakeMemobase) -> Iterator[LoopbackServer]:
    server = LoopbackServer(fake)
    try:
        yield server
    finally:
        server.stop()
