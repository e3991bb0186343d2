"""``/users``: create, read, replace the data of, and delete a user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...errors import NotFoundError, ValidationError
from ...models import ErrorCode
from ..envelope import ServerAnswer, ok
from ..params import AnyUuid, Mb, UserIdPath
from .common import user_exists

__all__ = ["router"]

router = APIRouter(tags=["user"])


class NewUser(BaseModel):
    data: dict[str, Any] | None = None
    id: AnyUuid | None = None


def _not_found(user_id: object) -> ServerAnswer:
    return ServerAnswer(ErrorCode.NOT_FOUND, f"User {user_id} not found")


@router.post("/users", summary="Create a user")
async def create_user(mb: Mb, body: Annotated[NewUser, Body()]) -> JSONResponse:
    try:
        created = await mb.aadd_user(body.data, user_id=body.id)
    except ValidationError as exc:
        if exc.errno != ErrorCode.CONFLICT:
            raise
        # The real server's words for this (a unique-key violation, errno 500): clients
        # such as get_or_create helpers recognise them as "exists already".
        raise ServerAnswer(
            ErrorCode.INTERNAL_SERVER_ERROR,
            f"(UniqueViolation) duplicate key: user {body.id} already exists.",
        ) from None
    return ok({"id": str(created)})


@router.get("/users/{user_id}", summary="Get a user's data")
async def get_user(mb: Mb, user_id: UserIdPath) -> JSONResponse:
    try:
        info = await mb.user(user_id).ainfo()
    except NotFoundError:
        raise _not_found(user_id) from None
    # The real server always answers ``id: null`` here.
    return ok({**info.model_dump(mode="json"), "id": None})


@router.put("/users/{user_id}", summary="Replace a user's data")
async def update_user(
    mb: Mb,
    user_id: UserIdPath,
    data: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    try:
        await mb.user(user_id).aupdate_data(data)
    except NotFoundError:
        raise _not_found(user_id) from None
    return ok({"id": str(user_id)})


@router.delete("/users/{user_id}", summary="Delete a user and everything about them")
async def delete_user(mb: Mb, user_id: UserIdPath) -> JSONResponse:
    if not await user_exists(mb, user_id):
        raise _not_found(user_id)
    await mb.user(user_id).adelete()
    return ok()
