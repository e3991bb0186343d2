"""``/healthcheck`` (no token needed) and ``/admin/status_check``."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...backends.embedded import EmbeddedBackend
from ...engine.llm import NO_LLM_MESSAGE
from ...errors import MemobaseError
from ..envelope import ok
from ..params import Mb

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthcheck", summary="Is the server up and its database reachable?")
async def healthcheck(mb: Mb) -> JSONResponse:
    """One small read of the store. HTTP 500 ``{"detail": ...}`` when it fails, as the real
    server answers when its database is down."""
    try:
        await mb.aget_profile_config()
    except MemobaseError as exc:
        log.warning("memobase serve: healthcheck failed: %s", exc)
        return JSONResponse({"detail": "Database not available"}, status_code=500)
    return ok()


@router.get("/admin/status_check", summary="Deeper check: store and processing")
async def status_check(mb: Mb) -> JSONResponse:
    """The store answers, processing has an LLM and (when on) the embedding endpoint answers
    one request; HTTP 500 ``{"detail"}`` otherwise."""
    try:
        await mb.aget_profile_config()
    except MemobaseError as exc:
        return JSONResponse({"detail": f"Root status checking failed: {exc}"}, status_code=500)
    backend = mb.backend
    if isinstance(backend, EmbeddedBackend):
        if not backend.processing_possible():
            return JSONResponse(
                {"detail": f"Root status checking failed: {NO_LLM_MESSAGE}"}, status_code=500
            )
        if backend.llm.embeddings_enabled:  # one real call, as the server's check makes
            try:
                await asyncio.to_thread(backend.llm.embed, ["Hello, world!"])
            except MemobaseError as exc:
                return JSONResponse(
                    {"detail": f"Root status checking failed: {exc}"}, status_code=500
                )
    return ok()
