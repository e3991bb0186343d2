"""Every recorded real-server exchange, replayed through RemoteBackend (sync and async).

For each scenario file the driver calls the client method that must produce each recorded
request; the replay transport checks the request byte-for-byte-equivalent and answers with
the recorded response. Successes must parse into the typed models and equal the recorded
data; error answers must raise the mapped exception type with a message naming the call,
carrying the server's words and saying what to do (and never the key).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from memobase_integrations import errors
from memobase_integrations.backends.remote import RemoteBackend

from . import driver
from .replay import SCENARIOS, TEST_KEY, Replay, load, raising_transport

BOGUS_KEY = "sk-proj-nosuchproject-0000"

Outcome = tuple[Any, ...]


def _backend(replay: Replay, tmp_path: Path, key: str, *, forbid_sync: bool) -> RemoteBackend:
    handler = httpx.MockTransport(replay)
    return RemoteBackend(
        "http://memobase.test",
        key,
        transport=raising_transport("sync HTTP during an async call") if forbid_sync else handler,
        async_transport=handler,
        outbox_path=tmp_path / "outbox.db",
        auto_create_users=False,  # replay 1:1; auto-creation is tested in test_users.py
        max_retries=0,
    )


def _verify(
    exchange: dict[str, Any], step: driver.Step, result: Any, exc: BaseException | None
) -> Outcome:
    name = exchange["name"]
    expected = None if step.tolerated_error else driver.expected_error(exchange)
    if expected is None:
        assert exc is None, f"{name}: unexpected {exc!r}"
        project_result, project_recorded = driver.PROJECTIONS[step.method]
        got = project_result(result)
        assert got == project_recorded(exchange["response"]["body"]["data"]), name
        return (name, "ok", got)
    assert isinstance(exc, errors.MemobaseError), (
        f"{name}: expected {expected.__name__}, got {exc!r}"
    )
    assert type(exc) is expected, f"{name}: {type(exc).__name__} != {expected.__name__}: {exc}"
    message = str(exc)
    assert step.template in message, f"{name}: the call is not named: {message}"
    assert driver.server_words(exchange) in message, f"{name}: server words lost: {message}"
    assert "What to do" in message, f"{name}: no advice: {message}"
    for secret in (TEST_KEY, BOGUS_KEY):
        assert secret not in message and secret not in repr(exc)
    assert "[SQL" not in message and "[parameters" not in message, message
    return (name, "error", type(exc).__name__, message)


def _run_sync(exchanges: list[dict[str, Any]], tmp_path: Path) -> list[Outcome]:
    replay = Replay(exchanges)
    backend = _backend(replay, tmp_path, TEST_KEY, forbid_sync=False)
    rejected = _backend(replay, tmp_path, BOGUS_KEY, forbid_sync=False)
    outcomes: list[Outcome] = []
    try:
        for exchange in exchanges:
            step = driver.plan(exchange)
            if step.kind == "unsendable":
                replay.skip()
                outcomes.append((exchange["name"], "unsendable"))
                continue
            client = rejected if step.rejected_auth else backend
            before = replay.position
            result, exc = None, None
            try:
                result = getattr(client, step.method)(*step.args, **step.kwargs)
            except errors.MemobaseError as error:
                exc = error
            outcomes.append(_settle(replay, before, exchange, step, result, exc))
    finally:
        backend.close()
        rejected.close()
    assert replay.done, f"stopped at exchange {replay.position} of {len(exchanges)}"
    return outcomes


async def _run_async(exchanges: list[dict[str, Any]], tmp_path: Path) -> list[Outcome]:
    replay = Replay(exchanges)
    backend = _backend(replay, tmp_path, TEST_KEY, forbid_sync=True)
    rejected = _backend(replay, tmp_path, BOGUS_KEY, forbid_sync=True)
    outcomes: list[Outcome] = []
    try:
        for exchange in exchanges:
            step = driver.plan(exchange)
            if step.kind == "unsendable":
                replay.skip()
                outcomes.append((exchange["name"], "unsendable"))
                continue
            client = rejected if step.rejected_auth else backend
            before = replay.position
            result, exc = None, None
            try:
                result = await getattr(client, "a" + step.method)(*step.args, **step.kwargs)
            except errors.MemobaseError as error:
                exc = error
            outcomes.append(_settle(replay, before, exchange, step, result, exc))
    finally:
        await backend.aclose()
        await rejected.aclose()
    assert replay.done
    return outcomes


def _settle(
    replay: Replay,
    before: int,
    exchange: dict[str, Any],
    step: driver.Step,
    result: Any,
    exc: BaseException | None,
) -> Outcome:
    if step.local_error is not None:
        assert type(exc) is step.local_error, f"{exchange['name']}: {exc!r}"
        assert replay.position == before, f"{exchange['name']}: sent although refused locally"
        replay.skip()
        return (exchange["name"], "refused", type(exc).__name__, str(exc))
    assert replay.position == before + 1, f"{exchange['name']}: {replay.position - before} requests"
    return _verify(exchange, step, result, exc)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_replays_sync(scenario: str, tmp_path: Path) -> None:
    outcomes = _run_sync(load(scenario), tmp_path)
    assert any(o[1] in ("ok", "error", "refused") for o in outcomes)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_async_gives_identical_results_without_sync_http(scenario: str, tmp_path: Path) -> None:
    exchanges = load(scenario)
    sync = _run_sync(exchanges, tmp_path / "sync")
    asynchronous = asyncio.run(_run_async(exchanges, tmp_path / "async"))
    assert asynchronous == sync


def test_every_unsendable_exchange_is_accounted_for() -> None:
    """The exchanges the typed client cannot produce, listed so none is skipped silently."""
    unsendable = {
        (name, e["name"])
        for name in SCENARIOS
        for e in load(name)
        if driver.plan(e).kind == "unsendable"
    }
    assert unsendable == {
        ("01_healthcheck_and_users.json", "create_user_id_not_uuid"),
        ("01_healthcheck_and_users.json", "create_user_no_body"),
        ("02_insert_async_flush_sync_then_read.json", "profile_topic_limits_json_invalid"),
        ("02_insert_async_flush_sync_then_read.json", "context_chats_str_invalid_json"),
        ("04_summary_and_other_blob_types.json", "flush_unknown_type"),
        ("05_bad_inputs.json", "user_id_not_uuid_insert"),
        ("05_bad_inputs.json", "user_id_not_uuid_get_user"),
        ("05_bad_inputs.json", "blob_id_not_uuid"),
        ("05_bad_inputs.json", "missing_blob_type"),
        ("05_bad_inputs.json", "unknown_blob_type"),
        ("05_bad_inputs.json", "missing_blob_data"),
        ("05_bad_inputs.json", "blob_data_not_object"),
        ("05_bad_inputs.json", "chat_fields_not_object"),
        ("05_bad_inputs.json", "wait_process_not_bool"),
        ("05_bad_inputs.json", "malformed_json"),
        ("05_bad_inputs.json", "json_body_text_plain_content_type"),
        ("05_bad_inputs.json", "json_array_body"),
        ("05_bad_inputs.json", "no_authorization_header"),
        ("05_bad_inputs.json", "basic_scheme"),
        ("05_bad_inputs.json", "bearer_lowercase_scheme"),
        ("05_bad_inputs.json", "bearer_without_token"),
        ("05_bad_inputs.json", "bearer_double_space_before_token"),
        ("05_bad_inputs.json", "no_auth_unknown_api_path"),
        ("05_bad_inputs.json", "auth_unknown_api_path"),
        ("05_bad_inputs.json", "no_auth_non_api_path_404"),
        ("05_bad_inputs.json", "wrong_method"),
        ("06_buffer_and_blob_endpoints.json", "list_blobs_invalid_type"),
        ("07_profile_event_search_endpoints.json", "add_profile_extra_attribute_keys"),
        ("07_profile_event_search_endpoints.json", "add_profile_missing_sub_topic"),
        ("07_profile_event_search_endpoints.json", "add_profile_attributes_null"),
        ("07_profile_event_search_endpoints.json", "add_profile_missing_attributes"),
        ("07_profile_event_search_endpoints.json", "add_profile_missing_content"),
        ("07_profile_event_search_endpoints.json", "update_profile_missing_attributes_key"),
        ("07_profile_event_search_endpoints.json", "event_search_missing_query"),
        ("07_profile_event_search_endpoints.json", "profile_import_missing_context"),
        ("07_profile_event_search_endpoints.json", "roleplay_proactive_continue"),
        ("07_profile_event_search_endpoints.json", "roleplay_proactive_new_topic"),
        ("07_profile_event_search_endpoints.json", "roleplay_proactive_missing_messages"),
        ("08_project_config_event_tags_strict.json", "set_profile_config_missing_key"),
        ("08_project_config_event_tags_strict.json", "admin_status_check"),
        ("08_project_config_event_tags_strict.json", "openapi_json"),
        ("14_llm_unavailable.json", "admin_status_check_llm_down"),
    }


def test_bad_inputs_the_client_can_send_raise_typed_errors(tmp_path: Path) -> None:
    """05_bad_inputs: every sendable refusal maps to its type (checked in _verify) and the
    cases are the ones we expect, so a change in the driver cannot hide one."""
    outcomes = {o[0]: o for o in _run_sync(load("05_bad_inputs.json"), tmp_path)}
    errors_seen = {name: o[2] for name, o in outcomes.items() if o[1] == "error"}
    assert errors_seen == {
        "user_id_uuid1_get_profile": "ValidationError",
        "chat_without_messages": "ValidationError",
        "chat_messages_not_list": "ValidationError",
        "chat_role_system": "ValidationError",
        "chat_role_missing": "ValidationError",
        "chat_content_int": "ValidationError",
        "chat_content_list_of_parts": "ValidationError",
        "chat_content_null": "ValidationError",
        "chat_created_at_not_string": "ValidationError",
        "huge_message_200k_chars_wait_process_true": "ServerError",
        "bearer_wrong_token": "AuthenticationError",
        "bearer_unknown_project_token": "AuthenticationError",
        "get_missing_user": "NotFoundError",
        "insert_for_missing_user": "ServerError",
        "add_profile_for_missing_user": "ServerError",
    }
    huge = outcomes["huge_message_200k_chars_wait_process_true"][3]
    assert "processing cap" in huge and "split long turns" in huge
    missing = outcomes["insert_for_missing_user"][3]
    assert "ForeignKeyViolation" in missing and "ensure_user" in missing
    assert "INSERT INTO" not in missing  # the SQL statement is cut
    assert (
        "UUID version 4 expected or UUID version 5 expected"
        in (outcomes["user_id_uuid1_get_profile"][3])
    )
    assert "Invalid project id format" in outcomes["bearer_wrong_token"][3]
    assert "MEMOBASE_API_KEY" in outcomes["bearer_wrong_token"][3]
