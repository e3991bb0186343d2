"""A real embedded store for the CLI tests, written in-process with the stand-in LLM.

The CLI then runs as a separate process (``python -m memobase_integrations``) on that file,
exactly as a user would run it against their app's store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from memobase_integrations import FlushPolicy, Memobase
from memobase_integrations.testing import StandInLLM

#: Turns the stand-in recognises (self-statements); alice is processed, bob stays buffered.
ALICE_TURNS = [
    [
        {"role": "user", "content": "Hi! My name is Alice and I work as a nurse."},
        {"role": "assistant", "content": "Nice to meet you, Alice."},
    ],
    [
        {"role": "user", "content": "I live in Lisbon and I love hiking."},
        {"role": "assistant", "content": "Lisbon has great trails nearby."},
    ],
]
BOB_TURN = [
    {"role": "user", "content": "Hello, my name is Bob and I work as a baker."},
    {"role": "assistant", "content": "Hi Bob!"},
]

#: Processing happens only when a test asks for it.
NO_AUTO_FLUSH = FlushPolicy(idle_flush_seconds=None, flush_on_close=False)


@dataclass(frozen=True)
class Store:
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def open(self) -> Memobase:
        return Memobase.embedded(self.url, llm=StandInLLM().settings(), policy=NO_AUTO_FLUSH)


@pytest.fixture(scope="session")
def built_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """alice: two processed turns (profile + events); bob: one turn still buffered."""
    store = Store(tmp_path_factory.mktemp("cli-store") / "memobase.db")
    mb = store.open()
    try:
        alice = mb.user("alice")
        for turn in ALICE_TURNS:
            alice.record(turn)
        alice.flush(wait=True)
        mb.user("bob").record(BOB_TURN)
    finally:
        mb.close()
    return store


@pytest.fixture
def store(built_store: Store, tmp_path: Path) -> Store:
    """A private copy, so tests that write (flush, forget, config set) stay independent."""
    copy = Store(tmp_path / "memobase.db")
    shutil.copy(built_store.path, copy.path)
    return copy


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no Memobase or LLM settings, wide enough for tables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MEMOBASE_", "OPENAI_")) or k == "MEMOBASE_TEST_POSTGRES_URL"
    }
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class RunCLI(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result: ...


@pytest.fixture
def cli(tmp_path: Path) -> RunCLI:
    """Run ``python -m memobase_integrations ARGS`` in a scratch directory."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "memobase_integrations", *args],
            capture_output=True,
            text=True,
            input=input if input is not None else "",
            env=env or clean_env(),
            cwd=tmp_path,
            timeout=180,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
