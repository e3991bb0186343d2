"""Replay of the recorded real-server exchanges (``tests/remote/data``) through httpx.

``Replay`` is an ``httpx.MockTransport`` handler that serves the recorded exchanges **in
order**: each request the client sends must match the next recorded one (method, path,
query and JSON body), otherwise the test fails with both requests shown. Matching is
semantic where the wire allows several spellings of one request:

* UUIDs in the path compare as UUIDs (upper case and hyphen-less ids were recorded);
* query parameters equal to the server's documented default compare as absent (the official
  SDK sends ``topk=10``, this client leaves defaults out), booleans compare case-insensitively
  and JSON parameters compare as parsed JSON;
* ``null`` members of JSON bodies compare as absent (the SDK sends ``{"id": null}``);
* strings the recorder truncated (``{"__truncated_string__": true, "chars", "head"}``) match a
  string of that length starting with that head.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).parent / "data"
SCENARIOS = sorted(p.name for p in DATA.glob("[0-9][0-9]_*.json"))
TEST_KEY = "sk-proj-replay-0123456789abcdef"

# Server defaults of query parameters per route (memobase-spec.md §1.2 and §5).
_DEFAULTS: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"^/api/v1/blobs/insert/[^/]+$"), {"wait_process": "false"}),
    (re.compile(r"^/api/v1/users/buffer/capacity/"), {"status": "processing"}),
    (re.compile(r"^/api/v1/users/buffer/[^/]+/[^/]+$"), {"wait_process": "false"}),
    (re.compile(r"^/api/v1/users/blobs/"), {"page": "0", "page_size": "10"}),
    (
        re.compile(r"^/api/v1/users/event/search/"),
        {"topk": "10", "similarity_threshold": "0.2", "time_range_in_days": "180"},
    ),
    (
        re.compile(r"^/api/v1/users/event_gist/search/"),
        {"topk": "10", "similarity_threshold": "0.2", "time_range_in_days": "180"},
    ),
    (re.compile(r"^/api/v1/users/event_tags/search/"), {"topk": "10"}),
    (re.compile(r"^/api/v1/users/event/[^/]+$"), {"topk": "10", "need_summary": "false"}),
    (
        re.compile(r"^/api/v1/users/context/"),
        {
            "max_token_size": "1000",
            "profile_event_ratio": "0.6",
            "require_event_summary": "false",
            "event_similarity_threshold": "0.2",
            "time_range_in_days": "180",
            "full_profile_and_only_search_event": "true",
            "fill_window_with_events": "false",
        },
    ),
    (
        re.compile(r"^/api/v1/project/users$"),
        {
            "search": "",
            "order_by": "updated_at",
            "order_desc": "true",
            "limit": "10",
            "offset": "0",
        },
    ),
    (re.compile(r"^/api/v1/project/usage$"), {"last_days": "7"}),
]
_BOOL_KEYS = {
    "wait_process",
    "need_summary",
    "order_desc",
    "require_event_summary",
    "full_profile_and_only_search_event",
    "fill_window_with_events",
}
_JSON_KEYS = {"chats_str", "topic_limits_json"}


def load(name: str) -> list[dict[str, Any]]:
    """The exchanges of one scenario file, in recorded order."""
    doc = json.loads((DATA / name).read_text())
    exchanges: list[dict[str, Any]] = doc["exchanges"]
    return exchanges


def find(name: str, exchange: str) -> dict[str, Any]:
    """One exchange of a scenario by its recorded name."""
    for e in load(name):
        if e["name"] == exchange:
            return e
    raise KeyError(exchange)


def _norm_segment(seg: str) -> str:
    try:
        return str(uuid.UUID(seg))
    except ValueError:
        return seg


def norm_path(path: str) -> str:
    return "/".join(_norm_segment(s) for s in path.split("/"))


def _norm_value(key: str, value: str) -> Any:
    if key in _BOOL_KEYS:
        low = value.lower()
        return {"true": "true", "yes": "true", "1": "true", "false": "false", "no": "false"}.get(
            low, low
        )
    if key in _JSON_KEYS:
        try:
            return ("json", json.dumps(json.loads(value), sort_keys=True))
        except ValueError:
            return value
    try:
        return float(value)
    except ValueError:
        return value


def norm_query(path: str, pairs: list[tuple[str, str]] | list[list[str]]) -> list[tuple[str, Any]]:
    defaults: dict[str, str] = {}
    for pattern, values in _DEFAULTS:
        if pattern.search(path):
            defaults = values
            break
    out = []
    for key, value in pairs:
        if key in defaults and _norm_value(key, value) == _norm_value(key, defaults[key]):
            continue
        out.append((key, _norm_value(key, value)))
    return sorted(out, key=lambda kv: (kv[0], str(kv[1])))


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("__truncated_string__") is True:
            return value
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def body_matches(recorded: Any, sent: Any) -> bool:
    if isinstance(recorded, dict) and recorded.get("__truncated_string__") is True:
        return (
            isinstance(sent, str)
            and len(sent) == recorded["chars"]
            and sent.startswith(recorded["head"])
        )
    if isinstance(recorded, dict) and isinstance(sent, dict):
        return recorded.keys() == sent.keys() and all(
            body_matches(recorded[k], sent[k]) for k in recorded
        )
    if isinstance(recorded, list) and isinstance(sent, list):
        return len(recorded) == len(sent) and all(
            body_matches(a, b) for a, b in zip(recorded, sent, strict=True)
        )
    return bool(recorded == sent)


def describe(request: httpx.Request) -> str:
    query = request.url.query.decode()
    return f"{request.method} {request.url.path}?{query} {request.content[:300]!r}"


class Mismatch(AssertionError):
    """The client sent something other than the recorded request."""


class Replay:
    """Serves recorded exchanges in order (see the module docstring)."""

    def __init__(self, exchanges: list[dict[str, Any]], key: str = TEST_KEY) -> None:
        self.exchanges = list(exchanges)
        self.position = 0
        self.key = key
        self.requests: list[httpx.Request] = []

    @property
    def done(self) -> bool:
        return self.position == len(self.exchanges)

    def skip(self) -> None:
        """Step over an exchange the client cannot (or must not) send."""
        self.position += 1

    def expect(self, exchange: dict[str, Any]) -> None:
        """Position the replay on ``exchange`` (used when serving a subset)."""
        self.position = self.exchanges.index(exchange)

    def check(self, recorded: dict[str, Any], request: httpx.Request) -> None:
        req = recorded["request"]
        problems = []
        if req["method"] != request.method:
            problems.append(f"method {request.method} != {req['method']}")
        if norm_path(req["path"]) != norm_path(request.url.path):
            problems.append(f"path {request.url.path} != {req['path']}")
        sent_query = norm_query(request.url.path, request.url.params.multi_items())
        if norm_query(req["path"], req["query"]) != sent_query:
            problems.append(f"query {sent_query} != {norm_query(req['path'], req['query'])}")
        if req["auth"] == "valid" and request.headers.get("authorization") != f"Bearer {self.key}":
            problems.append("authorization header is not 'Bearer <the test key>'")
        sent_body = json.loads(request.content) if request.content else None
        if not body_matches(drop_nulls(req["body"]), drop_nulls(sent_body)):
            problems.append(f"body {sent_body!r:.300} != {req['body']!r:.300}")
        if problems:
            raise Mismatch(f"{recorded['name']}: " + "; ".join(problems))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.done:
            raise Mismatch(f"unexpected request after the recording ended: {describe(request)}")
        recorded = self.exchanges[self.position]
        self.check(recorded, request)
        self.position += 1
        return response_for(recorded)


def response_for(recorded: dict[str, Any]) -> httpx.Response:
    resp = recorded["response"]
    return httpx.Response(resp["status"], json=resp["body"])


def raising_transport(message: str) -> httpx.MockTransport:
    """A transport that fails the test if anything is sent through it."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"{message}: {describe(request)}")

    return httpx.MockTransport(handler)


Handler = Callable[[httpx.Request], httpx.Response]


def exchange(
    name: str,
    method: str,
    path: str,
    response: dict[str, Any],
    *,
    query: list[tuple[str, str]] | None = None,
    body: Any = None,
    status: int = 200,
) -> dict[str, Any]:
    """An exchange in the recorded format, for sequences the recordings do not contain
    (built from recorded answer shapes)."""
    return {
        "name": name,
        "request": {
            "method": method,
            "path": path,
            "query": query or [],
            "auth": "valid",
            "content_type": "application/json" if body is not None else None,
            "body": body,
        },
        "response": {"status": status, "body": response},
    }


def ok(data: Any) -> dict[str, Any]:
    return {"data": data, "errno": 0, "errmsg": ""}
