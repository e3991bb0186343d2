"""``memobase-integrations worker``: processes a store's buffers until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from memobase_integrations import to_user_uuid

from .conftest import RunCLI, Store, clean_env


def start_worker(store: Store, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memobase_integrations",
            "worker",
            "--stand-in",
            "--idle-flush-seconds",
            "0.2",
            "--concurrency",
            "4",
            "--database-url",
            store.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    )


def read_until(proc: subprocess.Popen[str], needle: str, seen: list[str]) -> None:
    """Read stdout lines into ``seen`` until one contains ``needle`` (or the output ends)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_worker_processes_the_buffer_and_stops_cleanly(
    cli: RunCLI, store: Store, tmp_path: Path, stop_with: signal.Signals
) -> None:
    proc = start_worker(store, tmp_path)
    seen: list[str] = []
    reader = threading.Thread(target=read_until, args=(proc, "processed", seen), daemon=True)
    reader.start()
    reader.join(120)  # a liveness bound: bob's idle buffer is processed within a second
    try:
        assert any(f"processed {to_user_uuid('bob')}" in line for line in seen), seen
    finally:
        proc.send_signal(stop_with)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped after 1 batches; 0 turns still buffered." in out
    assert "stand-in" in err  # labelled as the offline stand-in

    profile = json.loads(cli("profile", "bob", "--json", "--database-url", store.url).stdout)
    assert {(p["topic"], p["sub_topic"]) for p in profile} >= {("work", "title")}


def test_worker_refuses_a_server(cli: RunCLI) -> None:
    result = cli("worker", "--project-url", "http://127.0.0.1:9")
    assert result.code == 2
    assert "--database-url" in result.stderr


def test_worker_needs_an_llm(cli: RunCLI, store: Store) -> None:
    result = cli("worker", "--database-url", store.url)
    assert result.code == 4
    assert "OPENAI_API_KEY" in result.stderr and "--stand-in" in result.stderr
