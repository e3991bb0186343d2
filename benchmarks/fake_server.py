"""A small loopback Memobase server for the remote-backend benchmarks.

It answers the endpoints the remote backend uses with the response shapes recorded from the
real server (``shared/fixtures/memobase-server``): users, blob insert, buffer capacity and
flush, context, profile, events. It does no processing of its own (a flush just empties the
buffer): the remote numbers measure the client's hot path (outbox write, context read over
loopback HTTP), not a server's LLM work, which would be the embedded engine's pipeline.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FakeMemobaseServer"]

_CONTEXT = (
    "---\n# Memory\nUnless the user has relevant queries, do not actively mention those "
    "memories in the conversation.\n## User Current Profile:\n"
    "- basic_info::name: {name}\n- interest::hobbies: hiking; jazz\n\n## Past Events:\n\n---\n"
)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, dict[str, Any]] = {}
        self.buffers: dict[str, list[str]] = {}
        self.blobs: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.inserts = 0
        self.flushes = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    disable_nagle_algorithm = True  # see llm_server._Handler

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def _reply(self, data: Any = None, errno: int = 0, errmsg: str = "") -> None:
        body = json.dumps({"data": data, "errno": errno, "errmsg": errmsg}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _route(self, method: str) -> None:
        state = self.server.state
        path = urlsplit(self.path).path.rstrip("/")
        body = self._body() if method in ("POST", "PUT") else None
        with state.lock:
            state.requests += 1
            if path.endswith("/healthcheck"):
                return self._reply()
            if method == "POST" and path.endswith("/api/v1/users"):
                uid = str((body or {}).get("id") or uuid.uuid4())
                state.users.setdefault(uid, {"data": (body or {}).get("data"), "at": _now()})
                return self._reply({"id": uid})
            if m := re.search(r"/blobs/insert/([0-9a-f-]+)$", path):
                uid = m.group(1)
                state.users.setdefault(uid, {"data": None, "at": _now()})
                blob_id = str(uuid.uuid4())
                state.blobs[blob_id] = {"user": uid, "blob": body}
                state.buffers.setdefault(uid, []).append(blob_id)
                state.inserts += 1
                return self._reply({"id": blob_id, "chat_results": []})
            if m := re.search(r"/users/buffer/capacity/([0-9a-f-]+)/(\w+)$", path):
                return self._reply({"ids": list(state.buffers.get(m.group(1), []))})
            if method == "POST" and (m := re.search(r"/users/buffer/([0-9a-f-]+)/(\w+)$", path)):
                state.buffers[m.group(1)] = []
                state.flushes += 1
                return self._reply([] if "wait_process=true" in self.path else None)
            if m := re.search(r"/users/context/([0-9a-f-]+)$", path):
                return self._reply({"context": _CONTEXT.format(name=m.group(1)[:8])})
            if re.search(r"/users/profile/([0-9a-f-]+)$", path):
                return self._reply({"profiles": []})
            if re.search(r"/users/event/([0-9a-f-]+)$", path):
                return self._reply({"events": []})
            if m := re.search(r"/blobs/([0-9a-f-]+)/([0-9a-f-]+)$", path):
                blob = state.blobs.get(m.group(2))
                if blob is None or blob["user"] != m.group(1):
                    return self._reply(None, 404, f"Blob with id {m.group(2)} not found")
                return self._reply({**(blob["blob"] or {}), "created_at": _now()})
            if m := re.search(r"/users/([0-9a-f-]+)$", path):
                uid = m.group(1)
                if method == "DELETE":
                    state.users.pop(uid, None)
                    state.buffers.pop(uid, None)
                    return self._reply()
                user = state.users.get(uid)
                if user is None:
                    return self._reply(None, 404, f"User {uid} not found")
                if method == "PUT":
                    user["data"] = (body or {}).get("data")
                    return self._reply({"id": uid})
                return self._reply(
                    {
                        "data": user["data"],
                        "id": None,
                        "created_at": user["at"],
                        "updated_at": _now(),
                    }
                )
            return self._reply()

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class FakeMemobaseServer:
    """Start with :meth:`start` (or ``with``); ``url`` is the project URL to pass."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-memobase", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def state(self) -> _State:
        return self._server.state

    def start(self) -> FakeMemobaseServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeMemobaseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
