"""The benchmark's LLM endpoint: the project's stand-in, plus counting and simulated latency.

All systems, Memobase and peers alike, reach "the LLM" through :class:`BenchLLM`, an httpx
transport (sync and async) that every ``openai`` client in the run is built on. It

* forwards every request to :class:`memobase_integrations.testing.StandInLLM`: the engine's
  steps (``X-Memobase-Step``), mem0's JSON extraction and all embeddings (hashed
  bag-of-words vectors, so vector search finds related facts);
* answers only LlamaIndex's ``FactExtractionMemoryBlock`` prompts itself (the stand-in has no
  ``<facts>`` XML format), with the facts the stand-in recognises in the same messages;
* counts calls, prompt and completion tokens (o200k, content + 3 per message, the same
  rule for every system) per label, so each system's cost is measured at one place;
* sleeps like a hosted model would: ``llm_delay_s + per_token_delay_s * completion_tokens``
  for a chat completion and ``embedding_delay_s`` for an embedding request. The sleep happens
  on whatever thread sent the request, exactly where a real network wait would be.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import openai
from pydantic import SecretStr

from memobase_integrations.settings import LLMSettings
from memobase_integrations.tokens import count_tokens

__all__ = [
    "BenchLLM",
    "LLMCounts",
    "LatencyModel",
    "LoopbackEndpoint",
    "StandInServer",
    "answer_fact_block",
]

STEP_HEADER = "x-memobase-step"
BASE_URL = "http://stand-in.invalid/v1"


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Simulated hosted-model latency. ``INSTANT`` answers at once."""

    name: str
    llm_delay_s: float = 0.0
    per_token_delay_s: float = 0.0
    embedding_delay_s: float = 0.0

    def chat_delay(self, completion_tokens: int) -> float:
        return self.llm_delay_s + self.per_token_delay_s * completion_tokens


INSTANT = LatencyModel("instant")
HOSTED = LatencyModel("hosted", llm_delay_s=0.4, per_token_delay_s=0.01, embedding_delay_s=0.15)


@dataclass(slots=True)
class LLMCounts:
    """What one label (one system's run) cost at the endpoint."""

    llm_calls: int = 0
    embedding_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    handler_seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "llm_calls": self.llm_calls,
            "embedding_calls": self.embedding_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "by_kind": dict(self.by_kind),
        }


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def is_fact_block_request(body: dict[str, Any]) -> bool:
    """LlamaIndex's ``FactExtractionMemoryBlock`` prompts (extract and condense)."""
    messages = body.get("messages") or []
    return bool(messages) and "<existing_facts>" in _message_text(messages[-1])


