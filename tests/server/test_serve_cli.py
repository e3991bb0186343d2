"""``memobase-integrations serve`` as a command: lazy imports, refusals, several processes.

Each refusal is one line on stderr with exit code 4 (invalid configuration) and nothing
opened or bound. ``--workers 2`` runs two server processes on one PostgreSQL store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from memobase_integrations.server import ServerConfig


def serve_cmd(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MEMOBASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "memobase_integrations", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
    )


def test_the_core_and_the_cli_never_import_the_web_stack() -> None:
    code = (
        "import sys, memobase_integrations, memobase_integrations.cli.app; "
        "from memobase_integrations import Memobase; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_without_an_llm_says_what_to_set(tmp_path: Path) -> None:
    done = serve_cmd("--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 4, done.stderr
    assert "OPENAI_API_KEY" in done.stderr and "--stand-in" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    done = serve_cmd("--workers", "2", "--stand-in", "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert done.returncode == 4 and "needs PostgreSQL" in done.stderr, done.stderr


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = serve_cmd(
            "--stand-in", "--port", str(port), "--database-url", f"sqlite:///{tmp_path}/x.db"
        )
    assert done.returncode == 4, done.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_the_settings_reach_worker_processes_through_the_environment() -> None:
    from pydantic import SecretStr

    config = ServerConfig(port=9000, workers=3, access_token=SecretStr("abc"), stand_in=True)
    env = config.to_env()
    assert "abc" not in env["MEMOBASE_SERVE_CONFIG"]  # the token travels on its own
    back = ServerConfig.from_env(env)
    assert back == config and back.access_token is not None
    assert back.access_token.get_secret_value() == "abc"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL schema of the test's own, named in the URL (the CLI takes no engine
    options): ``options=-csearch_path=...``."""
    schema = f"mbs_{uuid.uuid4().hex[:12]}"
    base = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_worker_processes_on_postgresql(pg_url: str) -> None:
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MEMOBASE_"))}
    env = {**base, "MEMOBASE_ACCESS_TOKEN": "w0rk3rs"}
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "memobase_integrations", "serve", "--workers", "2"),
            *("--stand-in", "--port", str(port), "--database-url", pg_url),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": "Bearer w0rk3rs"}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/healthcheck", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert child.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        users = [str(uuid.uuid4()) for _ in range(6)]
        with httpx.Client(base_url=api, headers=headers, timeout=120) as c:
            for i, user in enumerate(users):
                assert c.post("/users", json={"id": user}).json()["errno"] == 0
                chat = {"messages": [{"role": "user", "content": f"I live in Town{i}."}]}
                r = c.post(f"/blobs/insert/{user}", json={"blob_type": "chat", "blob_data": chat})
                assert r.json()["errno"] == 0, r.text
            for i, user in enumerate(users):
                flushed = c.post(f"/users/buffer/{user}/chat", params={"wait_process": "true"})
                assert flushed.json()["errno"] == 0, flushed.text
                context = c.get(f"/users/context/{user}").json()["data"]["context"]
                assert f"Town{i}" in context
            assert httpx.get(f"{api}/users/{users[0]}").status_code == 401  # token checked
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.stderr is not None
    log = child.stderr.read()
    assert log.count("Application startup complete") == 2, log[-2000:]
    assert "w0rk3rs" not in log
