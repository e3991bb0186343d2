"""Against a Memobase server, search stays the server's, which needs embeddings: when they
are off there, the typed error says so and what to do.

A server with ``enable_event_embedding: false`` answers event and gist search with errno 501
and ``Event embedding is not enabled`` (memobase_server ``controllers/event*.py``); no
recording holds it, so the envelope is written here in the recorded envelope's shape (an
error envelope on HTTP 200, as ``14_llm_unavailable.json`` shows for errno 503; HTTP 501 is
covered too).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from memobase_integrations import Memobase, errors
from memobase_integrations.backends.remote import RemoteBackend

USER = UUID("2b8f5f7e-1c4d-4e8a-9b6f-0d2c3a4b5c60")
OFF = {"data": None, "errno": 501, "errmsg": "Event embedding is not enabled"}


def _memobase(tmp_path: Path, status: int) -> tuple[Memobase, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=OFF)

    transport = httpx.MockTransport(answer)
    backend = RemoteBackend(
        "http://memobase.test",
        "sk-proj-test",
        transport=transport,
        async_transport=transport,
        outbox_path=tmp_path / "outbox.db",
        auto_create_users=False,
    )
    return Memobase(backend), seen


@pytest.mark.parametrize("status", [200, 501])
def test_search_on_a_server_without_embeddings_says_what_to_do(tmp_path: Path, status: int) -> None:
    mb, seen = _memobase(tmp_path, status)
    try:
        user = mb.user(USER)
        for search in (user.search_events, user.search_gists):
            with pytest.raises(errors.UnsupportedError) as info:
                search("hiking")
            message = str(info.value)
            assert "Event embedding is not enabled" in message
            assert "searches events and gists by embeddings only" in message
            assert "enable_event_embedding: true" in message and "config.yaml" in message
            assert "events()" in message
        with pytest.raises(errors.UnsupportedError, match="enable_event_embedding: true"):
            asyncio.run(user.asearch_gists("hiking"))
        # The search went to the server: the remote backend never searches locally.
        assert [r.url.path for r in seen][:2] == [
            f"/api/v1/users/event/search/{USER}",
            f"/api/v1/users/event_gist/search/{USER}",
        ]
    finally:
        mb.close()


def test_another_501_keeps_the_generic_hint(tmp_path: Path) -> None:
    mb, _ = _memobase(tmp_path, 200)
    try:
        with pytest.raises(errors.UnsupportedError) as info:
            mb.user(USER).profile()
        assert "searches events and gists" not in str(info.value)
    finally:
        mb.close()
