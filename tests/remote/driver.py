"""Turns each recorded exchange into the RemoteBackend call that must produce it.

``plan(exchange)`` reads the recorded request (method, path, query, body) and returns a
:class:`Step`: which backend method to call with which arguments, the path template the
error message must name, and how to compare the result with the recorded answer. The replay
transport then checks that the request the client really sent equals the recorded one, so
every step is a round trip: recorded request -> client arguments -> sent request.

Exchanges the typed client cannot send at all (a non-UUID in the path, a body without
``blob_type``, a non-bool ``wait_process``, ...) are ``unsendable`` with the reason; inputs the
client refuses before sending (a ``system`` chat role, ``profile_event_ratio=0``) are
``local`` with the exception expected.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from memobase_integrations import errors
from memobase_integrations.messages import Message
from memobase_integrations.models import (
    BlobData,
    BlobType,
    ChatModalResponse,
    EventGist,
    Profile,
    UserData,
    UserEvent,
)
from memobase_integrations.values import ContextOptions, ProfileOptions

_BLOB_TYPES = {t.value for t in BlobType}


@dataclass
class Step:
    kind: str  # "call" | "unsendable"
    method: str = ""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    reason: str = ""
    local_error: type[Exception] | None = None
    rejected_auth: bool = False
    tolerated_error: bool = False  # an error answer the method turns into success


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _query(exchange: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in exchange["request"]["query"]:
        out.setdefault(key, []).append(value)
    return out


def _one(q: dict[str, list[str]], key: str) -> str | None:
    values = q.get(key)
    return values[0] if values else None


def _int(q: dict[str, list[str]], key: str, default: int | None = None) -> int | None:
    value = _one(q, key)
    return default if value is None else int(value)


def _float(q: dict[str, list[str]], key: str, default: float) -> float:
    value = _one(q, key)
    return default if value is None else float(value)


def _bool(value: str | None, default: bool) -> bool | None:
    if value is None:
        return default
    low = value.lower()
    if low in ("true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    return None


def untruncate(value: Any) -> Any:
    """Expand the recorder's ``{"__truncated_string__": ...}`` markers into real strings of
    the recorded length (the replay matches them by length and head)."""
    if isinstance(value, dict):
        if value.get("__truncated_string__") is True:
            head: str = value["head"]
            return (head * (value["chars"] // len(head) + 1))[: value["chars"]]
        return {k: untruncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untruncate(v) for v in value]
    return value


def _unsendable(reason: str) -> Step:
    return Step(kind="unsendable", reason=reason)


def _chats(q: dict[str, list[str]]) -> tuple[list[Message] | None, Step | None]:
    raw = _one(q, "chats_str")
    if raw is None:
        return None, None
    try:
        items = json.loads(raw)
    except ValueError:
        return None, _unsendable("chats_str is not JSON; the client encodes messages itself")
    try:
        return [Message.coerce(m) for m in items], None
    except errors.InvalidMessageError:
        # Build the messages without validation, as a careless caller could: the client
        # must refuse them before sending anything.
        unchecked = [_unchecked_message(m["role"], m["content"]) for m in items]
        return unchecked, Step(kind="call", local_error=errors.InvalidMessageError)


def _unchecked_message(role: str, content: str) -> Message:
    """A Message that skipped its constructor's checks (as ``copy`` or pickling can make)."""
    message = object.__new__(Message)
    for name, value in {"role": role, "content": content, "name": None, "created_at": None}.items():
        object.__setattr__(message, name, value)
    object.__setattr__(message, "metadata", {})
    return message


def _topic_limits(q: dict[str, list[str]]) -> tuple[dict[str, int] | None, Step | None]:
    raw = _one(q, "topic_limits_json")
    if raw is None:
        return None, None
    try:
        return json.loads(raw), None
    except ValueError:
        return None, _unsendable("topic_limits_json is not JSON; the client encodes a dict")


