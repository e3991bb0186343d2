"""Security by default: the token, its comparison, where it is required, size limits.

The 401/404/405 answers must have the recorded shapes (``05_bad_inputs.json``); the token
comparison must go through :func:`hmac.compare_digest` on digests (checked with a spy: a
plain ``==`` would not call it); a server bound beyond loopback must refuse to start
without a token; bodies over the limit get HTTP 413 with a clear message, and the real
server's 65,535-character config limit is errno 400.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from support.serving import TOKEN, Served, Store, serving

from memobase_integrations.errors import ConfigurationError
from memobase_integrations.server import ServerConfig

USER = "5e1a3f4c-6d7b-4c8e-af90-b1c2d3e4f561"
UNAUTHORIZED = f"Unauthorized access to /api/v1/users/{USER}. "


def chat(text: str) -> dict[str, Any]:
    return {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": text}]}}


@pytest.fixture
def small(sqlite: Store) -> Iterator[Served]:
    """A server with a 4 KiB body limit."""
    with serving(sqlite, max_body_bytes=4096) as s:
        yield s


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "You have to provide a valid Bearer token."),
        ("Basic c2VjcmV0", "You have to provide a valid Bearer token."),
        (f"bearer {TOKEN}", "You have to provide a valid Bearer token."),
        ("Bearer", "You have to provide a valid Bearer token."),
        ("Bearer wrong", "CODE 401; ERROR Wrong access token"),
        (f"Bearer  {TOKEN}", "CODE 401; ERROR Wrong access token"),
        (f"Bearer {TOKEN}x", "CODE 401; ERROR Wrong access token"),
        (f"Bearer {TOKEN[:-1]}", "CODE 401; ERROR Wrong access token"),
    ],
)
def test_requests_without_the_token_get_the_recorded_401(
    served: Served, header: str | None, why: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = httpx.get(f"{served.api}/users/{USER}", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["data"] is None and body["errno"] == 401
    assert body["errmsg"].startswith(UNAUTHORIZED + why)
    assert TOKEN not in body["errmsg"] and "x-process-time" not in r.headers  # as recorded


def test_auth_runs_before_routing_and_only_on_the_api(served: Served) -> None:
    """Recorded: an unknown /api path without a token is 401, with one 404; other paths
    (the OpenAPI document, /docs) are public; the healthcheck needs no token."""
    assert httpx.get(f"{served.api}/does-not-exist").status_code == 401
    r = httpx.get(f"{served.api}/does-not-exist", headers=served.headers())
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = httpx.get(f"{served.url}/does-not-exist")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = httpx.patch(f"{served.api}/users/{USER}", headers=served.headers())
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    assert httpx.get(f"{served.api}/healthcheck").json()["errno"] == 0
    document = httpx.get(f"{served.url}/openapi.json").json()
    assert document["info"]["title"].startswith("Memobase")
    assert document["security"] == [{"BearerAuth": []}]  # as the real server declares it
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/healthcheck"]["get"]["security"] == []
    assert httpx.get(f"{served.url}/docs").status_code == 200
    ok = httpx.get(f"{served.api}/users/{USER}", headers=served.headers())
    assert ok.json()["errno"] == 404 and float(ok.headers["x-process-time"]) >= 0


def test_the_token_is_compared_in_constant_time(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check goes through hmac.compare_digest on two SHA-256 digests (equal lengths
    whatever the guess), and the right token passes only through it."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the one server/auth.py calls
    for guess in ("x", "wrong-but-much-longer-than-the-token-itself" * 3, TOKEN):
        httpx.get(f"{served.api}/users/{USER}", headers={"Authorization": f"Bearer {guess}"})
    assert calls == [(32, 32)] * 3
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)
    refused = httpx.get(f"{served.api}/users/{USER}", headers=served.headers())
    assert refused.status_code == 401  # no other path lets the right token in


def test_without_a_token_on_loopback_any_bearer_token_is_accepted(sqlite: Store) -> None:
    """As the real server without ACCESS_TOKEN; a Bearer header is still required."""
    with serving(sqlite, token=None) as s:
        assert httpx.get(f"{s.api}/users/{USER}").status_code == 401
        r = httpx.get(f"{s.api}/users/{USER}", headers={"Authorization": "Bearer anything"})
        assert r.json()["errno"] == 404


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_binding_beyond_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigurationError, match="without an access token"):
        ServerConfig(host=host).check()
    ServerConfig(host=host, access_token=SecretStr("s3cret-token")).check()
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        ServerConfig(host=loopback).check()
    with pytest.raises(ConfigurationError, match="empty"):
        ServerConfig(host=host, access_token=SecretStr("  ")).check()


def test_the_cli_refuses_to_serve_on_all_interfaces_without_a_token(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MEMOBASE_ACCESS_TOKEN"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "memobase_integrations", "serve", "--host", "0.0.0.0"),
            *("--stand-in", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 4, done.stderr  # invalid configuration
    assert "Refusing to serve on 0.0.0.0 without an access token" in done.stderr
    assert "MEMOBASE_ACCESS_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_the_token_never_reaches_logs_or_reprs(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpx.get(f"{served.api}/users/{USER}", headers={"Authorization": "Bearer wrong"})
    httpx.get(f"{served.api}/users/{USER}", headers=served.headers())
    config = ServerConfig(access_token=SecretStr(TOKEN))
    assert TOKEN not in caplog.text and TOKEN not in repr(config) and TOKEN not in str(config)
    assert TOKEN not in json.dumps(config.to_env().get("MEMOBASE_SERVE_CONFIG"))


def test_bodies_over_the_limit_get_413_and_the_server_goes_on(small: Served) -> None:
    with small.client() as c:
        c.post("/api/v1/users", json={"id": USER})
        big = chat("x" * 5000)
        r = c.post(f"/api/v1/blobs/insert/{USER}", json=big)
        assert r.status_code == 413
        assert r.json()["errno"] == 413 and "at most 4096 bytes" in r.json()["errmsg"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}}'

        r = c.post(
            f"/api/v1/blobs/insert/{USER}",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413 and "more than 4096 bytes" in r.json()["errmsg"]
        assert c.post(f"/api/v1/blobs/insert/{USER}", json=chat("hi")).json()["errno"] == 0
        assert len(c.get(f"/api/v1/users/blobs/{USER}/chat").json()["data"]["ids"]) == 1


def test_the_profile_config_limit_is_the_real_servers(served: Served) -> None:
    with served.client() as c:
        too_long = "#" * 65536
        r = c.post("/api/v1/project/profile_config", json={"profile_config": too_long})
        assert r.json()["errno"] == 400 and r.json()["errmsg"].startswith(
            "Profile config is too long"
        )
        fits = "language: en\n" + "#" * (65535 - 13)
        assert len(fits) == 65535
        assert (
            c.post("/api/v1/project/profile_config", json={"profile_config": fits}).json()["errno"]
            == 0
        )
        invalid = c.post("/api/v1/project/profile_config", json={"profile_config": "a: [1"})
        assert invalid.json()["errno"] == 400
