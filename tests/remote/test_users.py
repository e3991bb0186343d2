"""Users: get-or-create (race tolerated), creation on first insert, update without nesting.

Built from recorded answers: ``get_missing_user`` (errno 404), ``create_user_duplicate_id``
(errno 500 UniqueViolation) and ``insert_for_missing_user`` (errno 500 ForeignKeyViolation).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from memobase_integrations import errors
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.models import ChatBlob, OpenAICompatibleMessage

from .replay import TEST_KEY, Replay, exchange, find, ok

MISSING = UUID("5e1a3f4c-6d7b-4c8e-af90-b1c2d3e4f5ff")  # the user of the recorded 404s
USER_PATH = f"/api/v1/users/{MISSING}"
INSERT_PATH = f"/api/v1/blobs/insert/{MISSING}"
BLOB = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content="Hi, I am Ann.")])
BLOB_ID = "89f30e0b-1911-43dc-a49e-2ea3f499aeb4"


def _answer(scenario: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(find(scenario, name)["response"]["body"])
    return body


def get_404() -> dict[str, Any]:
    return exchange("get", "GET", USER_PATH, _answer("05_bad_inputs.json", "get_missing_user"))


def create(response: dict[str, Any] | None = None, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(MISSING)}
    if data is not None:
        body["data"] = data
    return exchange(
        "create", "POST", "/api/v1/users", response or ok({"id": str(MISSING)}), body=body
    )


def insert(response: dict[str, Any] | None = None) -> dict[str, Any]:
    return exchange(
        "insert",
        "POST",
        INSERT_PATH,
        response or ok({"id": BLOB_ID, "chat_results": []}),
        body=BLOB.to_request(),
    )


def _backend(replay: Replay, tmp_path: Path) -> RemoteBackend:
    transport = httpx.MockTransport(replay)
    return RemoteBackend(
        "http://memobase.test",
        TEST_KEY,
        transport=transport,
        async_transport=transport,
        outbox_path=tmp_path / "outbox.db",
        max_retries=0,
    )


def test_get_or_create_creates_a_missing_user_once(tmp_path: Path) -> None:
    replay = Replay([get_404(), create(data={"plan": "free"})])
    backend = _backend(replay, tmp_path)
    user = backend.get_or_create_user(MISSING, {"plan": "free"})
    assert user.id == MISSING and user.data == {"plan": "free"}
    backend.ensure_user(MISSING)  # cached: no request (the replay would fail on one)
    assert replay.done and len(replay.requests) == 2
    backend.close()


def test_create_race_counts_as_exists(tmp_path: Path) -> None:
    """Another client created the user between our GET and POST: the server's
    UniqueViolation (errno 500) means "exists", not an error."""
    duplicate = _answer("01_healthcheck_and_users.json", "create_user_duplicate_id")
    assert "UniqueViolation" in duplicate["errmsg"]
    replay = Replay([get_404(), create(duplicate)])
    backend = _backend(replay, tmp_path)
    backend.ensure_user(MISSING)
    assert replay.done
    backend.ensure_user(MISSING)  # and now known
    assert len(replay.requests) == 2
    backend.close()


def test_other_create_failures_are_not_swallowed(tmp_path: Path) -> None:
    replay = Replay([get_404(), create({"data": None, "errno": 500, "errmsg": "disk full"})])
    backend = _backend(replay, tmp_path)
    with pytest.raises(errors.ServerError, match="disk full"):
        backend.ensure_user(MISSING)
    backend.close()


def test_insert_creates_the_user_first_so_callers_never_see_the_fk_error(
    tmp_path: Path,
) -> None:
    replay = Replay([get_404(), create(), insert(), insert()])
    backend = _backend(replay, tmp_path)
    assert str(backend.insert(MISSING, BLOB).id) == BLOB_ID
    assert str(backend.insert(MISSING, BLOB).id) == BLOB_ID  # second insert: no user check
    assert replay.done
    backend.close()


def test_insert_recovers_when_the_user_was_deleted_behind_the_cache(tmp_path: Path) -> None:
    fk_error = _answer("05_bad_inputs.json", "insert_for_missing_user")
    replay = Replay(
        [get_404(), create(), insert(), insert(fk_error), get_404(), create(), insert()]
    )
    backend = _backend(replay, tmp_path)
    backend.insert(MISSING, BLOB)
    assert str(backend.insert(MISSING, BLOB).id) == BLOB_ID  # FK error -> create -> retry
    assert replay.done
    backend.close()


async def test_async_insert_creates_the_user_first(tmp_path: Path) -> None:
    fk_error = _answer("05_bad_inputs.json", "insert_for_missing_user")
    replay = Replay([get_404(), create(), insert(fk_error), get_404(), create(), insert()])
    backend = _backend(replay, tmp_path)
    result = await backend.ainsert(MISSING, BLOB)
    assert str(result.id) == BLOB_ID and replay.done
    await backend.aclose()


def test_add_profile_creates_the_user_first(tmp_path: Path) -> None:
    body = {"content": "likes tea", "attributes": {"topic": "interest", "sub_topic": "drink"}}
    pid = "18d7cef2-cc2a-4456-99de-a7f7e9bd9d6d"
    add = exchange("add", "POST", f"/api/v1/users/profile/{MISSING}", ok({"id": pid}), body=body)
    replay = Replay([get_404(), create(), add])
    backend = _backend(replay, tmp_path)
    assert str(backend.add_profile(MISSING, "likes tea", "interest", "drink")) == pid
    assert replay.done
    backend.close()


def test_update_user_sends_the_data_itself_not_nested(tmp_path: Path) -> None:
    """The SDK sends {"data": {...}} and the server stores it nested (recorded as
    update_user_sdk_style); we send the dict and read it back flat."""
    scenario = "01_healthcheck_and_users.json"
    replay = Replay(
        [find(scenario, "update_user_plain_object"), find(scenario, "get_user_after_plain_update")]
    )
    backend = _backend(replay, tmp_path)
    uid = UUID("6f1c2b0e-8a53-4d3e-9a57-3f2e1c9b7a10")
    backend.update_user(uid, {"name": "plain", "tier": 3})
    assert json.loads(replay.requests[0].content) == {"name": "plain", "tier": 3}
    assert backend.get_user(uid).data == {"name": "plain", "tier": 3}
    backend.close()


def test_delete_user_tolerates_a_missing_user_but_not_a_wrong_url(tmp_path: Path) -> None:
    gone = _answer("01_healthcheck_and_users.json", "delete_user_again")
    route_404 = _answer("05_bad_inputs.json", "auth_unknown_api_path")
    replay = Replay(
        [
            exchange("delete", "DELETE", USER_PATH, gone),
            exchange("delete", "DELETE", USER_PATH, route_404, status=404),
        ]
    )
    backend = _backend(replay, tmp_path)
    assert backend.delete_user(MISSING) is False  # errno 404: nothing to forget
    with pytest.raises(errors.NotFoundError, match="no such route"):
        backend.delete_user(MISSING)
    backend.close()


def test_get_user_reports_the_id_the_server_leaves_null(tmp_path: Path) -> None:
    recorded = find("01_healthcheck_and_users.json", "get_user_given")
    assert recorded["response"]["body"]["data"]["id"] is None
    replay = Replay([recorded])
    backend = _backend(replay, tmp_path)
    user = backend.get_user(UUID("6f1c2b0e-8a53-4d3e-9a57-3f2e1c9b7a10"))
    assert user.id == UUID("6f1c2b0e-8a53-4d3e-9a57-3f2e1c9b7a10")
    backend.close()


def test_get_or_create_async_matches_sync(tmp_path: Path) -> None:
    sync_replay = Replay([get_404(), create()])
    async_replay = Replay([get_404(), create()])
    sync_backend = _backend(sync_replay, tmp_path / "s")
    async_backend = _backend(async_replay, tmp_path / "a")
    a = sync_backend.get_or_create_user(MISSING)
    b = asyncio.run(async_backend.aget_or_create_user(MISSING))
    assert a == b
    assert [r.content for r in sync_replay.requests] == [r.content for r in async_replay.requests]
    sync_backend.close()
    asyncio.run(async_backend.aclose())