def plan(exchange: dict[str, Any]) -> Step:  # one flat branch per route, on purpose
    req = exchange["request"]
    method = req["method"]
    path = urlsplit(req["path"]).path
    if not path.startswith("/api/v1/"):
        return _unsendable("not an /api/v1 route (openapi.json or a non-API path)")
    parts = path[len("/api/v1/") :].split("/")
    q = _query(exchange)
    body = req["body"]
    rejected = req["auth"] == "rejected"
    if req["auth"] == "none" and parts != ["healthcheck"]:
        return _unsendable("the client always sends its Bearer key")
    if rejected and not _rejectable(exchange):
        return _unsendable("the client only sends 'Bearer <key>' with a non-empty one-word key")

    def call(name: str, template: str, *args: Any, **kwargs: Any) -> Step:
        return Step("call", name, args, kwargs, template, rejected_auth=rejected)

    # -- health, admin, experimental --------------------------------------------------------
    if parts == ["healthcheck"]:
        return call("healthcheck", "GET /healthcheck")
    if parts[0] == "admin":
        return _unsendable("admin routes are root-only server operations, not offered")
    if parts[:2] == ["users", "roleplay"]:
        return _unsendable("roleplay (experimental, Chinese prompts) is not offered")
    if method == "PATCH" or parts == ["does-not-exist"]:
        return _unsendable("not a route the client offers (mapped in test_http_errors)")
    # -- users ------------------------------------------------------------------------------
    if parts == ["users"] and method == "POST":
        if body is None:
            return _unsendable("the client always sends a JSON body")
        raw_id = body.get("id")
        uid = None if raw_id is None else _uuid(raw_id)
        if raw_id is not None and uid is None:
            return _unsendable("user ids are uuid.UUID values; strings are mapped by to_user_uuid")
        return call("create_user", "POST /users", uid, body.get("data"))
    if parts[0] == "users" and len(parts) == 2:
        uid = _uuid(parts[1])
        if uid is None:
            return _unsendable("user ids are uuid.UUID values; strings are mapped by to_user_uuid")
        if method == "GET":
            return call("get_user", "GET /users/{user_id}", uid)
        if method == "PUT":
            return call("update_user", "PUT /users/{user_id}", uid, body)
        if method == "DELETE":
            step = call("delete_user", "DELETE /users/{user_id}", uid)
            step.tolerated_error = exchange["response"]["body"].get("errno") == 404
            return step
    # -- blobs ------------------------------------------------------------------------------
    if parts[:2] == ["blobs", "insert"]:
        uid = _uuid(parts[2])
        if uid is None:
            return _unsendable("user ids are uuid.UUID values")
        wait = _bool(_one(q, "wait_process"), False)
        if wait is None:
            return _unsendable("wait_process is a bool in the client")
        if req.get("content_type") not in (None, "application/json") or not isinstance(body, dict):
            return _unsendable("the client always sends a JSON object body")
        try:
            blob = BlobData.model_validate(untruncate(body))
        except ValueError:
            return _unsendable(
                "BlobData needs blob_type (a BlobType), blob_data and fields as dicts"
            )
        return call("insert", "POST /blobs/insert/{user_id}", uid, blob, wait_process=wait)
    if parts[0] == "blobs" and len(parts) == 3:
        uid, bid = _uuid(parts[1]), _uuid(parts[2])
        if uid is None or bid is None:
            return _unsendable("blob and user ids are uuid.UUID values")
        if method == "GET":
            return call("get_blob", "GET /blobs/{user_id}/{blob_id}", uid, bid)
        return call("delete_blob", "DELETE /blobs/{user_id}/{blob_id}", uid, bid)
    if parts[:2] == ["users", "blobs"]:
        uid = _uuid(parts[2])
        if parts[3] not in _BLOB_TYPES:
            return _unsendable("blob types are BlobType members")
        page = _int(q, "page", 0) or 0
        size = _int(q, "page_size", 10) or 10
        template = "GET /users/blobs/{user_id}/{blob_type}"
        step = call("list_blobs", template, uid, BlobType(parts[3]), page=page, page_size=size)
        if page < 0:
            step.local_error = errors.ValidationError  # the server's answer is SQL in a 500
        return step
    if parts[:3] == ["users", "buffer", "capacity"]:
        uid = _uuid(parts[3])
        return call(
            "buffer_capacity",
            "GET /users/buffer/capacity/{user_id}/{buffer_type}",
            uid,
            BlobType(parts[4]),
            status=_one(q, "status"),
        )
    if parts[:2] == ["users", "buffer"]:
        uid = _uuid(parts[2])
        if parts[3] not in _BLOB_TYPES:
            return _unsendable("blob types are BlobType members")
        wait = _bool(_one(q, "wait_process"), False)
        return call(
            "flush",
            "POST /users/buffer/{user_id}/{buffer_type}",
            uid,
            BlobType(parts[3]),
            wait=wait,
        )
    # -- profiles ---------------------------------------------------------------------------
    if parts[:3] == ["users", "profile", "import"]:
        uid = _uuid(parts[3])
        if not isinstance(body, dict) or "context" not in body:
            return _unsendable("import_profile always sends its context text")
        return call("import_profile", "POST /users/profile/import/{user_id}", uid, body["context"])
    if parts[:2] == ["users", "profile"] and len(parts) == 3:
        uid = _uuid(parts[2])
        if uid is None:
            return _unsendable("user ids are uuid.UUID values")
        if method == "POST":
            attrs = body.get("attributes")
            if (
                "content" not in body
                or not isinstance(attrs, dict)
                or set(attrs) != {"topic", "sub_topic"}
            ):
                return _unsendable("add_profile always sends content, topic and sub_topic only")
            return call(
                "add_profile",
                "POST /users/profile/{user_id}",
                uid,
                body["content"],
                attrs["topic"],
                attrs["sub_topic"],
            )
        chats, refused = _chats(q)
        if refused and refused.kind == "unsendable":
            return refused
        limits, problem = _topic_limits(q)
        if problem:
            return problem
        options = ProfileOptions(
            topk=_int(q, "topk"),
            max_token_size=_int(q, "max_token_size"),
            prefer_topics=q.get("prefer_topics"),
            only_topics=q.get("only_topics"),
            max_subtopic_size=_int(q, "max_subtopic_size"),
            topic_limits=limits,
            chats=chats,
        )
        step = call("profile", "GET /users/profile/{user_id}", uid, options)
        step.local_error = refused.local_error if refused else None
        return step
    if parts[:2] == ["users", "profile"] and len(parts) == 4:
        uid, pid = _uuid(parts[2]), _uuid(parts[3])
        if method == "DELETE":
            return call("delete_profile", "DELETE /users/profile/{user_id}/{profile_id}", uid, pid)
        if "attributes" not in body:
            return _unsendable("update_profile always sends the attributes key")
        attrs = body["attributes"] or {}
        return call(
            "update_profile",
            "PUT /users/profile/{user_id}/{profile_id}",
            uid,
            pid,
            body["content"],
            attrs.get("topic"),
            attrs.get("sub_topic"),
        )
    # -- events -----------------------------------------------------------------------------
    if parts[:3] in (["users", "event", "search"], ["users", "event_gist", "search"]):
        uid = _uuid(parts[3])
        if _one(q, "query") is None:
            return _unsendable("search always sends its query text")
        name = "search_events" if parts[1] == "event" else "search_gists"
        return call(
            name,
            f"GET /users/{parts[1]}/search/{{user_id}}",
            uid,
            _one(q, "query"),
            _int(q, "topk", 10),
            _float(q, "similarity_threshold", 0.2),
            _int(q, "time_range_in_days", 180),
        )
    if parts[:3] == ["users", "event_tags", "search"]:
        uid = _uuid(parts[3])
        tags = _one(q, "tags")
        values = _one(q, "tag_values")
        return call(
            "search_events_by_tags",
            "GET /users/event_tags/search/{user_id}",
            uid,
            tags.split(",") if tags else None,
            dict(kv.split("=", 1) for kv in values.split(",")) if values else None,
            _int(q, "topk", 10),
        )
    if parts[:2] == ["users", "event"] and len(parts) == 3:
        uid = _uuid(parts[2])
        return call(
            "events",
            "GET /users/event/{user_id}",
            uid,
            _int(q, "topk", 10),
            _int(q, "max_token_size"),
            need_summary=bool(_bool(_one(q, "need_summary"), False)),
        )
    if parts[:2] == ["users", "event"] and len(parts) == 4:
        uid, eid = _uuid(parts[2]), _uuid(parts[3])
        if method == "DELETE":
            return call("delete_event", "DELETE /users/event/{user_id}/{event_id}", uid, eid)
        return call("update_event", "PUT /users/event/{user_id}/{event_id}", uid, eid, body)
    if parts[:2] == ["users", "context"]:
        uid = _uuid(parts[2])
        template = "GET /users/context/{user_id}"
        chats, refused = _chats(q)
        if refused and refused.kind == "unsendable":
            return refused
        limits, problem = _topic_limits(q)
        if problem:
            return problem
        d = ContextOptions()
        fp = _bool(_one(q, "full_profile_and_only_search_event"), True)
        fill = _bool(_one(q, "fill_window_with_events"), False)
        context_options = ContextOptions(
            max_token_size=_int(q, "max_token_size", 1000) or 1000,
            prefer_topics=q.get("prefer_topics"),
            only_topics=q.get("only_topics"),
            max_subtopic_size=_int(q, "max_subtopic_size"),
            topic_limits=limits,
            profile_event_ratio=_float(q, "profile_event_ratio", d.profile_event_ratio),
            chats=chats,
            event_similarity_threshold=_float(q, "event_similarity_threshold", 0.2),
            time_range_in_days=_int(q, "time_range_in_days", 180) or 0,
            customize_context_prompt=_one(q, "customize_context_prompt"),
            full_profile_and_only_search_event=bool(fp),
            fill_window_with_events=bool(fill),
        )
        step = call("context", template, uid, context_options)
        if refused:
            step.local_error = refused.local_error
        elif not 0 < context_options.profile_event_ratio <= 1:
            step.local_error = errors.ValidationError  # the server's answer is a 500 assertion
        return step
    # -- project ----------------------------------------------------------------------------
    if parts == ["project", "profile_config"]:
        if method == "GET":
            return call("get_profile_config", "GET /project/profile_config")
        if not isinstance(body, dict) or "profile_config" not in body:
            return _unsendable("set_profile_config always sends the profile_config key")
        value = untruncate(body["profile_config"])
        return call("set_profile_config", "POST /project/profile_config", value)
    if parts == ["project", "billing"]:
        return call("usage", "GET /project/billing")
    if parts == ["project", "usage"]:
        return call("daily_usage", "GET /project/usage", _int(q, "last_days", 7))
    if parts == ["project", "users"]:
        return call(
            "project_users",
            "GET /project/users",
            _one(q, "search"),
            _one(q, "order_by"),
            _bool(_one(q, "order_desc"), True),
            _int(q, "limit"),
            _int(q, "offset"),
        )
    raise AssertionError(f"no plan for {method} {path}")


