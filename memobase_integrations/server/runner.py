"""Running the app under uvicorn: one process, or several (``--workers``) on PostgreSQL.

Shutdown (SIGTERM or Ctrl-C) is uvicorn's graceful one, bounded twice by
``drain_timeout``: the server stops accepting connections and lets requests in flight
finish for at most that long, then the app's lifespan closes the engine, which processes
what is buffered for at most that long again. Whatever is left stays buffered in the store
and is processed after the next start.

With one process the engine is opened and the socket bound *before* uvicorn starts, so a
bad database URL, a missing LLM or a port in use is reported as one clear error rather
than a startup traceback. With several processes uvicorn's supervisor starts (and restarts)
them; each opens its own engine from the settings in the environment
(:data:`~.config.CONFIG_ENV`), and their flush workers share the store through leases.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from ..errors import ConfigurationError
from ..facade import Memobase
from .app import build_memobase, create_app, processing_llm
from .config import ServerConfig

__all__ = ["bind", "describe", "serve", "uvicorn_config"]

log = logging.getLogger(__name__)

FACTORY = "memobase_integrations.server.app:app_from_env"


def _options(config: ServerConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": config.access_log,
        "server_header": False,
        "timeout_graceful_shutdown": config.drain_timeout,
        "lifespan": "on",
    }


def uvicorn_config(app: Any, config: ServerConfig, **overrides: Any) -> uvicorn.Config:
    """uvicorn's settings for ``app`` under ``config`` (tests use them too)."""
    return uvicorn.Config(app, **{**_options(config), **overrides})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`ConfigurationError` saying why not."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP. Without it, a keep-alive response written in two parts (headers,
    # body) waits for the client's delayed ACK: about 40 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Pick another --port, or "
            "stop what is using this one."
        ) from exc
    sock.set_inheritable(True)
    return sock


def describe(config: ServerConfig, port: int, mb: Memobase | None) -> str:
    """One paragraph for the operator: where it listens, on what, how it authenticates.
    Never the token, never a database password."""
    from ..testing import LABEL

    host = f"[{config.host}]" if ":" in config.host else config.host
    lines = [f"memobase serve: listening on http://{host}:{port} (API under /api/v1, docs /docs)"]
    if mb is not None:
        lines.append(f"  engine: {mb.backend!r}")
    if config.workers > 1:
        lines.append(f"  {config.workers} worker processes")
    if config.stand_in:
        lines.append(f"  processing with the {LABEL}")
    if config.access_token is not None:
        lines.append("  clients must send 'Authorization: Bearer <the access token>'")
    else:
        lines.append(
            "  no access token set: any bearer token is accepted (allowed on loopback only)"
        )
    return "\n".join(lines)


def serve(
    config: ServerConfig,
    *,
    memobase: Memobase | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (see the module doc for the shutdown). ``announce``
    receives :func:`describe`'s text once the port is bound."""
    config.check()
    if config.workers > 1:
        processing_llm(config)  # fail before any process starts
        os.environ.update(config.to_env())
        if announce is not None:
            announce(describe(config, config.port, None))
        uvicorn.run(FACTORY, factory=True, workers=config.workers, **_options(config))
        return
    mb = memobase if memobase is not None else build_memobase(config)
    try:
        sock = bind(config.host, config.port)
        if announce is not None:
            announce(describe(config, sock.getsockname()[1], mb))
        app = create_app(config, memobase=mb, owns_memobase=True)
        uvicorn.Server(uvicorn_config(app, config)).run(sockets=[sock])
    finally:
        mb.close(timeout=config.drain_timeout)  # a no-op after the lifespan closed it
