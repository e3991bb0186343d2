"""``/users/event``: the timeline, event updates and deletes, and the three searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from ...errors import NotFoundError
from ...models import ErrorCode, EventData
from ..envelope import ServerAnswer, ok
from ..params import EventIdPath, Mb, UserIdPath

__all__ = ["router"]

router = APIRouter(tags=["event"])


def _not_found(event_id: object) -> ServerAnswer:
    return ServerAnswer(ErrorCode.NOT_FOUND, f"User event {event_id} not found")


@router.get("/users/event/{user_id}", summary="The user's newest events")
async def list_events(
    mb: Mb,
    user_id: UserIdPath,
    topk: Annotated[int, Query()] = 10,
    max_token_size: Annotated[int | None, Query()] = None,
    need_summary: Annotated[
        bool, Query(description="Accepted and ignored, as on the server.")
    ] = False,
) -> JSONResponse:
    """Newest first, with no time window (the real server only looks back 21 days)."""
    events = await mb.user(user_id).aevents(topk, max_token_size)
    return ok({"events": events, "gists": []})


@router.put("/users/event/{user_id}/{event_id}", summary="Update an event's data")
async def update_event(
    mb: Mb,
    user_id: UserIdPath,
    event_id: EventIdPath,
    body: Annotated[EventData, Body()],
) -> JSONResponse:
    """Merges the given keys into the event; its embedding and gists stay as they were."""
    patch = body.model_dump(mode="json", exclude_none=True)
    try:
        await mb.user(user_id).aupdate_event(event_id, patch)
    except NotFoundError:
        raise _not_found(event_id) from None
    return ok()


@router.delete("/users/event/{user_id}/{event_id}", summary="Delete an event")
async def delete_event(mb: Mb, user_id: UserIdPath, event_id: EventIdPath) -> JSONResponse:
    try:
        await mb.user(user_id).adelete_event(event_id)
    except NotFoundError:
        raise _not_found(event_id) from None
    return ok()


@dataclass(frozen=True)
class Search:
    """The query parameters both similarity searches take (with the server's defaults)."""

    query: str
    topk: int
    similarity_threshold: float
    time_range_in_days: int


def _search(
    query: Annotated[str, Query()],
    topk: Annotated[int, Query()] = 10,
    similarity_threshold: Annotated[float, Query()] = 0.2,
    time_range_in_days: Annotated[int, Query()] = 180,
) -> Search:
    return Search(query, topk, similarity_threshold, time_range_in_days)


SearchQuery = Annotated[Search, Depends(_search)]


@router.get("/users/event/search/{user_id}", summary="Events similar to a query")
async def search_events(mb: Mb, user_id: UserIdPath, s: SearchQuery) -> JSONResponse:
    events = await mb.user(user_id).asearch_events(
        s.query,
        s.topk,
        similarity_threshold=s.similarity_threshold,
        time_range_in_days=s.time_range_in_days,
    )
    return ok({"events": events, "gists": []})


@router.get("/users/event_gist/search/{user_id}", summary="Event lines similar to a query")
async def search_gists(mb: Mb, user_id: UserIdPath, s: SearchQuery) -> JSONResponse:
    gists = await mb.user(user_id).asearch_gists(
        s.query,
        s.topk,
        similarity_threshold=s.similarity_threshold,
        time_range_in_days=s.time_range_in_days,
    )
    return ok({"gists": gists, "events": []})


@router.get("/users/event_tags/search/{user_id}", summary="Events by their tags")
async def search_by_tags(
    mb: Mb,
    user_id: UserIdPath,
    tags: Annotated[
        str | None, Query(description="Tag names that must all be present: a,b")
    ] = None,
    tag_values: Annotated[
        str | None, Query(description="Exact values: emotion=happy,topic=work")
    ] = None,
    topk: Annotated[int, Query()] = 10,
) -> JSONResponse:
    names = [t.strip() for t in (tags or "").split(",") if t.strip()]
    values: dict[str, str] = {}
    for pair in (tag_values or "").split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ServerAnswer(
                ErrorCode.BAD_REQUEST,
                f"Invalid tag_values entry {pair!r}: write name=value pairs separated by "
                "commas, e.g. emotion=happy,topic=work.",
            )
        values[name.strip()] = value.strip()
    events = await mb.user(user_id).asearch_events_by_tags(names, values, max(topk, 1))
    return ok({"events": events, "gists": []})
