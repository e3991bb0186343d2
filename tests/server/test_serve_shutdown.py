"""SIGTERM: requests in flight finish, new connections are refused, buffered work drains.

``serve`` runs in a child process (the runner the CLI uses) on a stand-in LLM that takes
0.4 s per call, so a synchronous flush is still running when the signal arrives. Nothing
here asserts a duration: the waits are deadlines against hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from support import wait_until

from memobase_integrations import Memobase
from memobase_integrations.settings import LLMSettings

CHILD = textwrap.dedent(
    """
    import sys
    from pydantic import SecretStr
    from memobase_integrations import Memobase
    from memobase_integrations.server import ServerConfig
    from memobase_integrations.server.runner import serve
    from memobase_integrations.settings import FlushPolicy
    from memobase_integrations.testing import StandInLLM

    llm = StandInLLM(delay_s=0.4)  # every LLM call takes 0.4 s
    mb = Memobase.embedded(
        sys.argv[1],
        llm=llm.settings(),
        policy=FlushPolicy(idle_flush_seconds=None, close_timeout_seconds=60),
    )
    config = ServerConfig(port=0, access_token=SecretStr("t0k3n"), drain_timeout=60)
    serve(config, memobase=mb, announce=lambda text: print(text, flush=True))
    """
)
ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
HEADERS = {"Authorization": "Bearer t0k3n"}


def chat(text: str) -> dict[str, Any]:
    return {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": text}]}}


def test_sigterm_finishes_requests_in_flight_and_drains_the_buffer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        banner = child.stdout.readline()
        assert "listening on http://127.0.0.1:" in banner, child.stderr.read()  # type: ignore[union-attr]
        base = banner.split("http://", 1)[1].split(" ", 1)[0]
        api = f"http://{base}/api/v1"
        with httpx.Client(base_url=api, headers=HEADERS, timeout=120) as c:
            wait_until(lambda: c.get("/healthcheck").status_code == 200, "the server")
            for user, text in ((ALICE, "I live in Oslo."), (BOB, "I work as a pilot.")):
                assert c.post("/users", json={"id": user}).json()["errno"] == 0
                assert c.post(f"/blobs/insert/{user}", json=chat(text)).json()["errno"] == 0

            answers: list[httpx.Response] = []
            slow = threading.Thread(
                target=lambda: answers.append(
                    c.post(f"/users/buffer/{ALICE}/chat", params={"wait_process": "true"})
                )
            )
            slow.start()
            wait_until(
                lambda: c.get(
                    f"/users/buffer/capacity/{ALICE}/chat", params={"status": "processing"}
                ).json()["data"]["ids"],
                "the flush to be in flight",
            )
            child.send_signal(signal.SIGTERM)
            # New connections are refused from now on...
            wait_until(lambda: _refused(api), "the listening socket to close", timeout=30)
            # ... while the request in flight runs to its end.
            slow.join(timeout=120)
            assert not slow.is_alive()
        (answer,) = answers
        assert answer.status_code == 200 and answer.json()["errno"] == 0
        assert answer.json()["data"][0]["event_id"]
        assert child.wait(timeout=120) in (0, -signal.SIGTERM)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # Bob's turn was only buffered: the shutdown processed it (drain on close).
    mb = Memobase.embedded(url, llm=LLMSettings(), start_worker=False)
    try:
        assert mb.status().pending_turns == 0
        assert any(p.content.startswith("pilot") for p in mb.user(BOB).profile())
        assert any(p.sub_topic == "city" for p in mb.user(ALICE).profile())
    finally:
        mb.close(timeout=0)


def _refused(api: str) -> bool:
    try:
        httpx.get(f"{api}/healthcheck", timeout=5)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def test_a_second_sigterm_during_the_drain_does_not_lose_turns(tmp_path: Path) -> None:
    """Interrupting the drain leaves the rest buffered for the next start, never lost."""
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        base = child.stdout.readline().split("http://", 1)[1].split(" ", 1)[0]
        with httpx.Client(base_url=f"http://{base}/api/v1", headers=HEADERS, timeout=60) as c:
            wait_until(lambda: c.get("/healthcheck").status_code == 200, "the server")
            users = [f"{i:08d}-0000-4000-8000-{i:012d}" for i in range(1, 6)]
            for user in users:
                c.post("/users", json={"id": user})
                c.post(f"/blobs/insert/{user}", json=chat(f"I live in City{user[:3]}."))
        child.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the drain has started; each flush takes >= 1.2 s
        child.kill()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    mb = Memobase.embedded(url, llm=LLMSettings(), start_worker=False)
    try:
        status = mb.status()
        processed = sum(1 for u in users if mb.user(u).profile())
        # Every turn is either processed or still buffered (nothing lost, nothing twice).
        assert processed + status.pending_turns == len(users)
        assert os.path.exists(tmp_path / "serve.db")
    finally:
        mb.close(timeout=0)