def _rejectable(exchange: dict[str, Any]) -> bool:
    """Auth failures the client can produce: a wrong key, sent as ``Bearer <key>``."""
    return exchange["name"] in {
        "bearer_wrong_token",
        "bearer_unknown_project_token",
    }


# -- what a recorded answer means ------------------------------------------------------------
_CLASS_BY_CODE: dict[int, type[errors.MemobaseError]] = {
    400: errors.ValidationError,
    401: errors.AuthenticationError,
    404: errors.NotFoundError,
    405: errors.UnsupportedError,
    422: errors.ValidationError,
    500: errors.ServerError,
    501: errors.UnsupportedError,
    503: errors.ServiceUnavailableError,
    520: errors.ServerError,
}


def expected_error(exchange: dict[str, Any]) -> type[errors.MemobaseError] | None:
    status = exchange["response"]["status"]
    body = exchange["response"]["body"]
    errno = body.get("errno") if isinstance(body, dict) else None
    if status == 200 and errno == 0:
        return None
    return _CLASS_BY_CODE[errno or status]


def server_words(exchange: dict[str, Any]) -> str:
    """A piece of the server's own explanation the error message must carry."""
    body = exchange["response"]["body"]
    if "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else detail[0]["msg"]
    text = body["errmsg"]
    text = text.replace("Sorry, we have encountered an unknown error: \n", "")
    text = text.replace("CODE 520; ERROR ", "")
    return " ".join(text.split())[:40]


