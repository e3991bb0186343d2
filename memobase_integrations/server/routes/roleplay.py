"""``/users/roleplay/proactive``: accepted in shape, answered as not implemented.

The real server's endpoint is experimental, has Chinese-only prompts and needs a reasoning
model (``o4-mini``); the embedded engine has no equivalent step. The body is validated as
there (HTTP 422 without ``messages``), then the answer is errno 501.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...models import ErrorCode
from ..envelope import ServerAnswer
from ..params import UserIdPath

__all__ = ["router"]

router = APIRouter(tags=["roleplay"])


class ProactiveBody(BaseModel):
    messages: list[dict[str, Any]]
    agent_context: str | None = None


@router.post("/users/roleplay/proactive/{user_id}", summary="Not implemented (errno 501)")
async def proactive(user_id: UserIdPath, body: Annotated[ProactiveBody, Body()]) -> JSONResponse:
    raise ServerAnswer(
        ErrorCode.NOT_IMPLEMENTED,
        "The roleplay endpoints are not implemented by memobase-integrations serve; use a "
        "Memobase server for them.",
    )
