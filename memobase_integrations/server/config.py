"""What ``serve`` runs with, and the checks that keep a careless start from being unsafe.

The settings travel to uvicorn's worker processes (``--workers``) through one environment
variable holding JSON, never through argv: a database URL can carry a password. The access
token travels the same way, in its own variable (``MEMOBASE_ACCESS_TOKEN``), and is kept as a
:class:`pydantic.SecretStr` so no ``repr``, log line or error can show it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from pydantic import SecretStr

from ..errors import ConfigurationError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "MAX_PROFILE_CONFIG_CHARS",
    "TOKEN_ENV",
    "ServerConfig",
    "is_loopback",
]

#: Memobase's own port.
DEFAULT_PORT: Final = 8019
#: Request bodies above this are refused with HTTP 413 before they are read. 10 MiB holds a
#: ChatBlob of several million characters; the real server sets no limit of its own.
DEFAULT_MAX_BODY_BYTES: Final = 10 * 1024 * 1024
#: The real server refuses longer profile configs (errno 400 "Profile config is too long").
MAX_PROFILE_CONFIG_CHARS: Final = 65535
#: Where the token is read from (and how it reaches worker processes).
TOKEN_ENV: Final = "MEMOBASE_ACCESS_TOKEN"
#: The JSON settings handed to worker processes.
CONFIG_ENV: Final = "MEMOBASE_SERVE_CONFIG"


def is_loopback(host: str) -> bool:
    """True when binding ``host`` is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one ``serve`` run (the CLI options, with their defaults).

    ``access_token`` is required unless ``host`` is a loopback address; without one, any
    bearer token is accepted (the real server behaves so when its ``ACCESS_TOKEN`` is unset).
    ``stand_in`` processes with the offline stand-in LLM (deterministic rules, not a model)
    and turns its embeddings on, for trying the server without an LLM.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: str | None = None
    access_token: SecretStr | None = field(default=None, repr=False)
    stand_in: bool = False
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    drain_timeout: float = 30.0
    idle_flush_seconds: float | None = 300.0
    threads: int = 32
    access_log: bool = False
    log_level: str = "info"

    def check(self) -> None:
        """Refuse settings that would be unsafe or cannot work, saying what to do."""
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"--port must be between 0 and 65535, got {self.port}.")
        if self.workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {self.workers}.")
        if self.max_body_bytes < 1024:
            raise ConfigurationError(
                f"--max-body-bytes must be at least 1024, got {self.max_body_bytes}."
            )
        if self.drain_timeout < 0:
            raise ConfigurationError(f"--drain-timeout must be >= 0, got {self.drain_timeout}.")
        if self.threads < 1:
            raise ConfigurationError(f"--threads must be at least 1, got {self.threads}.")
        token = self.access_token.get_secret_value() if self.access_token else ""
        if self.access_token is not None and not token.strip():
            raise ConfigurationError(
                f"The access token is empty. Set {TOKEN_ENV} to a long random secret, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'."
            )
        if not token and not is_loopback(self.host):
            raise ConfigurationError(
                f"Refusing to serve on {self.host} without an access token: anyone who can "
                f"reach the port could read and change every user's memory. Set {TOKEN_ENV} "
                "(clients send it as 'Authorization: Bearer <token>', the SDKs as api_key), "
                "or bind to 127.0.0.1."
            )
        if self.workers > 1:
            url = (self.database_url or os.environ.get("MEMOBASE_DATABASE_URL") or "").lower()
            if not url.startswith(("postgresql", "postgres")):
                raise ConfigurationError(
                    "--workers above 1 needs PostgreSQL (--database-url postgresql+psycopg://"
                    "...): SQLite has a single writer, so more processes would only queue on "
                    "its lock. Use --workers 1 with SQLite."
                )

    # -- passing the settings to uvicorn's worker processes -------------------------------
    def to_env(self) -> dict[str, str]:
        """Environment variables that let :meth:`from_env` rebuild these settings."""
        values = asdict(self)
        values.pop("access_token")
        env = {CONFIG_ENV: json.dumps(values)}
        if self.access_token is not None:
            env[TOKEN_ENV] = self.access_token.get_secret_value()
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if env is None else env
        raw = env.get(CONFIG_ENV)
        values: dict[str, Any] = json.loads(raw) if raw else {}
        config = cls(**values)
        token = env.get(TOKEN_ENV)
        return replace(config, access_token=SecretStr(token)) if token else config
