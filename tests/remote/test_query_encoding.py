"""Query strings: repeated list keys, JSON parameters, and user text that survives.

The official SDK builds query strings by hand, so ``&`` or ``#`` in a search text breaks its
request. Here every value goes through httpx's encoder; these tests decode what was really
sent and compare it with what was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl
from uuid import UUID

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memobase_integrations.backends.http import JsonParam, encode_query
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.messages import Message
from memobase_integrations.values import ContextOptions, ProfileOptions

from .replay import ok

USER = UUID("2b8f5f7e-1c4d-4e8a-9b6f-0d2c3a4b5c60")
NASTY = "rock & roll #1 + C++ = 100% café 日本語 😀 a=b?c/d\\e \"q\" 'x'\nnew line"


class Capture:
    def __init__(self, data: object) -> None:
        self.data = data
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=ok(self.data))

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def params(self) -> list[tuple[str, str]]:
        """The query as the server decodes it (application/x-www-form-urlencoded)."""
        return parse_qsl(self.last.url.query.decode(), keep_blank_values=True)


@pytest.fixture
def capture_backend(tmp_path: Path) -> tuple[RemoteBackend, Capture]:
    cap = Capture({"context": "ctx", "events": [], "gists": [], "profiles": []})
    transport = httpx.MockTransport(cap)
    backend = RemoteBackend(
        "http://memobase.test",
        "key",
        transport=transport,
        async_transport=transport,
        outbox_path=tmp_path / "o.db",
    )
    return backend, cap


def test_user_text_round_trips_through_the_query(
    capture_backend: tuple[RemoteBackend, Capture],
) -> None:
    backend, cap = capture_backend
    backend.search_events(USER, NASTY)
    assert cap.params() == [("query", NASTY)]
    raw = cap.last.url.query.decode()
    assert "%26" in raw and "%23" in raw and "%2B" in raw and "#" not in raw
    backend.search_gists(USER, NASTY, topk=3)
    assert cap.params() == [("query", NASTY), ("topk", "3")]


def test_lists_are_repeated_keys_and_json_params_are_json(
    capture_backend: tuple[RemoteBackend, Capture],
) -> None:
    backend, cap = capture_backend
    chats = [Message.of("user", NASTY), Message.of("assistant", "ok", name="Bo & Co")]
    backend.context(
        USER,
        ContextOptions(
            max_token_size=500,
            prefer_topics=["interest", "a&b"],
            only_topics=["work", "basic#info"],
            topic_limits={"work": 1, "intérêt": 2},
            chats=chats,
            customize_context_prompt="{profile_section}\n& {event_section} #",
            fill_window_with_events=True,
        ),
    )
    params = cap.params()
    multi: dict[str, list[str]] = {}
    for key, value in params:
        multi.setdefault(key, []).append(value)
    assert multi["prefer_topics"] == ["interest", "a&b"]
    assert multi["only_topics"] == ["work", "basic#info"]
    assert json.loads(multi["topic_limits_json"][0]) == {"work": 1, "intérêt": 2}
    assert json.loads(multi["chats_str"][0]) == [
        {"role": "user", "content": NASTY},
        {"role": "assistant", "content": "ok", "alias": "Bo & Co"},
    ]
    assert multi["customize_context_prompt"] == ["{profile_section}\n& {event_section} #"]
    assert multi["fill_window_with_events"] == ["true"]
    assert multi["max_token_size"] == ["500"]


def test_server_defaults_are_not_sent(capture_backend: tuple[RemoteBackend, Capture]) -> None:
    backend, cap = capture_backend
    backend.context(USER, ContextOptions())
    assert cap.last.url.query == b""
    backend.profile(USER, ProfileOptions())
    assert cap.last.url.query == b""
    backend.events(USER)
    assert cap.last.url.query == b""
    backend.context(USER, ContextOptions(full_profile_and_only_search_event=False))
    assert cap.params() == [("full_profile_and_only_search_event", "false")]


def test_profile_filters_and_tags(capture_backend: tuple[RemoteBackend, Capture]) -> None:
    backend, cap = capture_backend
    backend.profile(USER, ProfileOptions(topk=3, only_topics=["a", "b"], max_subtopic_size=2))
    assert cap.params() == [
        ("topk", "3"),
        ("only_topics", "a"),
        ("only_topics", "b"),
        ("max_subtopic_size", "2"),
    ]
    backend.search_events_by_tags(
        USER, tags=["emotion", "location"], tag_values={"location": "Berlin"}
    )
    assert cap.params() == [("tags", "emotion,location"), ("tag_values", "location=Berlin")]


async def test_async_sends_the_same_query(capture_backend: tuple[RemoteBackend, Capture]) -> None:
    backend, cap = capture_backend
    options = ContextOptions(prefer_topics=["x&y"], chats=[Message.of("user", NASTY)])
    backend.context(USER, options)
    sync_url = str(cap.last.url)
    await backend.acontext(USER, options)
    assert str(cap.last.url) == sync_url


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=80), topics=st.lists(st.text(max_size=12), max_size=4))
def test_any_unicode_round_trips(text: str, topics: list[str]) -> None:
    pairs = encode_query(
        [("query", text), ("only_topics", topics), ("chats_str", JsonParam([{"content": text}]))]
    )
    url = httpx.URL("http://memobase.test/x", params=pairs)
    decoded = parse_qsl(url.query.decode(), keep_blank_values=True)
    assert decoded[0] == ("query", text)
    assert [v for k, v in decoded if k == "only_topics"] == topics
    assert json.loads(dict(decoded)["chats_str"]) == [{"content": text}]


def test_path_values_are_escaped(capture_backend: tuple[RemoteBackend, Capture]) -> None:
    from memobase_integrations.backends.http import Call, Request

    backend, cap = capture_backend
    backend._http.send(
        Request(Call("GET", "/users/{user_id}"), lambda d: d, {"user_id": "a/b?c#d"})
    )
    assert cap.last.url.raw_path == b"/api/v1/users/a%2Fb%3Fc%23d"
