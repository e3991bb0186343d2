"""The API's routes, one module per resource, all mounted under ``/api/v1``.

Handlers are ``async`` and call the facade's async twins, which run the embedded engine's
SQL and LLM work in threads: the event loop never blocks on I/O.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import blobs, buffer, context, events, health, profile, project, roleplay, users

__all__ = ["api_router"]

api_router = APIRouter(prefix="/api/v1")
for module in (health, users, blobs, buffer, profile, events, context, project, roleplay):
    api_router.include_router(module.router)
