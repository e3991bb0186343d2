"""``/users/profile``: read (with every filter), add, update, delete, import."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ...errors import NotFoundError
from ...models import ChatBlob, ErrorCode, OpenAICompatibleMessage, Profile, ProfileAttributes
from ..envelope import ServerAnswer, ok
from ..params import Mb, ProfileIdPath, UserIdPath, parse_chats, parse_topic_limits
from .common import require_user

__all__ = ["router"]

router = APIRouter(tags=["profile"])

_INVALID_JSON = "Invalid JSON requests"


class ProfileBody(BaseModel):
    content: str
    attributes: dict[str, Any] | None


class ImportBody(BaseModel):
    context: str


def _profile_json(profile: Profile) -> dict[str, Any]:
    """A row as the server shows it: ``update_hits`` only once the row was updated."""
    data = profile.model_dump(mode="json")
    if not data["attributes"].get("update_hits"):
        data["attributes"].pop("update_hits", None)
    return data


def _attributes(body: ProfileBody) -> ProfileAttributes:
    try:
        return ProfileAttributes.model_validate(body.attributes)
    except PydanticValidationError as exc:
        raise ServerAnswer(
            ErrorCode.SERVER_PARSE_ERROR,
            f"CODE 520; ERROR Invalid profile attributes: {exc}",
        ) from None


@router.get("/users/profile/{user_id}", summary="Get the user's profile")
async def get_profile(
    mb: Mb,
    user_id: UserIdPath,
    topk: Annotated[int | None, Query()] = None,
    max_token_size: Annotated[int | None, Query()] = None,
    prefer_topics: Annotated[list[str] | None, Query()] = None,
    only_topics: Annotated[list[str] | None, Query()] = None,
    max_subtopic_size: Annotated[int | None, Query()] = None,
    topic_limits_json: Annotated[str | None, Query(description='e.g. {"work": 1}')] = None,
    chats_str: Annotated[
        str | None,
        Query(description="Recent messages as a JSON list; an LLM then picks related rows."),
    ] = None,
) -> JSONResponse:
    """Newest first; nothing is truncated unless a filter asks. An unknown user has an
    empty profile."""
    profiles = await mb.user(user_id).aprofile(
        topk=topk,
        max_token_size=max_token_size,
        prefer_topics=prefer_topics,
        only_topics=only_topics,
        max_subtopic_size=max_subtopic_size,
        topic_limits=parse_topic_limits(topic_limits_json, _INVALID_JSON),
        chats=parse_chats(chats_str, _INVALID_JSON),
    )
    return ok({"profiles": [_profile_json(p) for p in profiles]})


@router.post("/users/profile/{user_id}", summary="Add a profile row")
async def add_profile(
    mb: Mb,
    user_id: UserIdPath,
    body: Annotated[ProfileBody, Body()],
) -> JSONResponse:
    """The topic and sub-topic are stored as given (no name normalisation, as on the
    server); other attribute keys are accepted and not stored."""
    attributes = _attributes(body)
    await require_user(mb, user_id, "Error adding a profile")
    created = await mb.user(user_id).aadd_profile(
        body.content, attributes.topic, attributes.sub_topic
    )
    return ok({"id": str(created)})


@router.put("/users/profile/{user_id}/{profile_id}", summary="Update a profile row")
async def update_profile(
    mb: Mb,
    user_id: UserIdPath,
    profile_id: ProfileIdPath,
    body: Annotated[ProfileBody, Body()],
) -> JSONResponse:
    """``attributes: null`` keeps the row's topic and sub-topic. An unknown profile id is
    answered with errno 0, as the real server does."""
    topic = sub_topic = None
    if body.attributes is not None:
        attributes = _attributes(body)
        topic, sub_topic = attributes.topic, attributes.sub_topic
    # The server's contract: nothing to update is not an error.
    with contextlib.suppress(NotFoundError):
        await mb.user(user_id).aupdate_profile(profile_id, body.content, topic, sub_topic)
    return ok()


@router.delete("/users/profile/{user_id}/{profile_id}", summary="Delete a profile row")
async def delete_profile(mb: Mb, user_id: UserIdPath, profile_id: ProfileIdPath) -> JSONResponse:
    try:
        await mb.user(user_id).adelete_profile(profile_id)
    except NotFoundError:
        raise ServerAnswer(
            ErrorCode.NOT_FOUND, f"Profile {profile_id} not found for user {user_id}"
        ) from None
    return ok()


@router.post("/users/profile/import/{user_id}", summary="Import a text about the user")
async def import_profile(
    mb: Mb,
    user_id: UserIdPath,
    body: Annotated[ImportBody, Body()],
) -> JSONResponse:
    """Processes the user's buffer, then the text as one message of the user, both in this
    request (as the server's experimental endpoint does)."""
    await require_user(mb, user_id, "Error importing a profile")
    user = mb.user(user_id)
    await user.aflush(wait=True)
    text = f"Below is my information, please remember them:\n{body.context}"
    await user.ainsert(ChatBlob(messages=[OpenAICompatibleMessage(role="user", content=text)]))
    await user.aflush(wait=True)
    return ok()
