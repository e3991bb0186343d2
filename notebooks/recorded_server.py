"""Serve recorded Memobase server answers to ``RemoteBackend`` (no server, no network).

``RecordedServer`` is an ``httpx.MockTransport`` handler. It indexes the recorded exchanges
of ``data/memobase-server/*.json`` by route (method + path) and answers each request with the
next recorded answer of that route whose query matches, so reading a profile before and after
a flush gets the two answers the real server gave. Requests with no recording get an HTTP 599
that names them, so nothing is silently invented. ``served`` lists which recorded exchange
answered each request, to show where every answer came from.

Bodies are not compared (this is for a walkthrough; the test suite's strict replay lives in
``tests/remote/replay.py``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

DATA = Path(__file__).parent / "data" / "memobase-server"

#: What the recordings' filtered ``authorization`` header says where the right key was sent.
RECORDED_PROJECT_KEY = "Bearer <filtered: the project key>"

#: Query values our client leaves out because they are the server's defaults.
_DEFAULTS = {("wait_process", "false")}


def _query_key(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v.lower()) for k, v in pairs if (k, v.lower()) not in _DEFAULTS))


def _body_id(request: httpx.Request) -> str | None:
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return str(value) if value else None


def _recorded_id(exchange: dict[str, Any]) -> str | None:
    body = exchange["request"].get("body")
    value = body.get("id") if isinstance(body, dict) else None
    return str(value) if value else None


class RecordedServer:
    """Answers requests from recorded exchanges; see the module docstring."""

    def __init__(self, *files: str, key: str = "secret") -> None:
        self.key = key
        self.routes: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for name in files:
            doc = json.loads((DATA / name).read_text())
            for exchange in doc["exchanges"]:
                if "request" not in exchange:  # background-processing notes, not HTTP
                    continue
                headers = exchange["request"]["headers"]
                if headers.get("authorization") != RECORDED_PROJECT_KEY:
                    continue  # recorded auth failures are served by ``auth_failure``
                request = exchange["request"]
                self.routes[(request["method"], request["path"].lower())].append(exchange)
        self.used: set[int] = set()
        self.served: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self.auth_failure(request)
        route = (request.method, request.url.path.lower())
        query = _query_key(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        candidates = [
            e
            for e in self.routes.get(route, [])
            if _query_key((k, v) for k, v in e["request"]["query"]) == query
        ]
        if not candidates:
            self.served.append(f"(no recording) {request.method} {request.url.path}")
            return httpx.Response(
                599, json={"detail": f"no recorded answer for {request.method} {request.url}"}
            )
        sent_id = _body_id(request)
        if sent_id is not None:  # e.g. POST /users: the recording that created this id
            candidates = [e for e in candidates if _recorded_id(e) == sent_id] or candidates
        fresh = [e for e in candidates if id(e) not in self.used]
        exchange = fresh[0] if fresh else candidates[-1]
        self.used.add(id(exchange))
        self.served.append(exchange["name"])
        response = exchange["response"]
        return httpx.Response(response["status"], json=response["body"])

    def skip(self, name: str) -> None:
        """Treat the recorded exchange ``name`` as already served (start later in the story)."""
        for exchanges in self.routes.values():
            for exchange in exchanges:
                if exchange["name"] == name:
                    self.used.add(id(exchange))

    def auth_failure(self, request: httpx.Request) -> httpx.Response:
        """The real server's answer to a wrong bearer token (recorded in 05_bad_inputs)."""
        doc = json.loads((DATA / "05_bad_inputs.json").read_text())
        recorded = next(e for e in doc["exchanges"] if e.get("name") == "bearer_unknown_project_token")
        body = dict(recorded["response"]["body"])
        body["errmsg"] = body["errmsg"].replace(recorded["request"]["path"], request.url.path)
        self.served.append("bearer_unknown_project_token")
        return httpx.Response(recorded["response"]["status"], json=body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
