"""The ASGI app: FastAPI with Memobase's routes, its answer format and its checks.

Layers, outermost first: bearer-token authentication (401s carry no ``X-Process-Time``, as
on the real server), the ``X-Process-Time`` header, the body-size limit, the catch-all for
unexpected errors (HTTP 200 / errno 500), then FastAPI's routing, request validation (HTTP
422) and the typed-error handlers (errno in an HTTP 200 envelope).

The engine (a :class:`~memobase_integrations.Memobase` on the embedded backend, with its
flush worker) is opened before the app serves and closed when it stops: the close processes
what is buffered for at most ``drain_timeout`` seconds; the rest stays buffered for the next
start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from ..__about__ import __version__
from ..errors import ConfigurationError, MemobaseError, ServerError
from ..facade import Memobase
from ..settings import FlushPolicy, LLMSettings
from .auth import HEALTHCHECK_PATH, BearerAuth
from .config import ServerConfig
from .envelope import ServerAnswer, errno_for, fail
from .limits import BodyLimit
from .middleware import ProcessTime, UnknownErrors
from .routes import api_router

__all__ = ["app_from_env", "build_memobase", "create_app"]

log = logging.getLogger(__name__)

_DESCRIPTION = (
    "Memobase's HTTP API (memobase_server 0.0.42) served by memobase-integrations on its "
    "embedded engine. Every route under /api/v1 except /healthcheck needs "
    "'Authorization: Bearer <token>'. Answers are {data, errno, errmsg}; errno 0 is "
    "success. Deliberate differences from the Memobase server are listed in the project's "
    "docs/internals.md."
)


def processing_llm(config: ServerConfig) -> LLMSettings:
    """The LLM the engine processes with: the stand-in (with its embeddings) on request,
    else ``OPENAI_*`` / ``MEMOBASE_*`` from the environment. None configured is an error:
    a memory server that cannot process would only ever buffer."""
    if config.stand_in:
        from ..testing import StandInLLM

        return StandInLLM().settings(enable_embeddings=True)
    llm = LLMSettings.from_env()
    if not llm.configured:
        raise ConfigurationError(
            "serve needs an LLM to process memories: set OPENAI_API_KEY (plus OPENAI_BASE_URL "
            "for Ollama, vLLM or another OpenAI-compatible server), or pass --stand-in to try "
            "it with the offline, rule-based stand-in LLM (not a model)."
        )
    return llm


def build_memobase(config: ServerConfig) -> Memobase:
    """The engine ``serve`` runs on, with its flush worker started."""
    policy = FlushPolicy(
        idle_flush_seconds=config.idle_flush_seconds,
        close_timeout_seconds=config.drain_timeout,
    )
    url = config.database_url or os.environ.get("MEMOBASE_DATABASE_URL")
    return Memobase.embedded(url, llm=processing_llm(config), policy=policy)


def create_app(
    config: ServerConfig | None = None,
    *,
    memobase: Memobase | None = None,
    owns_memobase: bool | None = None,
) -> FastAPI:
    """The ASGI app. Without ``memobase`` it opens one from ``config`` at startup.

    ``owns_memobase`` (default: True when the app opened it) closes it at shutdown,
    processing what is buffered for at most ``config.drain_timeout`` seconds.
    """
    config = config or ServerConfig()
    owned = memobase is None if owns_memobase is None else owns_memobase

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The facade's async twins run SQL and LLM calls in threads; size the pool for
        # concurrent requests rather than asyncio's default of cpu_count + 4.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="memobase-serve")
        )
        mb = memobase if memobase is not None else await asyncio.to_thread(build_memobase, config)
        app.state.memobase = mb
        log.info("memobase serve: engine ready (%r)", mb.backend)
        try:
            yield
        finally:
            if owned:
                log.info(
                    "memobase serve: stopping; processing what is buffered for at most %.0fs",
                    config.drain_timeout,
                )
                await asyncio.to_thread(mb.close, config.drain_timeout)

    app = FastAPI(
        title="Memobase API (memobase-integrations serve)",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(api_router)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    app.add_exception_handler(ServerAnswer, _server_answer)  # type: ignore[arg-type]
    app.add_exception_handler(MemobaseError, _memobase_error)  # type: ignore[arg-type]
    # Added innermost first: the last one added runs first.
    app.add_middleware(UnknownErrors)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(ProcessTime)
    app.add_middleware(BearerAuth, token=config.access_token)
    return app


def app_from_env() -> FastAPI:
    """The app of one ``--workers`` process (uvicorn imports it by name in each process);
    the settings come from :data:`~.config.CONFIG_ENV`."""
    return create_app(ServerConfig.from_env())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bearer scheme, as the real server declares it (the token
    is checked by middleware, which FastAPI cannot see): /docs can then send it."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "BearerAuth": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"BearerAuth": []}]
        schema["paths"][HEALTHCHECK_PATH]["get"]["security"] = []
        app.openapi_schema = schema
    return app.openapi_schema


async def _server_answer(request: Request, exc: ServerAnswer) -> JSONResponse:
    return fail(exc.errno, exc.errmsg)


async def _memobase_error(request: Request, exc: MemobaseError) -> JSONResponse:
    errno = errno_for(exc)
    level = logging.WARNING if isinstance(exc, ServerError) or errno >= 500 else logging.INFO
    log.log(level, "memobase serve: %s %s: %s", request.method, request.url.path, exc.message)
    return fail(errno, exc.message)
