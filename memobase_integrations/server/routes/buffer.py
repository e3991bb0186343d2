"""``/users/buffer``: flush a user's buffer, and list its rows by state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ...models import PROCESSED_BLOB_TYPES, BlobType, ErrorCode
from ..envelope import ServerAnswer, ok
from ..params import BufferStatusQuery, Mb, UserIdPath

__all__ = ["router"]

router = APIRouter(tags=["buffer"])


@router.post("/users/buffer/{user_id}/{buffer_type}", summary="Process the user's buffer")
async def flush_buffer(
    mb: Mb,
    user_id: UserIdPath,
    buffer_type: BlobType,
    wait_process: Annotated[
        bool, Query(description="Process in this request and answer what changed.")
    ] = False,
) -> JSONResponse:
    """``wait_process=true``: process now (failed turns waiting for a retry included) and
    answer one result per processed batch. ``false``: hand the buffer to the worker and
    answer ``null``, or ``[]`` when nothing is waiting."""
    user = mb.user(user_id)
    if buffer_type not in PROCESSED_BLOB_TYPES:
        # Only doc blobs can be stored among these; they are kept but never processed.
        if buffer_type != BlobType.doc or not await user.alist_blobs(buffer_type, page_size=1):
            return ok([])
        if wait_process:
            raise ServerAnswer(ErrorCode.BAD_REQUEST, f"Blob type {buffer_type} not supported")
        return ok(None)
    if wait_process:
        return ok(await user.aflush(buffer_type, wait=True))
    waiting = await user.abuffer(buffer_type, "idle") or await user.abuffer(buffer_type, "failed")
    if not waiting:
        return ok([])
    await user.aflush(buffer_type, wait=False)
    return ok(None)


@router.get(
    "/users/buffer/capacity/{user_id}/{buffer_type}", summary="List buffered blobs by state"
)
async def buffer_capacity(
    mb: Mb,
    user_id: UserIdPath,
    buffer_type: BlobType,
    status: Annotated[BufferStatusQuery, Query()] = "processing",
) -> JSONResponse:
    """Ids of the user's buffered blobs in ``status`` (the server's default is
    ``processing``). Here they are blob ids; the real server answers its buffer-row ids."""
    ids = await mb.user(user_id).abuffer(buffer_type, status)
    return ok({"ids": [str(i) for i in ids]})
