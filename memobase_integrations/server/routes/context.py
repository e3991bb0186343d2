"""``/users/context``: the memory block for a prompt, with every parameter of the server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ...models import ErrorCode
from ...values import ContextOptions
from ..envelope import ServerAnswer, ok
from ..params import Mb, UserIdPath, parse_chats, parse_topic_limits

__all__ = ["router"]

router = APIRouter(tags=["context"])

_INVALID_JSON = "Invalid JSON"


@router.get("/users/context/{user_id}", summary="The user's memory as prompt text")
async def get_context(
    mb: Mb,
    user_id: UserIdPath,
    max_token_size: Annotated[int, Query()] = 1000,
    prefer_topics: Annotated[list[str] | None, Query()] = None,
    only_topics: Annotated[list[str] | None, Query()] = None,
    max_subtopic_size: Annotated[int | None, Query()] = None,
    topic_limits_json: Annotated[str | None, Query(description='e.g. {"work": 1}')] = None,
    profile_event_ratio: Annotated[float, Query()] = 0.6,
    require_event_summary: Annotated[bool, Query(description="Accepted and ignored.")] = False,
    chats_str: Annotated[
        str | None,
        Query(description="Recent messages as a JSON list: the events shown are the closest."),
    ] = None,
    event_similarity_threshold: Annotated[float, Query()] = 0.2,
    time_range_in_days: Annotated[int, Query()] = 180,
    customize_context_prompt: Annotated[
        str | None, Query(description="A template with {profile_section} and {event_section}.")
    ] = None,
    full_profile_and_only_search_event: Annotated[bool, Query()] = True,
    fill_window_with_events: Annotated[bool, Query()] = False,
) -> JSONResponse:
    """Read through the backend, not the facade's per-process context cache: with several
    server processes, or a CLI beside the server, another process may have changed the
    user since this one cached it."""
    if not 0 < profile_event_ratio <= 1:
        raise ServerAnswer(
            ErrorCode.INTERNAL_SERVER_ERROR,
            f"profile_event_ratio must be between 0 and 1, got {profile_event_ratio}.",
        )
    options = ContextOptions(
        max_token_size=max_token_size,
        prefer_topics=prefer_topics,
        only_topics=only_topics,
        max_subtopic_size=max_subtopic_size,
        topic_limits=parse_topic_limits(topic_limits_json, _INVALID_JSON),
        profile_event_ratio=profile_event_ratio,
        chats=parse_chats(chats_str, _INVALID_JSON),
        event_similarity_threshold=event_similarity_threshold,
        time_range_in_days=time_range_in_days,
        customize_context_prompt=customize_context_prompt,
        full_profile_and_only_search_event=full_profile_and_only_search_event,
        fill_window_with_events=fill_window_with_events,
    )
    context = await mb.backend.acontext(mb.user(user_id).id, options)
    return ok({"context": context})