def answer_fact_block(standin: Any, body: dict[str, Any]) -> str:
    """The ``<facts>`` answer, with the facts the stand-in itself recognises.

    Extraction: the stand-in reads the user's messages that precede the instruction and its
    ``- fact`` lines are returned as ``<fact>`` tags, minus the existing ones. Condensing:
    the existing facts are kept, the oldest third dropped (a valid, shorter snapshot).
    """
    messages: list[dict[str, Any]] = body.get("messages") or []
    instruction = _message_text(messages[-1])
    existing = [f.strip() for f in re.findall(r"<fact>(.*?)</fact>", instruction, re.S)]
    existing = [f for f in existing if f and f != "Specific fact 1" and f != "Specific fact 2"]
    if "condensing system" in instruction:
        kept = existing[len(existing) // 3 :]
        return "<facts>\n" + "".join(f"  <fact>{f}</fact>\n" for f in kept) + "</facts>"
    chat = "\n".join(_message_text(m) for m in messages[:-1] if m.get("role") == "user")
    lines = standin.complete(None, "", chat).splitlines() if chat else []
    facts = [line[2:].strip() for line in lines if line.startswith("- ")]
    new = [f for f in facts if f not in existing]
    return "<facts>\n" + "".join(f"  <fact>{f}</fact>\n" for f in new) + "</facts>"


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(count_tokens(_message_text(m)) + 3 for m in messages) + 3
    inputs = body.get("input", [])
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    return sum(count_tokens(str(i)) for i in items)


def _json_response(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=payload)


class BenchLLM(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The one endpoint every system in a run talks to. Thread-safe."""

    def __init__(self, standin: Any, latency: LatencyModel = INSTANT) -> None:
        self.standin = standin
        self._standin_transport: Any = standin.transport()
        self.latency = latency
        self._lock = threading.Lock()
        self._counts: dict[str, LLMCounts] = {}
        self.label = "unlabelled"

    # -- counting -------------------------------------------------------------------------------
    def counts(self, label: str | None = None) -> LLMCounts:
        with self._lock:
            return self._counts.setdefault(label or self.label, LLMCounts())

    def _record(
        self,
        kind: str,
        prompt: int,
        completion: int,
        seconds: float,
        embedding: bool,
        handler_seconds: float,
    ) -> None:
        with self._lock:
            counts = self._counts.setdefault(self.label, LLMCounts())
            counts.handler_seconds += handler_seconds
            if embedding:
                counts.embedding_calls += 1
            else:
                counts.llm_calls += 1
                counts.completion_tokens += completion
            counts.prompt_tokens += prompt
            counts.llm_seconds += seconds
            counts.by_kind[kind] += 1

    # -- answering ------------------------------------------------------------------------------
    def _fact_block(self, body: dict[str, Any]) -> httpx.Response:
        text = answer_fact_block(self.standin, body)
        payload = {
            "id": "chatcmpl-bench-facts",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "stand-in"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return httpx.Response(200, json=payload)

    @staticmethod
    def _kind(request: httpx.Request, body: dict[str, Any]) -> str:
        if request.url.path.endswith("/embeddings"):
            return "embedding"
        step = request.headers.get(STEP_HEADER)
        if step:
            return f"memobase:{step}"
        if is_fact_block_request(body):
            return "llamaindex:fact_block"
        if "## New Messages" in json.dumps(body):
            return "mem0:extract"
        return "other"

    @staticmethod
    def _completion_text(response: httpx.Response) -> str:
        try:
            data = json.loads(response.content)
            return str(data["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            return ""

    def _account(
        self,
        request: httpx.Request,
        body: dict[str, Any],
        response: httpx.Response,
        kind: str,
        started: float,
    ) -> float:
        """Count the call; return how long a hosted model would have taken."""
        embedding = request.url.path.endswith("/embeddings")
        completion = 0 if embedding else count_tokens(self._completion_text(response))
        delay = self.latency.embedding_delay_s if embedding else self.latency.chat_delay(completion)
        prompt = _prompt_tokens(body)
        self._record(kind, prompt, completion, delay, embedding, time.perf_counter() - started)
        return delay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        body = json.loads(request.read() or b"{}")
        kind = self._kind(request, body)
        if kind == "llamaindex:fact_block":
            response = self._fact_block(body)
        else:
            response = self._standin_transport.handle_request(request)
            response.read()
        delay = self._account(request, body, response, kind, started)
        if delay:
            time.sleep(delay)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        body = json.loads(await request.aread() or b"{}")
        kind = self._kind(request, body)
        if kind == "llamaindex:fact_block":
            response = self._fact_block(body)
        else:
            response = await self._standin_transport.handle_async_request(request)
            await response.aread()
        delay = self._account(request, body, response, kind, started)
        if delay:
            await asyncio.sleep(delay)
        return response

    # -- clients --------------------------------------------------------------------------------
    def settings(self, **overrides: Any) -> LLMSettings:
        """LLMSettings for the embedded engine, wired to this endpoint (sync and async)."""
        return LLMSettings(
            base_url=BASE_URL,
            api_key=SecretStr("sk-bench"),
            http_client=httpx.Client(transport=self, base_url=BASE_URL),
            async_http_client=httpx.AsyncClient(transport=self, base_url=BASE_URL),
            max_retries=0,
            **overrides,
        )

    def openai_client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=BASE_URL,
            api_key="sk-bench",
            max_retries=0,
            http_client=cast(Any, httpx.Client(transport=self)),  # openai types a vendored httpx
        )

    def async_openai_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=BASE_URL,
            api_key="sk-bench",
            max_retries=0,
            http_client=cast(Any, httpx.AsyncClient(transport=self)),
        )


class _LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = httpx.Request(
            "POST", f"http://loopback{self.path}", headers=headers, content=body
        )
        response = self.server.transport.handle_request(request)
        payload = response.read()
        self.send_response(response.status_code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    transport: BenchLLM


class LoopbackEndpoint:
    """Serves a :class:`BenchLLM` on ``http://127.0.0.1:<port>/v1`` for tools that only take a
    URL (the mem0 feasibility check runs mem0 unchanged against it)."""

    def __init__(self, transport: BenchLLM) -> None:
        self._server = _LoopbackServer(("127.0.0.1", 0), _LoopbackHandler)
        self._server.transport = transport
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> LoopbackEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class StandInServer:
    """The stand-in LLM served from its own process (``python -m memobase_integrations.testing``).

    For measurements where the LLM's own work must stay out of the measured interpreter, as a
    hosted model's does. ``with StandInServer() as url`` yields the ``/v1`` base URL; leaving
    the block closes the child's stdin, which stops it.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "memobase_integrations.testing"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("STAND-IN LLM "):
            self.__exit__()
            raise RuntimeError(f"the stand-in LLM server did not start (said {line!r})")
        return line.split()[-1]

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
