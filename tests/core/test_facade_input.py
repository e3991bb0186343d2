"""Bad input at the facade: a typed error that names the argument and says what to pass
(issue 12, items 13, 17 and 18). The cases are the ones a fuzz run found raising
``TypeError``, ``AttributeError``, ``UnicodeEncodeError`` or pydantic's own error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memobase_integrations import Memobase, UserMemory
from memobase_integrations.errors import (
    ConfigurationError,
    InvalidMessageError,
    InvalidUserIdError,
    MemobaseError,
    ValidationError,
)
from memobase_integrations.messages import (
    DEFAULT_MAX_BLOB_TOKENS,
    DEFAULT_MAX_TURN_CHARS,
    render_blob,
)
from memobase_integrations.models import ChatBlob
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import StandInLLM
from memobase_integrations.tokens import count_tokens

#: Nothing is processed unless a test flushes: no idle flush, no flush on close, and a
#: threshold no turn here reaches (a long turn would otherwise start the worker, and the
#: status would depend on how far it got).
MANUAL = FlushPolicy(buffer_token_threshold=10**9, idle_flush_seconds=None, flush_on_close=False)


@pytest.fixture
def mb(tmp_path: Path) -> Iterator[Memobase]:
    memobase = Memobase.embedded(
        f"sqlite:///{tmp_path / 'm.db'}", llm=StandInLLM().settings(), policy=MANUAL
    )
    yield memobase
    memobase.close(timeout=5)


@pytest.fixture
def alice(mb: Memobase) -> UserMemory:
    return mb.user("alice")


HI = {"role": "user", "content": "Hi, I'm Alice."}


@pytest.mark.parametrize(
    ("messages", "turn_id", "error", "needle"),
    [
        (None, None, InvalidMessageError, "a list of messages, got NoneType"),
        (5, None, InvalidMessageError, "a list of messages, got int"),
        ("hello", None, InvalidMessageError, "got a single str"),
        (HI, None, InvalidMessageError, "got a single dict"),
        ([{"role": "user", "content": None}], None, InvalidMessageError, "must be text"),
        ([{"role": "user", "content": 7}], None, InvalidMessageError, "must be text"),
        ([{**HI, "created_at": [1]}], None, InvalidMessageError, "created_at must be"),
        ([{**HI, "name": 42}], None, InvalidMessageError, "name (alias) must be a str"),
        ([{1: "x", "role": "user"}], None, InvalidMessageError, "'role' and 'content'"),
        ([HI], 12, InvalidMessageError, "turn_id must be a str, not int"),
        ([HI], "", InvalidMessageError, "turn_id is empty"),
        ([HI], "t\udc80", InvalidMessageError, "lone surrogate U+DC80"),
    ],
)
def test_record_refuses_bad_turns_with_typed_errors(
    alice: UserMemory, messages: Any, turn_id: Any, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        alice.record(messages, turn_id=turn_id)
    assert needle in str(info.value)
    assert alice.status().pending_turns == 0  # nothing half-written


async def test_the_async_twin_refuses_the_same(alice: UserMemory) -> None:
    with pytest.raises(InvalidMessageError, match="created_at must be"):
        await alice.arecord([{**HI, "created_at": [1]}])
    with pytest.raises(ValidationError, match=r"events\(\): topk"):
        await alice.aevents(topk="x")  # type: ignore[arg-type]


def test_a_lone_surrogate_in_a_user_id_is_refused(mb: Memobase) -> None:
    with pytest.raises(InvalidUserIdError, match=r"lone surrogate U\+D83D"):
        mb.user("bob\ud83d")


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda u: u.context(max_token_size="a"), ValidationError, "max_token_size got 'a'"),
        (lambda u: u.context(max_token_size=0), ValidationError, "greater than or equal to 1"),
        (lambda u: u.context(prefer_topic=["work"]), ValidationError, "Did you mean"),
        (lambda u: u.context(prefer_topics="work"), ValidationError, "prefer_topics"),
        (lambda u: u.context(chats="hi"), ValidationError, "chats must be a list"),
        (lambda u: u.profile(topk=-1), ValidationError, "topk"),
        (lambda u: u.profile(chats=[{"role": "user", "content": 3}]), InvalidMessageError, "text"),
        (lambda u: u.events(topk="x"), ValidationError, "topk got 'x'"),
        (lambda u: u.events(max_token_size=[1]), ValidationError, "max_token_size"),
        (lambda u: u.search_events(""), ValidationError, "query is empty"),
        (lambda u: u.search_events("q", threshold=1), ValidationError, "unknown option"),
        (lambda u: u.add_profile(None, "work", "title"), ValidationError, "content must be a str"),
        (lambda u: u.add_profile("nurse", "", "title"), ValidationError, "topic is empty"),
        (lambda u: u.add_profile("nurse", "work", " "), ValidationError, "sub_topic is empty"),
        (lambda u: u.update_profile("nope", "x"), ValidationError, "must be a UUID"),
        (lambda u: u.delete_event(5), ValidationError, "must be a UUID"),
        (lambda u: u.get_blob(None), ValidationError, "must be a UUID"),
        (lambda u: u.flush("chatty"), ValidationError, "pass a BlobType"),
        (lambda u: u.flush(wait="yes"), ValidationError, "wait"),
        (lambda u: u.insert({"messages": []}), InvalidMessageError, "blob must be one of"),
        (lambda u: u.list_blobs(page_size=None), ValidationError, "page_size got None"),
        (lambda u: u.list_blobs(page=-1), ValidationError, "page got -1"),
        (lambda u: u.search_events_by_tags(topk=None), ValidationError, "topk"),
        (lambda u: u.search_events_by_tags(tags="mood"), ValidationError, "tags"),
        (lambda u: u.buffer(status="stuck"), ValidationError, "status got 'stuck'"),
        (lambda u: u.update_data({"when": object()}), ValidationError, "only JSON values"),
        (lambda u: u.update_event("x", {}), ValidationError, "must be a UUID"),
        (lambda u: u.delete_blob("\ud800"), ValidationError, "must be a UUID"),
        (lambda u: u.memobase.get_all_users(limit=-1), ValidationError, "limit got -1"),
        (lambda u: u.memobase.daily_usage(0), ValidationError, "last_days got 0"),
        # One entry per day is built: an unbounded window allocated without end (the fuzz
        # test hung on it) and overflowed the calendar with OverflowError.
        (lambda u: u.memobase.daily_usage(10**6), ValidationError, "last_days got 1000000"),
        (lambda u: u.memobase.add_user([1]), ValidationError, "must be a dict"),
        # An option named like the instance parameter (the fuzz test drew it): a TypeError
        # from Python ("multiple values for argument 'self'") before self was positional-only.
        (lambda u: u.context(self=None), ValidationError, "unknown option 'self'"),
        (lambda u: u.cached_context(self=None), ValidationError, "unknown option 'self'"),
        (lambda u: u.profile(self=None), ValidationError, "unknown option 'self'"),
        (lambda u: u.search_gists("x", self=None), ValidationError, "unknown option 'self'"),
    ],
)
def test_reads_and_writes_refuse_bad_arguments(
    alice: UserMemory, call: Any, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        call(alice)
    assert needle in str(info.value)


def test_profile_config_is_checked_for_both_backends(mb: Memobase) -> None:
    with pytest.raises(ValidationError, match="config_yaml must be the YAML text"):
        mb.set_profile_config(5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Did you mean 'language'"):
        mb.set_profile_config("langauge: zh\n")
    assert mb.get_profile_config() == ""  # nothing stored


def test_close_refuses_a_timeout_that_is_not_a_number(mb: Memobase) -> None:
    with pytest.raises(ValidationError, match="timeout got 'soon'"):
        mb.close("soon")  # type: ignore[arg-type]


# -- construction -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"database_url": ""}, "database_url is empty"),
        ({"database_url": "  "}, "database_url is empty"),
        ({"database_url": b"sqlite:///x.db"}, "must be a str or None, got bytes"),
        ({"database_url": None, "lease_seconds": "60"}, "lease_seconds"),
        ({"database_url": None, "start_worker": "no"}, "start_worker"),
        ({"database_url": None, "workers": "thread"}, "Did you mean 'worker'?"),
        ({"database_url": None, "max_turn_chars": 0}, "max_turn_chars"),
        ({"database_url": None, "profile_config": 3}, "profile_config"),
    ],
)
def test_embedded_refuses_bad_options_before_creating_anything(
    clean_dir: Path, kwargs: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Memobase.embedded(**kwargs)
    assert needle in str(info.value)
    assert list(clean_dir.iterdir()) == []  # no ./memobase.db


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"project_url": b"http://x"}, "project_url must be a str or None, got bytes"),
        ({"project_url": "http://127.0.0.1:9", "api_key": 5}, "api_key must be a str"),
        ({"project_url": "http://127.0.0.1:9", "api_key": "k", "timeout": "3"}, "timeout"),
        ({"project_url": "http://127.0.0.1:9", "api_key": "k", "transprt": None}, "Did you mean"),
    ],
)
def test_remote_refuses_bad_options(clean_dir: Path, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(MemobaseError) as info:
        Memobase.remote(**kwargs)
    assert needle in str(info.value)


def test_from_env_refuses_a_non_mapping_and_treats_an_empty_url_as_unset(clean_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="env must be a mapping"):
        Memobase.from_env(["MEMOBASE_PROJECT_URL"])  # type: ignore[arg-type]
    mb = Memobase.from_env({"MEMOBASE_DATABASE_URL": ""}, start_worker=False)
    mb.close(timeout=0)
    assert (clean_dir / "memobase.db").exists()  # the documented default, on purpose


# -- item 18: say when there was nothing --------------------------------------------------------
def test_delete_says_whether_there_was_anything_to_forget(mb: Memobase) -> None:
    carol = mb.user("carol")
    assert carol.delete() is False
    carol.record([HI])
    assert carol.delete() is True
    assert carol.delete() is False


async def test_adelete_says_it_too(mb: Memobase) -> None:
    dave = mb.user("dave")
    assert await dave.adelete() is False
    await dave.arecord([HI])
    assert await dave.adelete() is True


# -- item 17: the per-turn size limit ------------------------------------------------------------
def test_a_turn_over_the_limit_is_refused_before_any_work(alice: UserMemory) -> None:
    huge = "x" * (10 * 1024 * 1024)  # the 10 MB message that took 30-73 s
    with pytest.raises(InvalidMessageError) as info:
        alice.record([{"role": "user", "content": huge}])
    message = str(info.value)
    assert f"{10 * 1024 * 1024:,} characters" in message and "the limit is 256,000" in message
    assert "max_turn_chars" in message  # what to do
    assert info.value.detail == {"characters": 10 * 1024 * 1024, "limit": DEFAULT_MAX_TURN_CHARS}
    assert alice.status().pending_turns == 0


def test_the_limit_counts_the_whole_turn_and_is_configurable(tmp_path: Path) -> None:
    mb = Memobase.embedded(
        f"sqlite:///{tmp_path / 'm.db'}",
        llm=StandInLLM().settings(),
        policy=MANUAL,
        max_turn_chars=1000,
    )
    try:
        user = mb.user("eve")
        half = {"role": "user", "content": "y" * 600}
        with pytest.raises(
            InvalidMessageError, match="1,200 characters of text; the limit is 1,000"
        ):
            user.record([half, {**half, "role": "assistant"}])
        receipt = user.record([half])
        assert len(receipt.blob_ids) == 1
    finally:
        mb.close(timeout=0)


def test_just_under_the_limit_is_recorded_in_blobs_under_the_cap(alice: UserMemory) -> None:
    words = "lorem ipsum dolor sit amet " * (DEFAULT_MAX_TURN_CHARS // 27)
    receipt = alice.record([{"role": "user", "content": words[:DEFAULT_MAX_TURN_CHARS]}])
    assert len(receipt.blob_ids) > 10  # split under the 4096-token blob cap
    for blob_id in receipt.blob_ids:
        blob = alice.get_blob(blob_id).to_blob()
        assert isinstance(blob, ChatBlob)
        assert count_tokens(render_blob(blob)) <= DEFAULT_MAX_BLOB_TOKENS
    status = alice.status()
    assert (status.pending_turns, status.users[0].processing) == (1, 0)  # one turn, buffered


# -- item 2 at the facade: replaced in text, counted at debug, never logged ---------------------
def test_unstorable_text_is_replaced_and_counted_never_logged(
    alice: UserMemory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="memobase_integrations")
    secret = "s3cr3t-\x00-\ud800-text"
    receipt = alice.record(
        [{"role": "user", "content": secret, "name": "A\x00"}], turn_id="t-unstorable"
    )
    stored = alice.get_blob(receipt.blob_ids[0]).to_blob()
    message = stored.messages[0]  # type: ignore[union-attr]
    assert message.content == "s3cr3t-\ufffd-\ufffd-text" and message.alias == "A\ufffd"
    assert "replaced 2 character(s)" in caplog.text and "replaced 1 character(s)" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_settings_refuse_bad_values_with_the_package_error() -> None:
    from memobase_integrations.settings import LLMSettings

    with pytest.raises(ConfigurationError, match="FlushPolicy: buffer_token_threshold"):
        FlushPolicy(buffer_token_threshold="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="LLMSettings: best_model") as info:
        Memobase.from_env({"MEMOBASE_LLM_MODEL": 5, "OPENAI_API_KEY": "sk-secret-1"})  # type: ignore[dict-item]
    assert "sk-secret-1" not in str(info.value)
    assert LLMSettings(api_key="sk-x").api_key is not None  # valid values still work
