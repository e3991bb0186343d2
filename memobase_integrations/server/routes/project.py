"""``/project``: the profile config, billing, the user listing and daily usage."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...arguments import MAX_USAGE_DAYS
from ...models import ErrorCode
from ..config import MAX_PROFILE_CONFIG_CHARS
from ..envelope import ServerAnswer, ok
from ..params import Mb

__all__ = ["router"]

router = APIRouter(tags=["project"])


class ProfileConfigBody(BaseModel):
    profile_config: str | None


@router.get("/project/profile_config", summary="The project's profile config (YAML)")
async def get_profile_config(mb: Mb) -> JSONResponse:
    return ok({"profile_config": await mb.aget_profile_config()})


@router.post("/project/profile_config", summary="Set (or with null, reset) the profile config")
async def set_profile_config(mb: Mb, body: Annotated[ProfileConfigBody, Body()]) -> JSONResponse:
    """Validated before it is stored; every processing run after this uses it."""
    text = body.profile_config
    if text is not None and len(text) > MAX_PROFILE_CONFIG_CHARS:
        raise ServerAnswer(
            ErrorCode.BAD_REQUEST,
            f"Profile config is too long: {len(text)} characters, at most "
            f"{MAX_PROFILE_CONFIG_CHARS} are accepted.",
        )
    await mb.aset_profile_config(text)
    return ok()


@router.get("/project/billing", summary="Tokens left and this month's cost")
async def billing(mb: Mb) -> JSONResponse:
    """Self-hosted: unlimited (``token_left`` null); the cost is this month's LLM tokens."""
    return ok(await mb.ausage())


@router.get("/project/users", summary="The project's users with their counts")
async def project_users(
    mb: Mb,
    search: Annotated[str, Query(description="A substring of the user id or of its data.")] = "",
    order_by: Annotated[
        Literal["updated_at", "profile_count", "event_count"], Query()
    ] = "updated_at",
    order_desc: Annotated[bool, Query()] = True,
    limit: Annotated[int, Query(ge=0)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    users = await mb.aget_all_users(search, order_by, order_desc, limit, offset)
    return ok(users)


@router.get("/project/usage", summary="Inserts and LLM tokens per day")
async def usage(
    mb: Mb, last_days: Annotated[int, Query(ge=1, le=MAX_USAGE_DAYS)] = 7
) -> JSONResponse:
    return ok(await mb.adaily_usage(last_days))
