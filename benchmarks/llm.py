"""The benchmark's LLM endpoint: the project's stand-in, plus counting and simulated latency.

All systems, Memobase and peers alike, reach "the LLM" through :class:`BenchLLM`, served
from its own process (:mod:`benchmarks.llm_server`) and reached over loopback HTTP through
:class:`ServedBenchLLM`, as an app reaches a hosted model. :class:`BenchLLM`

* forwards every request to :class:`memobase_integrations.testing.StandInLLM`: the engine's
  steps (``X-Memobase-Step``), mem0's JSON extraction and all embeddings (hashed words
  plus a small concept lexicon, so vector search finds related facts);
* answers only LlamaIndex's ``FactExtractionMemoryBlock`` prompts itself (the stand-in has no
  ``<facts>`` XML format), with the facts the stand-in recognises in the same messages;
* answers LangMem's memory-manager prompts (trustcall tool calls) itself too, with one
  ``Memory`` tool call per fact the stand-in recognises that is not already stored;
* counts calls, prompt and completion tokens (o200k, content + 3 per message, plus the
  tool definitions a request carries; the same rule for every system) per label, and
  embedding input tokens separately, so each system's cost is measured at one place;
* counts the prompt tokens a provider with prefix caching would bill as cached (OpenAI's
  rule: prompts of 1,024 tokens or more, cached in 128-token steps, for the longest prefix
  an earlier request of the same system already sent; no expiry, so an upper bound);
* sleeps like a hosted model would: ``llm_delay_s + per_token_delay_s * completion_tokens``
  for a chat completion and ``embedding_delay_s`` for an embedding request. The sleep happens
  in the server while the caller waits on its socket, exactly where a real network wait is.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import openai
from pydantic import SecretStr

from memobase_integrations.settings import LLMSettings
from memobase_integrations.tokens import count_tokens, encoding

__all__ = [
    "BenchLLM",
    "LLMCounts",
    "LatencyModel",
    "PrefixCache",
    "ServedBenchLLM",
    "answer_fact_block",
    "answer_langmem",
]

STEP_HEADER = "x-memobase-step"


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
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    llm_seconds: float = 0.0
    handler_seconds: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "llm_calls": self.llm_calls,
            "embedding_calls": self.embedding_calls,
            "prompt_tokens": self.prompt_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "embedding_tokens": self.embedding_tokens,
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


#: What LangMem's memory manager (``create_memory_store_manager``) sends as its system prompt.
LANGMEM_MARKER = "You are a memory subroutine for an AI."


def is_langmem_request(body: dict[str, Any]) -> bool:
    """LangMem's extraction prompt (trustcall tool calling with a ``Memory`` tool)."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    return bool(tools) and any(LANGMEM_MARKER in _message_text(m) for m in messages)


_SPEAKER = re.compile(r"^=+ (Human|Ai|System|Tool) Message =+$", re.M)


def _human_turns(session: str) -> list[str]:
    """The user's messages of a LangMem session (``pretty_repr`` blocks)."""
    parts = _SPEAKER.split(session)
    # parts: [before, speaker, text, speaker, text, ...]
    return [parts[i + 1].strip() for i in range(1, len(parts) - 1, 2) if parts[i] == "Human"]


def answer_langmem(standin: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """LangMem's tool calls: one ``Memory`` insert per fact the stand-in recognises in the
    session's user messages that is not already among the existing memories (no updates or
    deletions; the stand-in does not reason about conflicts)."""
    messages: list[dict[str, Any]] = body.get("messages") or []
    text = "\n".join(_message_text(m) for m in messages)
    match = re.search(r"<session_[^>]*>(.*?)</session_[^>]*>", text, re.S)
    chat = "\n".join(_human_turns(match.group(1))) if match else ""
    lines = standin.complete(None, "", chat).splitlines() if chat else []
    facts = [line[2:].strip() for line in lines if line.startswith("- ")]
    existing = set(re.findall(r"'content': '((?:[^'\\]|\\.)*)'", text))
    new = [f for f in dict.fromkeys(facts) if f not in existing]
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "Memory", "arguments": json.dumps({"content": fact})},
        }
        for i, fact in enumerate(new)
    ]


