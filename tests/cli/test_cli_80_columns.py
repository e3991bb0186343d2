"""First contact: every command, and its help, read well in an 80-column terminal.

Each command runs as a user would run it (a separate process, ``COLUMNS=80``) on a real
store; nothing may be wider than the terminal and no header may be cut (rich marks a cut
with "…"). Also: help shows ``USER`` and ``--limit N``, not typer's ``{user}`` /
``<int>`` / ``<bool>`` tags.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunCLI, Store, clean_env

ENV = clean_env(COLUMNS="80", LINES="50")

#: (arguments, the table headers the output must show whole)
COMMANDS: list[tuple[list[str], list[str]]] = [
    (["profile", "alice"], ["topic", "sub_topic", "memo", "mentioned", "updated"]),
    (["events", "alice"], []),
    (["search", "alice", "hiking"], ["date", "score", "event"]),
    (["search", "alice", "Lisbon", "--gists"], ["date", "score", "gist"]),
    (["context", "alice"], []),
    (["status"], ["user", "pending", "tokens", "failed", "last flush"]),
    (["status", "bob"], ["user", "pending", "tokens", "failed", "last flush"]),
    (["flush", "--stand-in"], ["event", "added", "updated", "deleted"]),
    (["config", "show"], []),
]
HELP = [
    [],
    *[[name] for name in ("profile", "events", "search", "context", "status", "flush")],
    *[[name] for name in ("worker", "export", "forget", "demo", "serve", "config")],
    *[["config", name] for name in ("show", "validate", "set", "reset")],
]


def _check_width(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, line
    assert "…" not in text, text


@pytest.mark.parametrize(("args", "headers"), COMMANDS, ids=lambda v: " ".join(v) or "-")
def test_every_command_fits_80_columns(
    cli: RunCLI, store: Store, args: list[str], headers: list[str]
) -> None:
    result = cli(*args, "--database-url", store.url, env=ENV)
    assert result.code == 0, result.stderr
    if args[0] == "context":  # exactly what an app injects: data, not a layout
        assert "…" not in result.stdout
    else:
        _check_width(result.stdout)
    _check_width(result.stderr)
    header_line = next(
        (line for line in result.stdout.splitlines() if headers[:1] and headers[0] in line.split()),
        "",
    )
    for header in headers:
        assert re.search(rf"(^|\s|│){re.escape(header)}(\s|│|$)", header_line), (
            header,
            result.stdout,
        )


def test_status_names_the_user_and_says_when_nothing_is_pending(cli: RunCLI, store: Store) -> None:
    bob = cli("status", "bob", "--database-url", store.url, env=ENV)
    assert re.search(r"^bob\s", bob.stdout, re.M)  # the app's id, with the UUID below it
    assert re.search(r"^[0-9a-f]{8}-[0-9a-f]{4}-", bob.stdout, re.M)
    assert cli("flush", "--stand-in", "--database-url", store.url, env=ENV).code == 0
    done = cli("status", "--database-url", store.url, env=ENV)
    assert done.code == 0 and done.stdout.startswith("Nothing pending")


@pytest.mark.parametrize("args", HELP, ids=lambda v: " ".join(v) or "root")
def test_help_fits_and_shows_no_type_tags(cli: RunCLI, args: list[str]) -> None:
    result = cli(*args, "--help", env=ENV)
    assert result.code == 0, result.stderr
    _check_width(result.stdout)
    assert not re.search(r"<(str|bool|int|float|path|list\[[a-z]+\])[^>]*>", result.stdout)
    assert not re.search(r"\{[a-z_]+\}", result.stdout), result.stdout
    if args == ["search"]:
        assert "Usage: memobase-integrations search [OPTIONS] USER QUERY" in result.stdout
        assert re.search(r"--limit\s+-n\s+N", result.stdout)


@pytest.fixture
def empty_404_server() -> Iterator[str]:
    """A URL that answers every request with 404 and an empty body (not a Memobase API)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _empty_404(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _empty_404

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", ["profile", "events", "search", "forget"])
def test_a_url_answering_404_with_an_empty_body_is_a_configuration_error(
    cli: RunCLI, empty_404_server: str, command: str
) -> None:
    args = [command, "alice", *(["x"] if command == "search" else []), "--yes"][
        : 2 + (command == "search") + (command == "forget")
    ]
    env = dict(ENV, MEMOBASE_API_KEY="secret")
    result = cli(*args, "--project-url", empty_404_server, env=env)
    assert result.code == 4, (result.code, result.stderr)
    assert "no memory for user" not in result.stderr and "not JSON" in result.stderr


def test_config_validate_reports_every_problem(cli: RunCLI, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "language: xx\nprofile_strict_mode: maybe\noverwrite_user_profiles:\n"
        "  - topic: work\n    colour: blue\n",
        encoding="utf-8",
    )
    result = cli("config", "validate", str(bad), env=ENV)
    assert result.code == 4
    assert "3 problems" in result.stderr
    for where in ("language:", "profile_strict_mode:", "overwrite_user_profiles[0].colour:"):
        assert where in result.stderr, result.stderr
