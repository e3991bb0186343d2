"""Follow-up commands printed for the user work from where they are (no activated venv)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from memobase_integrations.cli.invocation import PROG, command_prefix


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / ".venv" / "bin" / PROG
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / ".venv" / "bin" / "python").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv is not activated
    return script


def test_a_script_not_on_path_is_printed_as_its_path(venv: Path) -> None:
    assert command_prefix(str(venv)) == f".venv{os.sep}bin{os.sep}{PROG}"


def test_the_bare_name_when_it_is_what_runs(venv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(venv.parent))
    assert command_prefix(str(venv)) == PROG


def test_python_dash_m_when_run_as_a_module(venv: Path) -> None:
    python = venv.parent / "python"
    prefix = command_prefix("/somewhere/memobase_integrations/__main__.py", str(python))
    assert prefix == f".venv{os.sep}bin{os.sep}python -m memobase_integrations"


def test_paths_outside_the_working_directory_are_absolute_and_quoted(
    venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spaced = tmp_path / "my project" / PROG
    spaced.parent.mkdir()
    spaced.write_text("#!/bin/sh\n", encoding="utf-8")
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert command_prefix(str(venv)) == str(venv)  # absolute: '..' paths confuse
    assert command_prefix(str(spaced)) == f"'{spaced}'"  # quoted for the shell
