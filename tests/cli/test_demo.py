"""The README's main-job command: ``memobase-integrations demo``, offline, end to end."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from memobase_demo.common import offline_reply, remembered_facts
from memobase_integrations.cli import plugins
from memobase_integrations.cli.exitcodes import CLIError, ExitCode
from memobase_integrations.testing import LABEL, StandInLLM

from .conftest import RunCLI, clean_env

CONTEXT = """You are a friendly assistant.

---
# Memory
Unless the user has relevant queries, do not actively mention those memories in the conversation.
## User Current Profile:
- basic_info::name: Gus
- work::title: nurse

## Past Events:
- Gus said hi [mention 2025/01/14]
---
"""


def test_offline_reply_uses_the_profile_in_the_system_prompt() -> None:
    assert remembered_facts([CONTEXT]) == ["name: Gus", "title: nurse"]
    assert "name: Gus" in offline_reply([CONTEXT], "Any idea for my weekend?")
    assert "Gus" not in offline_reply(["You are a friendly assistant."], "Hi")


def test_demo_runs_offline_end_to_end(cli: RunCLI, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = cli("demo", "--db", str(db))
    assert result.code == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Traceback" not in result.stderr
    # the banner says plainly that nothing here is a real LLM
    assert "OFFLINE DEMO" in out and LABEL in out
    # both frameworks ran
    assert "create_agent(" in out and "SimpleChatEngine(" in out
    # what was recorded, turn by turn
    assert "recorded (ChatBlob)" in out and "My name is Gus" in out
    # processing results and the profile table with what Gus said
    assert "processing result" in out
    assert "profile of gus" in out
    for fact in ("Gus", "nurse", "Porto"):
        assert fact in out, fact
    # the exact system prompt, with the memory appended to the app's own instructions
    assert "the exact system prompt the langchain model received" in out
    assert "the exact system prompt the llamaindex model received" in out
    prompt = out.split("the exact system prompt the langchain model received", 1)[1]
    assert "You are a friendly assistant." in prompt.split("# Memory", 1)[0]
    assert "## User Current Profile:" in prompt
    assert "Set OPENAI_API_KEY" in out  # no endpoint configured: how to use real models
    # the store is left behind for the CLI, which can read it
    assert db.is_file()
    profile = cli("profile", "gus", "--database-url", f"sqlite:///{db}")
    assert profile.code == 0 and "Gus" in profile.stdout
    # the follow-up commands it prints run as printed, from where the demo ran (the venv
    # need not be activated: here the CLI ran as `<python> -m memobase_integrations`)
    follow_ups = [line.strip() for line in out.splitlines() if "--database-url" in line]
    assert len(follow_ups) == 4, out[-2000:]
    printed = next(line for line in follow_ups if " profile gus " in line)
    ran = subprocess.run(
        shlex.split(printed), capture_output=True, text=True, cwd=tmp_path, env=clean_env()
    )
    assert ran.returncode == 0 and "Gus" in ran.stdout, (printed, ran.stderr)


def test_demo_offline_fresh_and_with_one_framework_missing(cli: RunCLI, tmp_path: Path) -> None:
    """--offline must not touch the (unreachable) endpoint from the environment; an existing
    file is replaced (fresh each run unless --keep); a framework that is not installed is
    skipped with a note saying which extra to install, and the rest of the demo runs."""
    db = tmp_path / "demo.db"
    db.write_bytes(b"not a database")
    blocker = tmp_path / "no-llama"
    (blocker / "llama_index").mkdir(parents=True)
    (blocker / "llama_index" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'llama_index'\", name='llama_index')\n"
    )
    env = clean_env(
        OPENAI_API_KEY="sk-test-not-real",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        PYTHONPATH=str(blocker),
    )
    result = cli("demo", "--offline", "--db", str(db), env=env)
    assert result.code == 0, result.stderr[-3000:]
    out = result.stdout
    assert "OFFLINE DEMO" in out
    # a key is set: the banner says it is not used, not "set OPENAI_API_KEY"
    assert "Set OPENAI_API_KEY" not in out and "not used (--offline)" in out
    assert "skipping the llamaindex sessions" in out and "[llamaindex]" in out
    assert "SimpleChatEngine(" not in out and "create_agent(" in out
    assert "profile of gus" in out
    assert "sk-test-not-real" not in out + result.stderr
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"


def test_unknown_framework_is_a_usage_error(cli: RunCLI, tmp_path: Path) -> None:
    result = cli("demo", "--framework", "haystack", "--db", str(tmp_path / "d.db"))
    assert result.code == 2
    assert "Traceback" not in result.stderr and "haystack" in result.stderr


def test_importing_the_cli_imports_no_framework() -> None:
    """The core never imports LangChain or LlamaIndex, nor the adapters or the demo package;
    the demo itself loads the frameworks only when it runs."""
    code = (
        "import sys, memobase_integrations, memobase_integrations.cli\n"
        "import memobase_integrations.cli.app\n"
        "core = sorted({m.split('.')[0] for m in sys.modules} & {'langchain', "
        "'langchain_core', 'langgraph', 'llama_index', 'langchain_memobase', "
        "'llamaindex_memobase', 'memobase_demo'})\n"
        "import memobase_demo.run\n"
        "demo = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain', 'langchain_core', 'langgraph', 'llama_index')]\n"
        "print(core, demo)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


def test_the_cli_finds_the_demo_through_its_entry_point() -> None:
    from memobase_demo.run import run_demo

    assert plugins.load_command("demo") is run_demo


def test_a_missing_command_entry_point_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda **_: ())
    with pytest.raises(CLIError, match="'demo' command is not installed") as info:
        plugins.load_command("demo")
    assert info.value.code == ExitCode.CONFIG


def test_demo_with_a_configured_endpoint_extracts_through_it(cli: RunCLI, tmp_path: Path) -> None:
    """OPENAI_BASE_URL set: memory extraction goes over HTTP to that endpoint (here the
    stand-in served on a loopback port); chat falls back to the fake models, saying why,
    when the framework's OpenAI package is not installed."""
    stand_in = StandInLLM()
    with stand_in.serve() as url:
        env = clean_env(OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-test-never-printed")
        result = cli("demo", "--framework", "langchain", "--db", str(tmp_path / "d.db"), env=env)
    assert result.code == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Using your LLM endpoint." in out and "OFFLINE DEMO" not in out
    assert url in out  # the banner names the endpoint in use
    assert "langchain-openai is not installed" in out or "ChatOpenAI" in out
    assert "profile of gus" in out and "Gus" in out
    assert stand_in.calls_by_step.get("extract_profile", 0) >= 1  # it really went over HTTP
    assert "sk-test-never-printed" not in out + result.stderr
