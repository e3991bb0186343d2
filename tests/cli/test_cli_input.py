"""The CLI's answers to bad or pointless input (issue 12, items 13 and 18): one line, the
right exit code, words that say what happened and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from memobase_integrations.cli.app import run

from .conftest import Store


def _run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run(list(args))
    return code, capsys.readouterr().err


def test_forgetting_a_user_with_nothing_stored_says_nothing_to_forget(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = _run("forget", "carol", "--yes", "--database-url", store.url, capsys=capsys)
    assert code == 0
    assert "nothing to forget" in stderr and "Forgot" not in stderr
    code, stderr = _run("forget", "alice", "--yes", "--database-url", store.url, capsys=capsys)
    assert code == 0 and "Forgot 'alice'" in stderr
    code, stderr = _run("forget", "alice", "--yes", "--database-url", store.url, capsys=capsys)
    assert code == 0 and "nothing to forget" in stderr  # the second time: already gone


def test_the_worker_command_names_itself_when_there_is_no_llm(
    store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    code, stderr = _run("worker", "--database-url", store.url, capsys=capsys)
    assert code == 4
    assert "error: worker needs an LLM" in stderr and "flush" not in stderr


def test_validating_a_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("language: en\nsystem_prompt: café\n".encode("latin-1"))
    code, stderr = _run("config", "validate", str(path), capsys=capsys)
    assert code == 4  # was 70, "internal error"
    assert "not UTF-8 text (byte 0xe9 at offset 31)" in stderr and "Save it as UTF-8" in stderr
    assert "Traceback" not in stderr


def test_a_misspelt_config_key_is_refused_with_a_suggestion(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("langauge: zh\n", encoding="utf-8")
    code, stderr = _run("config", "validate", str(path), capsys=capsys)
    assert code == 4
    assert "Unknown profile config key 'langauge'. Did you mean 'language'?" in stderr
    code, stderr = _run("config", "set", str(path), "--database-url", store.url, capsys=capsys)
    assert code == 4
    code, _ = _run("config", "show", "--database-url", store.url, capsys=capsys)
    assert code == 0 and "langauge" not in capsys.readouterr().out


def test_a_user_id_that_is_not_text_is_refused_with_one_line(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # An argv byte that is not UTF-8 arrives as a lone surrogate (surrogateescape).
    code, stderr = _run("profile", "caf\udce9", "--database-url", store.url, capsys=capsys)
    assert code == 1
    assert "lone surrogate U+DCE9" in stderr and "Traceback" not in stderr