def _ids(items: list[Any]) -> list[str]:
    return [str(i["id"] if isinstance(i, dict) else i.id) for i in items]


# Per method: (project the typed result, project the recorded ``data``) -> equal values.
Projection = tuple[Callable[[Any], Any], Callable[[Any], Any]]
PROJECTIONS: dict[str, Projection] = {
    "healthcheck": (lambda r: r, lambda d: d),
    "create_user": (str, lambda d: d["id"]),
    "update_user": (str, lambda d: d["id"]),
    "get_user": (
        lambda r: (isinstance(r, UserData), r.data, r.created_at is not None),
        lambda d: (True, d["data"], True),
    ),
    "delete_user": (lambda r: None, lambda d: None),  # the bool: see test_users.py
    "insert": (
        lambda r: (str(r.id), len(r.chat_results)),
        lambda d: (d["id"], len(d["chat_results"])),
    ),
    "get_blob": (
        lambda r: (r.blob_type.value, r.fields, r.to_blob().model_dump(exclude={"fields"})),
        lambda d: (
            d["blob_type"],
            d["fields"],
            BlobData.model_validate(d).to_blob().model_dump(exclude={"fields"}),
        ),
    ),
    "delete_blob": (lambda r: r, lambda d: d),
    "list_blobs": (lambda r: [str(i) for i in r], lambda d: d["ids"]),
    "buffer_capacity": (lambda r: [str(i) for i in r], lambda d: d["ids"]),
    "flush": (
        lambda r: [(isinstance(x, ChatModalResponse), str(x.event_id)) for x in r],
        lambda d: [(True, str(x["event_id"])) for x in (d or [])],
    ),
    "profile": (
        lambda r: [(isinstance(p, Profile), str(p.id), p.topic, p.sub_topic, p.content) for p in r],
        lambda d: [
            (True, p["id"], p["attributes"]["topic"], p["attributes"]["sub_topic"], p["content"])
            for p in d["profiles"]
        ],
    ),
    "add_profile": (str, lambda d: d["id"]),
    "update_profile": (lambda r: r, lambda d: d),
    "delete_profile": (lambda r: r, lambda d: d),
    "import_profile": (lambda r: r, lambda d: d),
    "events": (
        lambda r: [(isinstance(e, UserEvent), str(e.id), e.event_data.event_tip) for e in r],
        lambda d: [(True, e["id"], e["event_data"]["event_tip"]) for e in d["events"]],
    ),
    "search_events": (
        lambda r: [(str(e.id), e.similarity) for e in r],
        lambda d: [(e["id"], e["similarity"]) for e in d["events"]],
    ),
    "search_events_by_tags": (_ids, lambda d: _ids(d["events"])),
    "search_gists": (
        lambda r: [(isinstance(g, EventGist), str(g.id), g.gist_data.content) for g in r],
        lambda d: [(True, g["id"], g["gist_data"]["content"]) for g in d["gists"]],
    ),
    "update_event": (lambda r: r, lambda d: d),
    "delete_event": (lambda r: r, lambda d: d),
    "context": (lambda r: r, lambda d: d["context"]),
    "get_profile_config": (lambda r: r, lambda d: d["profile_config"]),
    "set_profile_config": (lambda r: r, lambda d: d),
    "usage": (
        lambda r: (r.token_left, r.project_token_cost_month),
        lambda d: (d["token_left"], d["project_token_cost_month"]),
    ),
    "daily_usage": (
        lambda r: [(str(u.date), u.total_insert, u.total_output_token) for u in r],
        lambda d: [(u["date"], u["total_insert"], u["total_output_token"]) for u in d],
    ),
    "project_users": (
        lambda r: (r.count, [(str(u.id), u.profile_count, u.event_count) for u in r.users]),
        lambda d: (
            d["count"],
            [(u["id"], u["profile_count"], u["event_count"]) for u in d["users"]],
        ),
    ),
}
