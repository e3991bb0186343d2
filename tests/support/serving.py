"""A real ``serve`` for tests: uvicorn on 127.0.0.1 (ephemeral port) in a thread.

The app is the one the CLI serves (:func:`create_app`, :func:`uvicorn_config`, the socket
from :func:`bind`), on an embedded engine that processes with the offline stand-in LLM
(deterministic rules, not a model) with its embeddings on. SQLite or a PostgreSQL schema of
the test's own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from pydantic import SecretStr

from memobase_integrations import Memobase
from memobase_integrations.server import ServerConfig, create_app
from memobase_integrations.server.runner import bind, uvicorn_config
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import StandInLLM

TOKEN = "serve-test-token-7f3a9c"

#: Memobase's own behaviour: processing over the threshold or on an explicit flush only.
SERVER_LIKE = FlushPolicy(idle_flush_seconds=None, worker_poll_seconds=0.05)


@dataclass(frozen=True)
class Store:
    """Where a test's engine keeps its data."""

    url: str
    engine_options: dict[str, Any] = field(default_factory=dict)


@contextmanager
def pg_store(base_url: str) -> Iterator[Store]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"mbs_{uuid.uuid4().hex[:12]}"
    url = base_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Store(url, {"connect_args": {"options": f"-csearch_path={schema}"}})
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def sqlite_store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'serve.db'}")


@dataclass
class Served:
    """A running server: its URL, token, engine and stand-in LLM."""

    url: str
    token: str
    mb: Memobase
    llm: StandInLLM

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **options: Any) -> httpx.Client:
        options.setdefault("timeout", 120)
        return httpx.Client(base_url=self.url, headers=self.headers(), **options)


@contextmanager
def run_app(app: Any, config: ServerConfig) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread until the block ends; yields the base URL."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="serve-test", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)
        sock.close()


@contextmanager
def serving(
    store: Store,
    *,
    token: str | None = TOKEN,
    policy: FlushPolicy = SERVER_LIKE,
    llm: StandInLLM | None = None,
    **config: Any,
) -> Iterator[Served]:
    """An engine on ``store`` behind a real ``serve`` app; both closed afterwards."""
    stand_in = llm or StandInLLM()
    mb = Memobase.embedded(
        store.url,
        llm=stand_in.settings(enable_embeddings=True),
        policy=policy,
        engine_options=dict(store.engine_options),
    )
    settings = ServerConfig(
        access_token=SecretStr(token) if token is not None else None,
        drain_timeout=30,
        **config,
    )
    try:
        with run_app(create_app(settings, memobase=mb), settings) as url:
            yield Served(url, token or "any-token", mb, stand_in)
    finally:
        mb.close(timeout=30)
