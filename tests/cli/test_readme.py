"""The README's CLI reference must stay true to the code (exit codes, commands, variables)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer

from memobase_integrations.cli.app import app
from memobase_integrations.cli.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return README.split(title, 1)[1].split("\n## ", 1)[0]


def test_documented_exit_codes_are_the_real_ones() -> None:
    table = _section("Exit codes (stable, for scripts)")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == {int(code) for code in ExitCode}


def test_documented_commands_exist() -> None:
    table = _section("## The CLI")
    documented = set(re.findall(r"^\| `([a-z]+)", table, re.M))
    group = typer.main.get_group(app)
    real = set(group.commands)
    assert documented == real
    config = group.commands["config"]
    assert {"show", "validate", "set", "reset"} <= set(config.commands)  # type: ignore[attr-defined]


def test_documented_environment_variables_are_read_somewhere() -> None:
    table = _section("## Configuration")
    names = set(re.findall(r"`((?:MEMOBASE|OPENAI)_[A-Z_]+)", table))
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for package in (
            "memobase_integrations",
            "langchain_memobase",
            "llamaindex_memobase",
            "memobase_demo",
        )
        for p in (ROOT / package).rglob("*.py")
    ) + (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    missing = sorted(n for n in names if f'"{n}"' not in sources)
    assert not missing, missing


def test_the_stand_in_hint_of_the_core_api_works_as_written() -> None:
    # In a fresh interpreter: in this one another test may have imported the subpackage.
    block = _section("## The core API").split("```python", 1)[1].split("```", 1)[0]
    assert "import memobase_integrations\n" in block
    hint = re.search(r"llm=(memobase_integrations\.testing\.\S+\(\))", block)
    assert hint is not None, block
    code = f"import memobase_integrations\nsettings = {hint.group(1)}\nassert settings.configured"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
