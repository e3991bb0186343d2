"""``memobase-integrations serve``: a Memobase-compatible HTTP server on the embedded engine.

Registered on the CLI by :mod:`.app`; the web stack (FastAPI, uvicorn, from the ``server``
extra) is imported only when the command runs, so the rest of the CLI and the core never
load it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from pydantic import SecretStr

from .exitcodes import CLIError, ExitCode

__all__ = ["serve"]

TOKEN_HELP = (
    "The token clients must send as 'Authorization: Bearer <token>' (the SDKs' api_key). "
    "Prefer the MEMOBASE_ACCESS_TOKEN variable: a value given here is visible to other "
    "local users in the process list. Required unless --host is a loopback address."
)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (Memobase's default).")] = 8019,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The store (SQLAlchemy URL), created if missing. Default: "
            "$MEMOBASE_DATABASE_URL or sqlite:///memobase.db.",
            show_default=False,
        ),
    ] = None,
    access_token: Annotated[
        str | None, typer.Option("--access-token", help=TOKEN_HELP, show_default=False)
    ] = None,
    stand_in: Annotated[
        bool,
        typer.Option(
            "--stand-in",
            help="Process with the offline stand-in LLM (deterministic rules, NOT a model) "
            "and its embeddings, to try the server without an LLM.",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(help="Server processes (above 1 needs PostgreSQL).", min=1)
    ] = 1,
    max_body_bytes: Annotated[
        int, typer.Option(help="Larger request bodies are refused (HTTP 413).", min=1024)
    ] = 10 * 1024 * 1024,
    drain_timeout: Annotated[
        float,
        typer.Option(
            help="On SIGTERM: seconds for requests in flight to finish, then again for "
            "processing what is buffered.",
            min=0,
        ),
    ] = 30.0,
    idle_flush_seconds: Annotated[
        float,
        typer.Option(help="Process a user's buffer after this long without new turns.", min=0.1),
    ] = 300.0,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log", help="Log every request line (paths and queries hold user text)."
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve Memobase's HTTP API on the embedded engine until Ctrl-C or SIGTERM.

    Point the official SDKs or Memobase.remote at http://HOST:PORT (token = API key).
    """
    try:
        from ..server import ServerConfig
        from ..server.runner import serve as run_server
    except ImportError as exc:
        raise CLIError(
            f"serve needs the server extra ({exc.name or exc}): pip install "
            "'memobase-integrations[server]'.",
            ExitCode.CONFIG,
        ) from None
    token = access_token if access_token is not None else os.environ.get("MEMOBASE_ACCESS_TOKEN")
    level = log_level.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise CLIError(f"--log-level must be debug, info, warning or error, not {log_level!r}.")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(
        host=host,
        port=port,
        database_url=database_url,
        access_token=SecretStr(token) if token is not None else None,
        stand_in=stand_in,
        workers=workers,
        max_body_bytes=max_body_bytes,
        drain_timeout=drain_timeout,
        idle_flush_seconds=idle_flush_seconds,
        access_log=access_log,
        log_level=level.lower(),
    )
    run_server(config, announce=lambda text: print(text, file=sys.stderr, flush=True))
