"""The CLI end to end: a real process on a store the test built, like a user would run it."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from memobase_integrations import to_user_uuid
from memobase_integrations.tools import mention_dates, plain_memo

from .conftest import RunCLI, Store, clean_env
from .recorded_http import recorded_server, serve


def assert_one_line_error(stderr: str, *needles: str) -> None:
    """Failures are one clear line on stderr: no traceback, no noise."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("memobase-integrations: error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)


# -- reading -----------------------------------------------------------------------------------
def test_profile_shows_every_row_the_store_holds(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        rows = mb.user("alice").profile()
    assert rows, "the fixture should have produced profile rows for alice"
    result = cli("profile", "alice", "--database-url", store.url)
    assert result.code == 0, result.stderr
    for row in rows:
        assert row.topic in result.stdout
        assert row.sub_topic in result.stdout
        assert plain_memo(row.content) in result.stdout
        for day in mention_dates(row.content):  # dates in their own column, not inline
            assert day.replace("/", "-") in result.stdout
    assert "[mention" not in result.stdout
    assert "Alice" in result.stdout  # the name said in the first turn made it to the profile


def test_profile_json_matches_the_store(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        rows = mb.user("alice").profile()
    result = cli("profile", "alice", "--json", "--database-url", store.url)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {(r["topic"], r["sub_topic"], r["content"]) for r in data} == {
        (r.topic, r.sub_topic, r.content) for r in rows
    }
    assert {r["id"] for r in data} == {str(r.id) for r in rows}


def test_events_lists_the_timeline_newest_first(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        events = mb.user("alice").events()
    assert events
    result = cli("events", "alice", "--json", "--database-url", store.url)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {e["id"] for e in data} == {str(e.id) for e in events}
    stamps = [e["created_at"] for e in data]
    assert stamps == sorted(stamps, reverse=True)

    table = cli("events", "alice", "--database-url", store.url)
    assert table.code == 0, table.stderr
    for event in events:
        assert str(event.id) in table.stdout
        for delta in event.event_data.profile_delta or []:
            assert delta.content in table.stdout


def test_context_prints_exactly_what_an_app_would_inject(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        expected = mb.user("alice").context(max_token_size=1000)
        small = mb.user("alice").context(max_token_size=40)
    result = cli("context", "alice", "--database-url", store.url)
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n") == expected.rstrip("\n")
    assert "Alice" in result.stdout

    limited = cli("context", "alice", "--max-tokens", "40", "--json", "--database-url", store.url)
    assert limited.code == 0, limited.stderr
    data = json.loads(limited.stdout)
    assert data["context"] == small
    assert data["user_id"] == str(to_user_uuid("alice"))


def test_status_reports_the_buffered_user(cli: RunCLI, store: Store) -> None:
    result = cli("status", "--json", "--database-url", store.url)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["backend"] == "embedded"
    assert data["pending_turns"] >= 1
    users = {u["user_id"]: u for u in data["users"]}
    bob = users[str(to_user_uuid("bob"))]
    assert bob["pending_turns"] == 1 and bob["buffered_tokens"] > 0
    assert (
        str(to_user_uuid("alice")) not in users
        or users[str(to_user_uuid("alice"))]["pending_turns"] == 0
    )

    table = cli("status", "--database-url", store.url)
    assert table.code == 0, table.stderr
    assert str(to_user_uuid("bob")) in table.stdout


def test_export_is_json_with_the_profile(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        rows = mb.user("alice").profile()
    result = cli("export", "alice", "--database-url", store.url)
    assert result.code == 0, result.stderr
    dumped = json.dumps(json.loads(result.stdout))
    for row in rows:
        assert json.dumps(row.content)[1:-1] in dumped


# -- processing --------------------------------------------------------------------------------
def test_flush_without_an_llm_says_how_to_configure_one(cli: RunCLI, store: Store) -> None:
    result = cli("flush", "bob", "--database-url", store.url)
    assert result.code == 4
    assert_one_line_error(result.stderr, "OPENAI_API_KEY", "--stand-in")


def test_flush_processes_the_buffer_into_a_profile(cli: RunCLI, store: Store) -> None:
    before = cli("profile", "bob", "--json", "--database-url", store.url)
    assert before.code == 0 and json.loads(before.stdout) == []  # known user, nothing yet

    result = cli("flush", "--stand-in", "--json", "--database-url", store.url)
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert list(outcome) == [str(to_user_uuid("bob"))]
    (processed,) = outcome.values()
    assert processed and processed[0]["add_profiles"]

    after = cli("profile", "bob", "--database-url", store.url)
    assert after.code == 0
    assert "Bob" in after.stdout and "baker" in after.stdout
    status = json.loads(cli("status", "--json", "--database-url", store.url).stdout)
    assert status["pending_turns"] == 0


# -- forgetting --------------------------------------------------------------------------------
def test_forget_asks_first_and_keeps_everything_when_declined(cli: RunCLI, store: Store) -> None:
    declined = cli("forget", "alice", "--database-url", store.url, input="n\n")
    assert declined.code == 1
    assert "nothing was deleted" in declined.stderr
    assert cli("profile", "alice", "--database-url", store.url).code == 0


def test_forget_yes_deletes_the_user(cli: RunCLI, store: Store) -> None:
    result = cli("forget", "alice", "--yes", "--database-url", store.url)
    assert result.code == 0, result.stderr
    gone = cli("profile", "alice", "--database-url", store.url)
    assert gone.code == 1
    assert_one_line_error(gone.stderr, "no memory for user 'alice'")
    # bob is untouched: forgetting is per user
    assert cli("status", "bob", "--json", "--database-url", store.url).code == 0
    again = cli("forget", "alice", "--yes", "--database-url", store.url)
    assert again.code == 0  # idempotent


# -- config ------------------------------------------------------------------------------------
GOOD_CONFIG = """\
language: en
profile_strict_mode: true
overwrite_user_profiles:
  - topic: learning
    description: what the student studies
    sub_topics:
      - name: subject
      - name: level
"""


def test_config_set_then_show_round_trips(cli: RunCLI, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "tutor.yaml"
    path.write_text(GOOD_CONFIG)
    assert cli("config", "validate", str(path)).code == 0
    result = cli("config", "set", str(path), "--database-url", store.url)
    assert result.code == 0, result.stderr
    shown = cli("config", "show", "--database-url", store.url)
    assert shown.code == 0
    assert "learning" in shown.stdout and "profile_strict_mode" in shown.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("overwrite_user_profiles: [unclosed\n", "Invalid profile config"),
        ("language: klingon\n", "language"),
        ("overwrite_user_profiles: 3\n", "overwrite_user_profiles"),
    ],
)
def test_bad_config_file_is_refused_before_anything_changes(
    cli: RunCLI, store: Store, tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = cli("config", "set", str(path), "--database-url", store.url)
    assert result.code == 4
    assert_one_line_error(result.stderr, needle)
    shown = cli("config", "show", "--database-url", store.url)
    assert "klingon" not in shown.stdout and "unclosed" not in shown.stdout


def test_missing_config_file(cli: RunCLI, store: Store) -> None:
    result = cli("config", "set", "/nonexistent/profile.yaml", "--database-url", store.url)
    assert result.code == 4
    assert_one_line_error(result.stderr, "Cannot read the profile config")


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["profile", "events", "context", "export"])
def test_unknown_user_is_exit_1_with_one_line(cli: RunCLI, store: Store, command: str) -> None:
    result = cli(command, "carol", "--database-url", store.url)
    assert result.code == 1
    assert_one_line_error(result.stderr, "no memory for user 'carol'")
    assert result.stdout == ""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_exit_3(cli: RunCLI) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = cli(
        "profile",
        "alice",
        "--project-url",
        url,
        env=clean_env(MEMOBASE_API_KEY="sk-proj-never-printed"),
    )
    assert result.code == 3, result.stderr
    assert_one_line_error(result.stderr)
    assert "sk-proj-never-printed" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "code", "needle"),
    [
        ("not a url", 4, "Invalid database URL"),
        ("nosuchdialect://x/y", 4, "nosuchdialect"),
        ("sqlite:///definitely/missing/memobase.db", 3, "does not exist"),
        ("postgresql+psycopg://postgres@127.0.0.1:{port}/test", 3, "database"),
    ],
)
def test_bad_database_url(cli: RunCLI, url: str, code: int, needle: str) -> None:
    result = cli("profile", "alice", "--database-url", url.format(port=_closed_port()))
    assert result.code == code, result.stderr
    assert_one_line_error(result.stderr, needle)


def test_database_url_from_the_environment(cli: RunCLI, store: Store) -> None:
    result = cli("profile", "alice", "--json", env=clean_env(MEMOBASE_DATABASE_URL=store.url))
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)


def test_both_targets_is_a_usage_error(cli: RunCLI, store: Store) -> None:
    result = cli("status", "--database-url", store.url, "--project-url", "http://127.0.0.1:1")
    assert result.code == 2
    assert_one_line_error(result.stderr, "not both")


def test_missing_argument_is_a_usage_error(cli: RunCLI) -> None:
    result = cli("profile")
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert "Missing argument" in result.stderr


# -- against a Memobase server (recorded answers on a loopback socket) -----------------------
ALICE_ON_SERVER = "2b8f5f7e-1c4d-4e8a-9b6f-0d2c3a4b5c60"  # the recording's user


def test_profile_context_and_events_from_a_server(cli: RunCLI) -> None:
    server = recorded_server("02_insert_async_flush_sync_then_read.json")
    server.skip("profile_before_flush")  # read after the recorded flush
    env = clean_env(MEMOBASE_API_KEY="secret")
    with serve(server) as url:
        profile = cli("profile", ALICE_ON_SERVER, "--project-url", url, env=env)
        context = cli("context", ALICE_ON_SERVER, "--project-url", url, env=env)
        events = cli("events", ALICE_ON_SERVER, "--json", "--project-url", url, env=env)
    assert profile.code == 0, profile.stderr
    assert "Alice Chen" in profile.stdout and "Acme Corp" in profile.stdout
    recorded = server.routes[("GET", f"/api/v1/users/context/{ALICE_ON_SERVER}")][0]
    assert context.code == 0, context.stderr
    assert context.stdout == recorded["response"]["body"]["data"]["context"]
    assert events.code == 0, events.stderr
    assert [e["id"] for e in json.loads(events.stdout)] == ["6d00faa9-ae93-45b5-839e-c3eda2f78530"]
    assert "secret" not in profile.stdout + profile.stderr


def test_a_wrong_api_key_is_a_configuration_error(cli: RunCLI) -> None:
    server = recorded_server("02_insert_async_flush_sync_then_read.json")
    with serve(server) as url:
        result = cli(
            "profile",
            ALICE_ON_SERVER,
            "--project-url",
            url,
            env=clean_env(MEMOBASE_API_KEY="placeholder-api-key-value"),
        )
    assert result.code == 4
    assert_one_line_error(result.stderr, "HTTP 401", "MEMOBASE_API_KEY")
    assert "placeholder-api-key-value" not in result.stderr


def test_a_server_without_api_key_says_which_variable_to_set(cli: RunCLI) -> None:
    result = cli("status", "--project-url", "http://127.0.0.1:9")
    assert result.code == 4
    assert_one_line_error(result.stderr, "MEMOBASE_API_KEY")


def test_profile_topic_filter(cli: RunCLI, store: Store) -> None:
    with store.open() as mb:
        rows = mb.user("alice").profile()
    topic = rows[0].topic
    result = cli("profile", "alice", "--topic", topic, "--json", "--database-url", store.url)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data and {r["topic"] for r in data} == {topic}
    # a topic the user has nothing in: a known user, so an empty answer, not "no memory"
    empty = cli(
        "profile", "alice", "--topic", "no_such_topic", "--json", "--database-url", store.url
    )
    assert empty.code == 0, empty.stderr
    assert json.loads(empty.stdout) == []


def test_a_failing_llm_is_exit_5_and_the_turns_stay_buffered(cli: RunCLI, store: Store) -> None:
    env = clean_env(OPENAI_BASE_URL=f"http://127.0.0.1:{_closed_port()}/v1")
    result = cli("flush", "bob", "--database-url", store.url, env=env)
    assert result.code == 5, result.stderr
    assert_one_line_error(result.stderr, "entry_summary", "stay buffered")
    status = cli("status", "bob", "--database-url", store.url)
    assert status.code == 0
    assert "1 " in status.stdout and "last error" in status.stdout
    data = json.loads(cli("status", "bob", "--json", "--database-url", store.url).stdout)
    (bob,) = data["users"]
    assert bob["pending_turns"] == 1 and bob["failed"] == 1 and bob["last_error"]


def test_user_ids_print_as_typed_not_as_markup(cli: RunCLI, store: Store) -> None:
    odd = "[bold]mallory[/bold]"
    with store.open() as mb:
        mb.user(odd).record(
            [
                {"role": "user", "content": "My name is Mallory [mention] and I live in Oslo."},
                {"role": "assistant", "content": "Hi!"},
            ]
        )
        mb.user(odd).flush()
    result = cli("profile", odd, "--database-url", store.url)
    assert result.code == 0, result.stderr
    assert f"profile of {odd}" in result.stdout
    assert "Oslo" in result.stdout
