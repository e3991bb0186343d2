"""``MemobaseMemory`` on the remote backend across event loops (loopback HTTP server).

LlamaIndex runs memory I/O on whatever loop is at hand: ``asyncio.run`` per request in many
apps, and a fresh loop in a worker thread for sync ``chat()`` called from async code. An
``httpx.AsyncClient`` with a kept-alive connection breaks with "Event loop is closed" when
reused from another loop, so this uses a real loopback server (real sockets, HTTP/1.1
keep-alive), not a mock transport, which has no connections to go stale.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.chat_engine import SimpleChatEngine
from support.li_models import RecordingLLM

from llamaindex_memobase import MemobaseMemory
from memobase_integrations.facade import Memobase

# The context the real server returned in
# ../shared/fixtures/memobase-server/02_insert_async_flush_sync_then_read.json
RECORDED_CONTEXT = (
    "---\n# Memory\nUnless the user has relevant queries, do not actively mention those memories "
    "in the conversation.\n## User Current Profile:\n- basic_info::name: Alice Chen\n"
    "- work::title: software engineer [mention 2026/11/24]\n\n## Past Events:\n"
    "- User's name is Alice Chen. // info\n---\n"
)

_USER = r"[0-9a-f-]{36}"
_ROUTES: list[tuple[str, re.Pattern[str], Any]] = [
    ("GET", re.compile(rf"/api/v1/users/context/{_USER}"), {"context": RECORDED_CONTEXT}),
    ("POST", re.compile(rf"/api/v1/blobs/insert/{_USER}"), "insert"),
    ("POST", re.compile(r"/api/v1/users"), "create"),
    ("GET", re.compile(rf"/api/v1/users/blobs/{_USER}/chat"), {"ids": []}),
    ("GET", re.compile(rf"/api/v1/users/buffer/capacity/{_USER}/chat"), {"ids": []}),
    ("POST", re.compile(rf"/api/v1/users/buffer/{_USER}/chat"), []),
    ("GET", re.compile(rf"/api/v1/users/{_USER}"), {"data": {}, "id": None}),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server behind a proxy

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.requests.append((self.command, path))  # type: ignore[attr-defined]
        data: Any = None
        for method, pattern, answer in _ROUTES:
            if method == self.command and pattern.fullmatch(path):
                if answer == "insert":
                    data = {"id": str(uuid.uuid4()), "chat_results": []}
                elif answer == "create":
                    data = {"id": (body or {}).get("id") or str(uuid.uuid4())}
                else:
                    data = answer
                break
        payload = json.dumps({"data": data, "errno": 0, "errmsg": ""}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_memory_works_across_successive_event_loops(
    server: tuple[str, list[tuple[str, str]]], tmp_path: Path
) -> None:
    url, requests = server
    mb = Memobase.remote(url, "sk-test-key", outbox_path=tmp_path / "outbox.db")
    # strict: an "Event loop is closed" must fail the test, not be swallowed by fail-open;
    # recent_chats: chat-dependent contexts are not cached, so every read goes over HTTP.
    memory = MemobaseMemory.from_defaults("alice", mb, strict=True, recent_chats=2)
    llm = RecordingLLM()
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    try:
        asyncio.run(engine.achat("first request"))
        asyncio.run(engine.achat("second request"))

        async def sync_calls_inside_a_running_loop() -> None:
            engine.chat("third request")
            engine.chat("fourth request")

        asyncio.run(sync_calls_inside_a_running_loop())
        asyncio.run(engine.achat("fifth request"))
    finally:
        mb.close(timeout=10)

    context_reads = [p for m, p in requests if m == "GET" and "/users/context/" in p]
    assert len(context_reads) == 5
    assert len(llm.calls) == 5
    for call in llm.calls:  # every turn's LLM input carries the server's context
        assert any("basic_info::name: Alice Chen" in (m.content or "") for m in call)
    inserts = [p for m, p in requests if m == "POST" and "/blobs/insert/" in p]
    assert len(inserts) == 5  # one turn per request, delivered by the outbox worker
