"""``/blobs``: insert a blob (the seed endpoint), read, delete and list stored blobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from ...errors import NotFoundError
from ...models import PROCESSED_BLOB_TYPES, BlobData, BlobType, ErrorCode
from ..envelope import ServerAnswer, ok
from ..params import BlobIdPath, Mb, UserIdPath
from .common import require_user

__all__ = ["router"]

router = APIRouter(tags=["blob"])

#: Blob types the schema knows but Memobase cannot store yet (the real server's errno 500).
_NOT_STORED = {
    BlobType.code: "CodeBlob",
    BlobType.image: "ImageBlob",
    BlobType.transcript: "TranscriptBlob",
}


@router.post("/blobs/insert/{user_id}", summary="Insert a blob into the user's buffer")
async def insert_blob(
    mb: Mb,
    user_id: UserIdPath,
    body: Annotated[BlobData, Body()],
    wait_process: Annotated[
        bool,
        Query(
            description="Process the buffer in this request when the insert takes it over "
            "the 1024-token threshold (chat_results then says what changed)."
        ),
    ] = False,
) -> JSONResponse:
    """Stores the blob and buffers it. Processing happens in the request only with
    ``wait_process=true`` and a buffer over the threshold; otherwise the worker does it (over
    the threshold, after the buffer was idle, or on an explicit flush)."""
    if body.blob_type in _NOT_STORED:
        raise ServerAnswer(
            ErrorCode.INTERNAL_SERVER_ERROR,
            f"Error inserting blob: {_NOT_STORED[body.blob_type]} not implemented yet. "
            "Memobase processes chat and summary blobs (doc blobs are stored only).",
        )
    try:
        blob = body.to_blob()
    except PydanticValidationError as exc:
        raise ServerAnswer(ErrorCode.BAD_REQUEST, f"Unable to parse blob: {exc}") from None
    await require_user(mb, user_id, "Error inserting blob")
    user = mb.user(user_id)
    result = await user.ainsert(blob, wait_process=wait_process)
    processed = wait_process and blob.type in PROCESSED_BLOB_TYPES
    # A single blob over the processing cap is kept, marked failed (never dropped).
    if (
        processed
        and not result.chat_results
        and result.id in await user.abuffer(blob.type, "failed")
    ):
        raise ServerAnswer(
            ErrorCode.SERVER_PARSE_ERROR,
            "No blobs to process after truncating: this blob alone is over the "
            "processing cap (16384 tokens). It is stored and marked failed; split long "
            "conversations into several blobs.",
        )
    return ok(result)


@router.get("/blobs/{user_id}/{blob_id}", summary="Get a stored blob")
async def get_blob(mb: Mb, user_id: UserIdPath, blob_id: BlobIdPath) -> JSONResponse:
    try:
        blob = await mb.user(user_id).aget_blob(blob_id)
    except NotFoundError:
        raise ServerAnswer(
            ErrorCode.NOT_FOUND, f"Blob with id {blob_id} of user {user_id} not found"
        ) from None
    return ok(blob)


@router.delete("/blobs/{user_id}/{blob_id}", summary="Delete a stored blob")
async def delete_blob(mb: Mb, user_id: UserIdPath, blob_id: BlobIdPath) -> JSONResponse:
    await mb.user(user_id).adelete_blob(blob_id)
    return ok()


@router.get("/users/blobs/{user_id}/{blob_type}", summary="List a user's blob ids")
async def list_blobs(
    mb: Mb,
    user_id: UserIdPath,
    blob_type: BlobType,
    page: Annotated[int, Query()] = 0,
    page_size: Annotated[int, Query()] = 10,
) -> JSONResponse:
    if page < 0 or page_size < 0:
        raise ServerAnswer(
            ErrorCode.INTERNAL_SERVER_ERROR,
            f"page and page_size must not be negative (got page={page}, page_size={page_size}).",
        )
    if page_size == 0:
        return ok({"ids": []})
    ids = await mb.user(user_id).alist_blobs(blob_type, page=page, page_size=page_size)
    return ok({"ids": [str(i) for i in ids]})
