"""The exception -> (one line, exit code) mapping scripts rely on."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from memobase_integrations import errors
from memobase_integrations.cli.exitcodes import CLIError, ExitCode, describe_failure


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.NotFoundError("User x not found"), ExitCode.USER_ERROR),
        (errors.NotFoundError("no user", errno=404, status_code=404), ExitCode.USER_ERROR),
        # a 404 that is not Memobase's answer (empty body, web page): the URL is wrong
        (errors.NotFoundError("not JSON", status_code=404), ExitCode.CONFIG),
        (errors.ValidationError("bad"), ExitCode.USER_ERROR),
        (errors.UnsupportedError("no search"), ExitCode.USER_ERROR),
        (errors.MemobaseConnectionError("refused"), ExitCode.UNREACHABLE),
        (errors.MemobaseTimeoutError("slow"), ExitCode.UNREACHABLE),
        (errors.ServerError("boom"), ExitCode.UNREACHABLE),
        (errors.ServiceUnavailableError("llm down"), ExitCode.UNREACHABLE),
        (errors.AuthenticationError("wrong key"), ExitCode.CONFIG),
        (errors.ConfigurationError("bad url"), ExitCode.CONFIG),
        (errors.LLMError("step failed"), ExitCode.PROCESSING),
        (CLIError("usage!", ExitCode.USAGE), ExitCode.USAGE),
        (sa_exc.ArgumentError("Could not parse"), ExitCode.CONFIG),
        (sa_exc.NoSuchModuleError("Can't load plugin: sqlalchemy.dialects:foo"), ExitCode.CONFIG),
        (
            sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused")),
            ExitCode.UNREACHABLE,
        ),
        (ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"), ExitCode.CONFIG),
        (RuntimeError("surprise"), ExitCode.INTERNAL),
    ],
)
def test_each_failure_has_its_documented_exit_code(exc: BaseException, code: ExitCode) -> None:
    message, got = describe_failure(exc)
    assert got == code
    assert message and "\n" not in message


def test_multiline_server_messages_become_one_line() -> None:
    message, _ = describe_failure(errors.ServerError("Sorry:\n(psycopg2.err)\n  detail"))
    assert message == "Sorry: (psycopg2.err) detail"


def test_unexpected_errors_point_at_debug_mode_and_name_the_type() -> None:
    message, code = describe_failure(KeyError("k"))
    assert code == ExitCode.INTERNAL
    assert "KeyError" in message and "MEMOBASE_DEBUG=1" in message


def test_a_store_that_cannot_connect_is_unreachable_not_misconfigured() -> None:
    """The embedded store wraps driver connection failures in ConfigurationError."""
    try:
        try:
            raise sa_exc.OperationalError("connect", {}, Exception("Connection refused"))
        except sa_exc.OperationalError as cause:
            raise errors.ConfigurationError("Cannot open the database x") from cause
    except errors.ConfigurationError as exc:
        assert describe_failure(exc)[1] == ExitCode.UNREACHABLE
    plain = errors.ConfigurationError("Cannot open the database x")
    assert describe_failure(plain)[1] == ExitCode.CONFIG
