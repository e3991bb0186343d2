"""Every Memobase route as a :class:`~.http.Request` builder, shared by sync and async.

``RemoteBackend`` methods come in twins; building the request (path values, query, body,
answer parser) here once means the twins cannot drift apart. Parameters equal to the
server's documented defaults are left out of the query, like the official SDK does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from pydantic import TypeAdapter

from .. import errors
from ..messages import Message
from ..models import (
    Blob,
    BlobData,
    BlobInsertData,
    BlobType,
    ChatModalResponse,
    EventData,
    EventGist,
    IdData,
    IdsData,
    Profile,
    UserData,
    UserEvent,
)
from ..values import ContextOptions, ProfileOptions, UserOrder
from .remote_models import DailyUsage, ProjectBilling, ProjectUsers
from .wire import Call, JsonParam, Request, encode_query

T = TypeVar("T")


# -- routes (memobase-spec.md §1.2) -----------------------------------------------------------
# ``request_path=True``: reads an app makes while answering a user; they fail fast while the
# circuit breaker is open (see ``http.CircuitBreaker``).
HEALTHCHECK = Call("GET", "/healthcheck")
CREATE_USER = Call("POST", "/users")
GET_USER = Call("GET", "/users/{user_id}")
UPDATE_USER = Call("PUT", "/users/{user_id}")
DELETE_USER = Call("DELETE", "/users/{user_id}")
LIST_BLOBS = Call("GET", "/users/blobs/{user_id}/{blob_type}")
INSERT_BLOB = Call("POST", "/blobs/insert/{user_id}")
GET_BLOB = Call("GET", "/blobs/{user_id}/{blob_id}")
DELETE_BLOB = Call("DELETE", "/blobs/{user_id}/{blob_id}")
FLUSH = Call("POST", "/users/buffer/{user_id}/{buffer_type}")
CAPACITY = Call("GET", "/users/buffer/capacity/{user_id}/{buffer_type}")
GET_PROFILE = Call("GET", "/users/profile/{user_id}", request_path=True)
ADD_PROFILE = Call("POST", "/users/profile/{user_id}")
UPDATE_PROFILE = Call("PUT", "/users/profile/{user_id}/{profile_id}")
DELETE_PROFILE = Call("DELETE", "/users/profile/{user_id}/{profile_id}")
IMPORT_PROFILE = Call("POST", "/users/profile/import/{user_id}")
EVENTS = Call("GET", "/users/event/{user_id}", request_path=True)
UPDATE_EVENT = Call("PUT", "/users/event/{user_id}/{event_id}")
DELETE_EVENT = Call("DELETE", "/users/event/{user_id}/{event_id}")
SEARCH_EVENTS = Call("GET", "/users/event/search/{user_id}", request_path=True)
SEARCH_GISTS = Call("GET", "/users/event_gist/search/{user_id}", request_path=True)
SEARCH_TAGS = Call("GET", "/users/event_tags/search/{user_id}", request_path=True)
CONTEXT = Call("GET", "/users/context/{user_id}", request_path=True)
GET_CONFIG = Call("GET", "/project/profile_config")
SET_CONFIG = Call("POST", "/project/profile_config")
BILLING = Call("GET", "/project/billing")
PROJECT_USERS = Call("GET", "/project/users")
USAGE = Call("GET", "/project/usage")

DEFAULT_CONTEXT = ContextOptions()
PROFILE_LIST = TypeAdapter(list[Profile])
EVENT_LIST = TypeAdapter(list[UserEvent])
GIST_LIST = TypeAdapter(list[EventGist])
RESULT_LIST = TypeAdapter(list[ChatModalResponse])
USAGE_LIST = TypeAdapter(list[DailyUsage])


# -- parsers ----------------------------------------------------------------------------------
def parse_none(_: Any) -> None:
    return None


def parse_id(data: Any) -> UUID:
    parsed = IdData.model_validate(data).id
    if parsed is None:
        raise ValueError("the answer has no id")
    return parsed


def parse_ids(data: Any) -> list[UUID]:
    return IdsData.model_validate(data or {}).ids


def parse_list(key: str, adapter: TypeAdapter[list[T]]) -> Callable[[Any], list[T]]:
    """A parser for ``data[key]``, a list of models (``{"profiles": [...]}`` and friends)."""

    def parse(data: Any) -> list[T]:
        return adapter.validate_python((data or {}).get(key) or [])

    return parse


def parse_results(data: Any) -> list[ChatModalResponse]:
    return RESULT_LIST.validate_python(data or [])


def parse_context(data: Any) -> str:
    value = (data or {}).get("context")
    if not isinstance(value, str):
        raise ValueError("the answer has no context string")
    return value


def parse_config(data: Any) -> str:
    return str((data or {}).get("profile_config") or "")


# -- request builders (shared by the sync and async methods) ---------------------------------
def user_path(user_id: UUID) -> dict[str, str]:
    return {"user_id": str(user_id)}


def blob_body(blob: Blob | BlobData) -> dict[str, Any]:
    if isinstance(blob, BlobData):
        return blob.model_dump(mode="json", exclude_none=True)
    return blob.to_request()


def chats(chats: Sequence[Message] | None) -> JsonParam | None:
    """Recent messages as ``chats_str``; validated again (a ``Message`` built directly with a
    ``system`` role would otherwise reach the server and come back as an errno 400)."""
    if not chats:
        return None
    wires = []
    for item in chats:
        m = Message.coerce(item)
        checked = Message.of(m.role, m.content, name=m.name, created_at=m.created_at)
        wires.append(checked.to_wire().model_dump(exclude_none=True))
    return JsonParam(wires)


def differs(value: Any, default: Any) -> Any:
    return None if value == default else value


def check_ratio(ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise errors.ValidationError(
            f"profile_event_ratio must be in (0, 1], got {ratio}. It is the share of "
            "max_token_size given to the profile; use 1.0 for a profile-only context."
        )


def context_request(user_id: UUID, o: ContextOptions) -> Request[str]:
    check_ratio(o.profile_event_ratio)
    d = DEFAULT_CONTEXT
    params = encode_query(
        [
            ("max_token_size", differs(o.max_token_size, d.max_token_size)),
            ("prefer_topics", list(o.prefer_topics) if o.prefer_topics else None),
            ("only_topics", list(o.only_topics) if o.only_topics else None),
            ("max_subtopic_size", o.max_subtopic_size),
            ("topic_limits_json", JsonParam(o.topic_limits) if o.topic_limits else None),
            ("profile_event_ratio", differs(o.profile_event_ratio, d.profile_event_ratio)),
            ("chats_str", chats(o.chats)),
            (
                "event_similarity_threshold",
                differs(o.event_similarity_threshold, d.event_similarity_threshold),
            ),
            ("time_range_in_days", differs(o.time_range_in_days, d.time_range_in_days)),
            ("customize_context_prompt", o.customize_context_prompt),
            (
                "full_profile_and_only_search_event",
                differs(o.full_profile_and_only_search_event, d.full_profile_and_only_search_event),
            ),
            (
                "fill_window_with_events",
                differs(o.fill_window_with_events, d.fill_window_with_events),
            ),
        ]
    )
    return Request(CONTEXT, parse_context, user_path(user_id), params)


def profile_request(user_id: UUID, o: ProfileOptions) -> Request[list[Profile]]:
    params = encode_query(
        [
            ("topk", o.topk),
            ("max_token_size", o.max_token_size),
            ("prefer_topics", list(o.prefer_topics) if o.prefer_topics else None),
            ("only_topics", list(o.only_topics) if o.only_topics else None),
            ("max_subtopic_size", o.max_subtopic_size),
            ("topic_limits_json", JsonParam(o.topic_limits) if o.topic_limits else None),
            ("chats_str", chats(o.chats)),
        ]
    )
    return Request(GET_PROFILE, parse_list("profiles", PROFILE_LIST), user_path(user_id), params)


def search_params(
    query: str, topk: int, similarity_threshold: float, time_range_in_days: int
) -> list[tuple[str, str]]:
    return encode_query(
        [
            ("query", query),
            ("topk", differs(topk, 10)),
            ("similarity_threshold", differs(similarity_threshold, 0.2)),
            ("time_range_in_days", differs(time_range_in_days, 180)),
        ]
    )


def insert_request(user_id: UUID, body: dict[str, Any], wait: bool) -> Request[BlobInsertData]:
    params = encode_query([("wait_process", True if wait else None)])
    return Request(INSERT_BLOB, BlobInsertData.model_validate, user_path(user_id), params, body)


def flush_request(
    user_id: UUID, blob_type: BlobType, wait: bool
) -> Request[list[ChatModalResponse]]:
    return Request(
        FLUSH,
        parse_results,
        {"user_id": str(user_id), "buffer_type": str(blob_type)},
        encode_query([("wait_process", True if wait else None)]),
    )


def list_blobs_request(
    user_id: UUID, blob_type: BlobType, page: int, page_size: int
) -> Request[list[UUID]]:
    if page < 0 or page_size < 1:
        raise errors.ValidationError(
            f"page must be >= 0 and page_size >= 1 (got page={page}, page_size={page_size})."
        )
    return Request(
        LIST_BLOBS,
        parse_ids,
        {"user_id": str(user_id), "blob_type": str(blob_type)},
        encode_query([("page", differs(page, 0)), ("page_size", differs(page_size, 10))]),
    )


def blob_request(call: Call, user_id: UUID, blob_id: UUID, parse: Callable[[Any], T]) -> Request[T]:
    return Request(call, parse, {"user_id": str(user_id), "blob_id": str(blob_id)})


def create_user_request(user_id: UUID | None, data: dict[str, Any] | None) -> Request[UUID]:
    body: dict[str, Any] = {}
    if user_id is not None:
        body["id"] = str(user_id)
    if data is not None:
        body["data"] = data
    return Request(CREATE_USER, parse_id, json=body)


def get_user_request(user_id: UUID) -> Request[UserData]:
    def parse(data: Any) -> UserData:
        # The server always answers ``id: null``; we know the id we asked for.
        return UserData.model_validate(data).model_copy(update={"id": user_id})

    return Request(GET_USER, parse, user_path(user_id))


def profile_body(content: str, topic: str | None, sub_topic: str | None) -> dict[str, Any]:
    if (topic is None) != (sub_topic is None):
        raise errors.ValidationError(
            "Pass both topic and sub_topic, or neither (to keep the profile's current ones); "
            "the server replaces the attributes as a whole."
        )
    attributes = None if topic is None else {"topic": topic, "sub_topic": sub_topic}
    return {"content": content, "attributes": attributes}


def profile_id_request(
    call: Call, user_id: UUID, profile_id: UUID, body: Any = None
) -> Request[None]:
    path = {"user_id": str(user_id), "profile_id": str(profile_id)}
    if body is None:
        return Request(call, parse_none, path)
    return Request(call, parse_none, path, json=body)


def event_request(call: Call, user_id: UUID, event_id: UUID, body: Any = None) -> Request[None]:
    path = {"user_id": str(user_id), "event_id": str(event_id)}
    if body is None:
        return Request(call, parse_none, path)
    return Request(call, parse_none, path, json=body)


def events_request(
    user_id: UUID, topk: int, max_token_size: int | None, need_summary: bool
) -> Request[list[UserEvent]]:
    params = encode_query(
        [
            ("topk", differs(topk, 10)),
            ("max_token_size", max_token_size),
            ("need_summary", True if need_summary else None),
        ]
    )
    return Request(EVENTS, parse_list("events", EVENT_LIST), user_path(user_id), params)


def tags_request(
    user_id: UUID,
    tags: Sequence[str] | None,
    tag_values: dict[str, str] | None,
    topk: int,
) -> Request[list[UserEvent]]:
    params = encode_query(
        [
            ("tags", ",".join(tags) if tags else None),
            (
                "tag_values",
                ",".join(f"{k}={v}" for k, v in tag_values.items()) if tag_values else None,
            ),
            ("topk", differs(topk, 10)),
        ]
    )
    return Request(SEARCH_TAGS, parse_list("events", EVENT_LIST), user_path(user_id), params)


def event_body(data: EventData | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, EventData):
        return data.model_dump(mode="json", exclude_none=True)
    return data


def project_users_request(
    search: str | None,
    order_by: UserOrder | None,
    order_desc: bool | None,
    limit: int | None,
    offset: int | None,
) -> Request[ProjectUsers]:
    params = encode_query(
        [
            ("search", search or None),
            ("order_by", differs(order_by, "updated_at")),
            ("order_desc", differs(order_desc, True)),
            ("limit", differs(limit, 10)),
            ("offset", differs(offset, 0)),
        ]
    )
    return Request(PROJECT_USERS, ProjectUsers.model_validate, params=params)


def is_missing_user(exc: errors.MemobaseError) -> bool:
    text = str(exc.detail or exc.message).lower()
    return exc.errno == 500 and "foreignkeyviolation" in text


def is_duplicate_user(exc: errors.MemobaseError) -> bool:
    text = str(exc.detail or exc.message).lower()
    return exc.errno == 500 and "uniqueviolation" in text


def is_missing(exc: errors.MemobaseError) -> bool:
    """errno 404 from a handler (not a 404 route: that means a wrong URL)."""
    return isinstance(exc, errors.NotFoundError) and exc.errno == 404


# -- one builder per remaining route (the backend's sync and async shells share them) --------


def healthcheck_request() -> Request[None]:
    return Request(HEALTHCHECK, parse_none)


def update_user_request(user_id: UUID, data: dict[str, Any]) -> Request[UUID]:
    return Request(UPDATE_USER, parse_id, user_path(user_id), json=data)


def delete_user_request(user_id: UUID) -> Request[None]:
    return Request(DELETE_USER, parse_none, user_path(user_id))


def search_events_request(
    user_id: UUID, query: str, topk: int, threshold: float, days: int
) -> Request[list[UserEvent]]:
    params = search_params(query, topk, threshold, days)
    return Request(SEARCH_EVENTS, parse_list("events", EVENT_LIST), user_path(user_id), params)


def search_gists_request(
    user_id: UUID, query: str, topk: int, threshold: float, days: int
) -> Request[list[EventGist]]:
    params = search_params(query, topk, threshold, days)
    return Request(SEARCH_GISTS, parse_list("gists", GIST_LIST), user_path(user_id), params)


def add_profile_request(user_id: UUID, content: str, topic: str, sub_topic: str) -> Request[UUID]:
    body = profile_body(content, topic, sub_topic)
    return Request(ADD_PROFILE, parse_id, user_path(user_id), json=body)


def import_profile_request(user_id: UUID, context: str) -> Request[None]:
    return Request(IMPORT_PROFILE, parse_none, user_path(user_id), json={"context": context})


def get_config_request() -> Request[str]:
    return Request(GET_CONFIG, parse_config)


def set_config_request(config_yaml: str | None) -> Request[None]:
    return Request(SET_CONFIG, parse_none, json={"profile_config": config_yaml})


def billing_request() -> Request[ProjectBilling]:
    return Request(BILLING, ProjectBilling.model_validate)


def usage_request(last_days: int) -> Request[list[DailyUsage]]:
    params = encode_query([("last_days", differs(last_days, 7))])
    return Request(USAGE, USAGE_LIST.validate_python, params=params)


def capacity_request(user_id: UUID, blob_type: BlobType, status: str | None) -> Request[list[UUID]]:
    return Request(
        CAPACITY,
        parse_ids,
        {"user_id": str(user_id), "buffer_type": str(blob_type)},
        encode_query([("status", differs(status, "processing"))]),
    )