def _prompt_parts(body: dict[str, Any]) -> list[str]:
    """The texts a chat request bills as prompt, in the order a provider caches them
    (tool definitions first, then the messages)."""
    parts: list[str] = []
    tools = body.get("tools")
    if tools:
        parts.append(json.dumps(tools, sort_keys=True))
    for m in body.get("messages") or []:
        parts.append(f"{m.get('role', '')}\n{_message_text(m)}")
    return parts


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat request: each message's content + 3, 3 for the reply's
    priming, and the tool definitions (providers bill them as prompt)."""
    messages = body.get("messages") or []
    tokens = sum(count_tokens(_message_text(m)) + 3 for m in messages) + 3
    tools = body.get("tools")
    if tools:
        tokens += count_tokens(json.dumps(tools, sort_keys=True))
    return tokens


def _embedding_tokens(body: dict[str, Any]) -> int:
    inputs = body.get("input", [])
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    if items and all(isinstance(i, int) for i in items):
        return len(items)  # already token ids
    return sum(len(i) if isinstance(i, list) else count_tokens(str(i)) for i in items)


#: OpenAI's prompt-caching rule: only prompts of at least this many tokens are cached ...
CACHE_MIN_TOKENS = 1024
#: ... and the cached prefix grows in steps of this many tokens.
CACHE_STEP_TOKENS = 128


class PrefixCache:
    """Which prompt prefixes one system has already sent (hashes at each 128-token step).

    :meth:`cached` returns how many of a new prompt's tokens a provider with prefix caching
    would bill as cached: the longest prefix of at least 1,024 tokens, in 128-token steps,
    that an earlier request of the same system also began with. Nothing ever expires here
    (real caches drop a prefix after minutes of disuse), so the saving is an upper bound.
    """

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def cached(self, parts: list[str]) -> int:
        ids: list[int] = []
        enc = encoding()
        for part in parts:
            ids.extend(enc.encode_ordinary(part))
        if len(ids) < CACHE_MIN_TOKENS:
            return 0
        digest = hashlib.blake2b(digest_size=16)
        hit = 0
        missed = False
        for end in range(CACHE_STEP_TOKENS, len(ids) + 1, CACHE_STEP_TOKENS):
            digest.update(
                struct.pack(f"<{CACHE_STEP_TOKENS}I", *ids[end - CACHE_STEP_TOKENS : end])
            )
            key = digest.copy().digest()
            if end >= CACHE_MIN_TOKENS:
                if not missed and key in self._seen:
                    hit = end
                else:
                    missed = True
            self._seen.add(key)
        return hit


def _json_response(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=payload)


class BenchLLM(httpx.BaseTransport):
    """The one endpoint every system in a run talks to. Thread-safe."""

    def __init__(self, standin: Any, latency: LatencyModel = INSTANT) -> None:
        self.standin = standin
        self._standin_transport: Any = standin.transport()
        self.latency = latency
        self._lock = threading.Lock()
        self._counts: dict[str, LLMCounts] = {}
        self._caches: dict[str, PrefixCache] = {}
        self.label = "unlabelled"

    # -- counting -------------------------------------------------------------------------------
    def counts(self, label: str | None = None) -> LLMCounts:
        with self._lock:
            return self._counts.setdefault(label or self.label, LLMCounts())

    def _record(
        self,
        label: str,
        kind: str,
        body: dict[str, Any],
        completion: int,
        seconds: float,
        embedding: bool,
        handler_seconds: float,
    ) -> None:
        if embedding:
            tokens, cached = _embedding_tokens(body), 0
        else:
            tokens = _prompt_tokens(body)
            with self._lock:
                cache = self._caches.setdefault(label, PrefixCache())
            cached = cache.cached(_prompt_parts(body))
        with self._lock:
            counts = self._counts.setdefault(label, LLMCounts())
            counts.handler_seconds += handler_seconds
            if embedding:
                counts.embedding_calls += 1
                counts.embedding_tokens += tokens
            else:
                counts.llm_calls += 1
                counts.completion_tokens += completion
                counts.prompt_tokens += tokens
                counts.cached_prompt_tokens += min(cached, tokens)
            counts.llm_seconds += seconds
            counts.by_kind[kind] += 1

    # -- answering ------------------------------------------------------------------------------
    @staticmethod
    def _completion(
        body: dict[str, Any], content: str | None, tool_calls: list[dict[str, Any]] | None = None
    ) -> httpx.Response:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        payload = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "stand-in"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
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
        if is_langmem_request(body):
            return "langmem:extract"
        if "## New Messages" in json.dumps(body):
            return "mem0:extract"
        return "other"

    @staticmethod
    def _completion_text(response: httpx.Response) -> str:
        """What the model wrote: the content, or the tool calls' names and arguments."""
        try:
            data = json.loads(response.content)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ""
        text = str(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            text += f"{fn.get('name', '')}{fn.get('arguments', '')}"
        return text

    def _account(
        self,
        request: httpx.Request,
        body: dict[str, Any],
        response: httpx.Response,
        kind: str,
        started: float,
        label: str | None = None,
    ) -> float:
        """Count the call; return how long a hosted model would have taken."""
        embedding = request.url.path.endswith("/embeddings")
        completion = 0 if embedding else count_tokens(self._completion_text(response))
        delay = self.latency.embedding_delay_s if embedding else self.latency.chat_delay(completion)
        self._record(
            label or self.label,
            kind,
            body,
            completion,
            delay,
            embedding,
            time.perf_counter() - started,
        )
        return delay

    def handle_request(self, request: httpx.Request, label: str | None = None) -> httpx.Response:
        """Answer, count (under ``label``, default the current one) and sleep like a model."""
        started = time.perf_counter()
        body = json.loads(request.read() or b"{}")
        kind = self._kind(request, body)
        if kind == "llamaindex:fact_block":
            response = self._completion(body, answer_fact_block(self.standin, body))
        elif kind == "langmem:extract":
            calls = answer_langmem(self.standin, body)
            response = self._completion(body, None if calls else "No new memories.", calls)
        else:
            response = self._standin_transport.handle_request(request)
            response.read()
        delay = self._account(request, body, response, kind, started, label)
        if delay:
            time.sleep(delay)
        return response


class ServedBenchLLM:
    """A :class:`BenchLLM` in its own process (``python -m benchmarks.llm_server``).

    A hosted model's work never runs in the app's interpreter, and with the endpoint
    in-process the stand-in's rule matching (pure Python) would be billed to every system's
    turn through the GIL. It would also force the embedded engine's flush worker into a thread:
    an injected ``http_client`` cannot cross to its worker process. So every system of a run
    talks to this endpoint over loopback HTTP, like an app talks to a model.

    Counting stays per system: each client's base URL carries the current :attr:`label`
    (``/L/<label>/v1``), and :meth:`counts` asks the server. The interface is the in-process
    :class:`BenchLLM`'s: ``label``, ``counts``, ``settings``, ``openai_client``,
    ``async_openai_client``.
    """

    def __init__(self, latency: LatencyModel = INSTANT) -> None:
        self.latency = latency
        self.label = "unlabelled"
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.llm_server",
                "--llm-delay",
                str(latency.llm_delay_s),
                "--per-token-delay",
                str(latency.per_token_delay_s),
                "--embedding-delay",
                str(latency.embedding_delay_s),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("BENCH LLM "):
            self.close()
            raise RuntimeError(f"the benchmark LLM server did not start (said {line!r})")
        self.root = line.split()[-1]
        self._http = httpx.Client(timeout=30.0)

    def url_for(self, label: str | None = None) -> str:
        return f"{self.root}/L/{quote(label or self.label, safe='')}/v1"

    def counts(self, label: str | None = None) -> LLMCounts:
        response = self._http.get(f"{self.root}/counts/{quote(label or self.label, safe='')}")
        response.raise_for_status()
        data = response.json()
        by_kind = Counter(data.pop("by_kind"))
        return LLMCounts(**data, by_kind=by_kind)

    def settings(self, **overrides: Any) -> LLMSettings:
        """LLMSettings for the embedded engine: a plain URL, as a deployment has."""
        return LLMSettings(
            base_url=self.url_for(),
            api_key=SecretStr("placeholder-bench"),
            max_retries=0,
            **overrides,
        )

    def openai_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url_for(), api_key="placeholder-bench", max_retries=0)

    def async_openai_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url_for(), api_key="placeholder-bench", max_retries=0
        )

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
