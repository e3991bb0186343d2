"""Faults below and above HTTP, mapped to typed errors; retries only where they are safe.

Every test counts the attempts the transport saw: reads are retried on connection errors,
timeouts and 502/503/504; writes only when the request certainly never left (connect
errors), never after a read timeout or a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from memobase_integrations import errors
from memobase_integrations.backends.http import (
    Call,
    HttpCore,
    Request,
    SendOutcome,
    clean_errmsg,
    normalise_project_url,
    send_outcome,
)
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.models import BlobType, ChatBlob, OpenAICompatibleMessage
from memobase_integrations.values import ContextOptions, ProfileOptions

from .replay import find, ok

USER = UUID("2b8f5f7e-1c4d-4e8a-9b6f-0d2c3a4b5c60")
SECRET = "sk-proj-acme-SUPERSECRETVALUE42"
BLOB = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content="hello")])

Behaviour = Exception | httpx.Response


class Script:
    """A transport handler playing a script of failures/answers and counting calls."""

    def __init__(self, *steps: Behaviour, default: Behaviour | None = None) -> None:
        self.steps = list(steps)
        self.default = default
        self.calls = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else self.default
        if step is None:
            raise AssertionError("more requests than scripted")
        if isinstance(step, Exception):
            raise step
        return step


def backend_for(script: Script, tmp_path: Path, max_retries: int = 2) -> RemoteBackend:
    transport = httpx.MockTransport(script)
    return RemoteBackend(
        "http://memobase.test",
        SECRET,
        transport=transport,
        async_transport=transport,
        outbox_path=tmp_path / "outbox.db",
        max_retries=max_retries,
        retry_backoff=0.001,
        retry_backoff_max=0.002,
        auto_create_users=False,
    )


def user_ok() -> httpx.Response:
    return httpx.Response(200, json=ok({"data": None, "id": None}))


def insert_ok() -> httpx.Response:
    return httpx.Response(200, json=ok({"id": str(USER), "chat_results": []}))


def refused() -> Exception:
    return httpx.ConnectError("[Errno 111] Connection refused")


def no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.__cause__)):
        assert "SUPERSECRET" not in text


# -- reads -------------------------------------------------------------------------------------
def test_read_retries_connection_errors_then_succeeds(tmp_path: Path) -> None:
    script = Script(refused(), httpx.ReadTimeout("slow"), user_ok())
    backend = backend_for(script, tmp_path)
    assert backend.get_user(USER).id == USER
    assert script.calls == 3


def test_read_gives_up_after_max_retries_with_connection_error(tmp_path: Path) -> None:
    script = Script(default=refused())
    backend = backend_for(script, tmp_path, max_retries=2)
    with pytest.raises(errors.MemobaseConnectionError) as info:
        backend.get_user(USER)
    assert script.calls == 3
    assert "GET /users/{user_id} could not connect to http://memobase.test/api/v1" in str(
        info.value
    )
    assert "MEMOBASE_PROJECT_URL" in str(info.value)
    no_secret(info.value)


def test_read_timeout_becomes_timeout_error_after_retries(tmp_path: Path) -> None:
    script = Script(default=httpx.ReadTimeout("timed out"))
    backend = backend_for(script, tmp_path, max_retries=1)
    with pytest.raises(errors.MemobaseTimeoutError, match="timed out while waiting for the answer"):
        backend.context(USER, ContextOptions())
    assert script.calls == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (502, errors.ServerError),
        (503, errors.ServiceUnavailableError),
        (504, errors.ServerError),
    ],
)
def test_read_retries_gateway_statuses(
    status: int, error: type[errors.MemobaseError], tmp_path: Path
) -> None:
    script = Script(default=httpx.Response(status, text="Bad gateway"))
    backend = backend_for(script, tmp_path, max_retries=2)
    with pytest.raises(error) as info:
        backend.profile(USER, ProfileOptions())
    assert type(info.value) is error
    assert script.calls == 3
    assert f"HTTP {status}" in str(info.value)


def test_read_http_500_is_not_retried(tmp_path: Path) -> None:
    script = Script(default=httpx.Response(500, text="Internal Server Error"))
    backend = backend_for(script, tmp_path)
    with pytest.raises(errors.ServerError, match="was not JSON"):
        backend.get_user(USER)
    assert script.calls == 1


def test_envelope_error_on_http_200_is_typed_and_not_retried(tmp_path: Path) -> None:
    recorded = find("14_llm_unavailable.json", "event_gist_search_llm_down")["response"]["body"]
    script = Script(default=httpx.Response(200, json=recorded))
    backend = backend_for(script, tmp_path)
    with pytest.raises(errors.ServiceUnavailableError) as info:
        backend.search_gists(USER, "hiking")
    assert script.calls == 1
    assert info.value.errno == 503 and info.value.status_code == 200
    assert "Error in get_embedding: Connection error" in str(info.value)


@pytest.mark.parametrize(
    ("errno", "error"),
    [
        (400, errors.ValidationError),
        (404, errors.NotFoundError),
        (500, errors.ServerError),
        (501, errors.UnsupportedError),
        (503, errors.ServiceUnavailableError),
        (520, errors.ServerError),
    ],
)
def test_every_envelope_errno_maps_to_its_type(
    errno: int, error: type[errors.MemobaseError], tmp_path: Path
) -> None:
    script = Script(
        default=httpx.Response(200, json={"data": None, "errno": errno, "errmsg": "boom"})
    )
    backend = backend_for(script, tmp_path)
    with pytest.raises(error) as info:
        backend.get_profile_config()
    assert type(info.value) is error
    assert f"GET /project/profile_config failed (errno {errno}): boom." in str(info.value)


def test_malformed_json_is_a_server_error_saying_so(tmp_path: Path) -> None:
    script = Script(default=httpx.Response(200, text='{"data": {"id": '))
    backend = backend_for(script, tmp_path)
    with pytest.raises(errors.ServerError) as info:
        backend.create_user()
    assert "the answer (HTTP 200) was not JSON" in str(info.value)
    assert "POST /users" in str(info.value)


def test_json_that_is_not_an_envelope_is_refused(tmp_path: Path) -> None:
    script = Script(default=httpx.Response(200, json=[1, 2, 3]))
    backend = backend_for(script, tmp_path)
    with pytest.raises(errors.ServerError, match="not a Memobase envelope"):
        backend.healthcheck()


def test_answer_shape_the_models_cannot_read_is_a_server_error(tmp_path: Path) -> None:
    script = Script(default=httpx.Response(200, json=ok({"profiles": [{"id": "not-a-uuid"}]})))
    backend = backend_for(script, tmp_path)
    with pytest.raises(errors.ServerError, match="answered data this client cannot read"):
        backend.profile(USER, ProfileOptions())


# -- writes ------------------------------------------------------------------------------------
WRITES: dict[str, Callable[[RemoteBackend], Any]] = {
    "insert": lambda b: b.insert(USER, BLOB),
    "flush": lambda b: b.flush(USER, BlobType.chat),
    "add_profile": lambda b: b.add_profile(USER, "x", "a", "b"),
    "create_user": lambda b: b.create_user(USER),
    "delete_user": lambda b: b.delete_user(USER),
}


@pytest.mark.parametrize("call", list(WRITES))
def test_writes_are_retried_only_when_nothing_was_sent(call: str, tmp_path: Path) -> None:
    script = Script(default=refused())
    backend = backend_for(script, tmp_path, max_retries=2)
    with pytest.raises(errors.MemobaseConnectionError):
        WRITES[call](backend)
    assert script.calls == 3  # connect refused: the request never left, retrying is safe


@pytest.mark.parametrize("call", list(WRITES))
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response"),
        httpx.Response(503, text="Service Unavailable"),
        httpx.Response(502, text="Bad Gateway"),
    ],
    ids=["read-timeout", "dropped", "http-503", "http-502"],
)
def test_writes_are_not_retried_once_the_request_may_have_arrived(
    call: str, failure: Behaviour, tmp_path: Path
) -> None:
    script = Script(default=failure)
    backend = backend_for(script, tmp_path, max_retries=3)
    with pytest.raises(errors.MemobaseError) as info:
        WRITES[call](backend)
    assert script.calls == 1
    assert send_outcome(info.value) is SendOutcome.UNKNOWN
    no_secret(info.value)


def test_write_succeeds_after_a_refused_connection(tmp_path: Path) -> None:
    script = Script(refused(), httpx.ConnectTimeout("connect timeout"), insert_ok())
    backend = backend_for(script, tmp_path)
    assert backend.insert(USER, BLOB).id == USER
    assert script.calls == 3


async def test_async_retries_count_like_sync(tmp_path: Path) -> None:
    reads = Script(refused(), refused(), user_ok())
    backend = backend_for(reads, tmp_path)
    assert (await backend.aget_user(USER)).id == USER
    assert reads.calls == 3
    writes = Script(default=httpx.ReadTimeout("slow"))
    backend = backend_for(writes, tmp_path / "w")
    with pytest.raises(errors.MemobaseTimeoutError):
        await backend.ainsert(USER, BLOB)
    assert writes.calls == 1


def test_send_outcome_tells_refusals_from_lost_answers(tmp_path: Path) -> None:
    answered = Script(default=httpx.Response(200, json={"data": None, "errno": 500, "errmsg": "x"}))
    with pytest.raises(errors.ServerError) as info:
        backend_for(answered, tmp_path).insert(USER, BLOB)
    assert send_outcome(info.value) is SendOutcome.ANSWERED
    rejected = Script(
        default=httpx.Response(422, json={"detail": [{"loc": ["body"], "msg": "bad"}]})
    )
    with pytest.raises(errors.ValidationError) as info2:
        backend_for(rejected, tmp_path / "2").insert(USER, BLOB)
    assert send_outcome(info2.value) is SendOutcome.ANSWERED
    never = Script(default=refused())
    with pytest.raises(errors.MemobaseConnectionError) as info3:
        backend_for(never, tmp_path / "3", max_retries=0).insert(USER, BLOB)
    assert send_outcome(info3.value) is SendOutcome.NOT_SENT


# -- FastAPI answers outside the envelope ------------------------------------------------------
def _core(handler: Callable[[httpx.Request], httpx.Response]) -> HttpCore:
    return HttpCore(
        "http://memobase.test/api/v1",
        SECRET,
        timeout=1,
        max_retries=0,
        backoff=0.001,
        backoff_max=0.001,
        transport=httpx.MockTransport(handler),
    )


def test_unknown_route_and_wrong_method_are_explained() -> None:
    not_found = find("05_bad_inputs.json", "auth_unknown_api_path")["response"]
    wrong_method = find("05_bad_inputs.json", "wrong_method")["response"]
    core = _core(lambda r: httpx.Response(not_found["status"], json=not_found["body"]))
    with pytest.raises(errors.NotFoundError) as info:
        core.send(Request(Call("GET", "/does-not-exist"), lambda d: d))
    assert "no such route" in str(info.value) and "project_url" in str(info.value)
    core = _core(lambda r: httpx.Response(wrong_method["status"], json=wrong_method["body"]))
    with pytest.raises(errors.UnsupportedError, match="does not allow this method"):
        core.send(Request(Call("PUT", "/users/{user_id}"), lambda d: d, {"user_id": "x"}))


def test_auth_failure_without_a_key_in_the_message() -> None:
    recorded = find("05_bad_inputs.json", "bearer_unknown_project_token")["response"]
    core = _core(lambda r: httpx.Response(recorded["status"], json=recorded["body"]))
    with pytest.raises(errors.AuthenticationError) as info:
        core.send(Request(Call("GET", "/users/{user_id}"), lambda d: d, {"user_id": str(USER)}))
    assert "Your project is not exists" in str(info.value)
    no_secret(info.value)


def test_key_never_appears_in_reprs_or_errors(tmp_path: Path) -> None:
    script = Script(
        httpx.Response(401, json={"data": None, "errno": 401, "errmsg": "Unauthorized"}),
        httpx.Response(200, text="<html>"),
        refused(),
        default=httpx.ReadTimeout("t"),
    )
    backend = backend_for(script, tmp_path, max_retries=0)
    assert repr(backend) == "RemoteBackend(url='http://memobase.test/api/v1')"
    assert "SUPERSECRET" not in repr(backend._http) and "SUPERSECRET" not in str(vars(backend))
    for _ in range(4):
        with pytest.raises(errors.MemobaseError) as info:
            backend.get_user(USER)
        no_secret(info.value)
    # ... while the key is really sent, as a Bearer token
    assert script.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_clean_errmsg_drops_sql_parameters_and_boilerplate() -> None:
    raw = find("01_healthcheck_and_users.json", "create_user_duplicate_id")["response"]["body"]
    cleaned = clean_errmsg(raw["errmsg"])
    assert cleaned.startswith("(psycopg2.errors.UniqueViolation) duplicate key value")
    for noise in (
        "Sorry, we have",
        "[SQL",
        "[parameters",
        "additional_fields",
        "Please report",
        "sqlalche.me",
    ):
        assert noise not in cleaned
    assert len(clean_errmsg("x" * 5000)) == 400


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://api.memobase.dev", "https://api.memobase.dev/api/v1"),
        ("https://api.memobase.dev/", "https://api.memobase.dev/api/v1"),
        ("http://localhost:8019/api/v1", "http://localhost:8019/api/v1"),
        ("http://localhost:8019/api/v1/", "http://localhost:8019/api/v1"),
        ("http://example.com/memobase/", "http://example.com/memobase/api/v1"),
        ("  http://example.com  ", "http://example.com/api/v1"),
    ],
)
def test_project_url_is_normalised(given: str, base: str) -> None:
    assert normalise_project_url(given) == base


def test_requests_go_under_the_path_prefix(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=ok(None))

    backend = RemoteBackend(
        "http://example.com/memobase/",
        "k",
        transport=httpx.MockTransport(handler),
        outbox_path=tmp_path / "o.db",
    )
    backend.healthcheck()
    assert seen == ["http://example.com/memobase/api/v1/healthcheck"]


@pytest.mark.parametrize("url", ["api.memobase.dev", "ftp://x", "http://x?a=1", ""])
def test_bad_project_urls_are_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMOBASE_PROJECT_URL", raising=False)
    with pytest.raises(errors.ConfigurationError) as info:
        RemoteBackend(url, "key")
    assert "MEMOBASE_PROJECT_URL" in str(info.value)


def test_missing_key_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMOBASE_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="MEMOBASE_API_KEY"):
        RemoteBackend("http://localhost:8019")
    with pytest.raises(errors.ConfigurationError, match="spaces"):
        RemoteBackend("http://localhost:8019", "sk-proj a b")


def test_url_and_key_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEMOBASE_PROJECT_URL", "http://env-server:8019")
    monkeypatch.setenv("MEMOBASE_API_KEY", SECRET)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ok(None))

    backend = RemoteBackend(transport=httpx.MockTransport(handler), outbox_path=tmp_path / "o")
    assert backend.ping() is True
    assert seen[0].url.host == "env-server"
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_ping_is_false_instead_of_raising(tmp_path: Path) -> None:
    backend = backend_for(Script(default=refused()), tmp_path, max_retries=0)
    assert backend.ping() is False
    assert asyncio.run(backend.aping()) is False


def test_closed_backend_refuses_network_calls(tmp_path: Path) -> None:
    backend = backend_for(Script(default=user_ok()), tmp_path)
    backend.close()
    with pytest.raises(errors.MemobaseError, match="closed"):
        backend.get_user(USER)


def test_unprocessable_answer_lists_fields_without_echoing_input() -> None:
    body = {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "content"],
                "msg": "Field required",
                "input": {"secret": "user text"},
            },
        ]
    }
    core = _core(lambda r: httpx.Response(422, json=body))
    with pytest.raises(errors.ValidationError) as info:
        core.send(
            Request(
                Call("POST", "/users/profile/{user_id}"), lambda d: d, {"user_id": "u"}, json={}
            )
        )
    assert "body.content: Field required" in str(info.value)
    assert "user text" not in str(info.value)
    assert json.dumps(info.value.detail)  # the raw detail stays available to callers
