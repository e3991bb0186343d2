"""The offline stand-in LLM: deterministic rules behind a real OpenAI-compatible HTTP surface.

**This is not a model.** No real LLM is reachable where this project is built and tested, so
:class:`StandInLLM` answers the engine's prompts with regular expressions. It is plugged into
the real ``openai`` client as an httpx transport (or served on a loopback port), so the
production code path (client, retries, parsing) is the one exercised. Wherever it is used it
is labelled with :data:`LABEL`.

How it works
------------
Each chat-completions request carries ``X-Memobase-Step`` (set by the pipeline); without the
header the step is guessed from the system prompt, and prompts of other tools (e.g. mem0 in
the benchmarks) get a generic answer: the recognised facts as ``- `` lines, or as JSON
(``{"facts": [...]}`` / ``{"memory": [{"id", "text", "event": "ADD"}]}``) when JSON is asked.

Recognised self-statements (in the user's messages; case and contractions tolerant):

=====================================================  ========================================
statement                                              slot(s) (en; zh equivalents in zh mode)
=====================================================  ========================================
"my name is X", "call me X", "I'm X" (capitalised)     basic_info/name
"I am 34 (years old)", "I just turned 34"              basic_info/age
"I'm American" (a nationality)                         basic_info/nationality
"I'm from X"                                           basic_info/hometown
"I was born on <date>", "my birthday is <date>"        basic_info/birth_date
"I speak X", "I'm fluent in X"                         basic_info/language_spoken
"I live in X", "I'm based in X"                        contact_info/city
"I moved to X (last week)"                             contact_info/city + life_event/relocation
"I work as a X", "my job is X", "I'm a <job noun>"     work/title
"I work at/for Y", "I joined Y", "I'm a X at Y"        work/company (+ work/title)
"I got a new job as X at Y", "I was promoted to X"     work/title (+ company), an event
"I love/like/enjoy X", "I'm into X", "big fan of X",   interest/<books|movies|music|foods|
"my favorite <thing> is X", "my hobby is X"            sports|hobbies> (chosen by keywords)
"I hate/dislike X", "I can't stand X", "I don't like"  interest/<category> as "dislikes X"
"my wife/husband/partner (is named) X"                 demographics/marital_status + /spouse
"my daughter/son (is named) X"                         demographics/children
"I have two kids"                                      demographics/number_of_children
"I'm married", "I'm single"                            demographics/marital_status
"I got married (last month)"                           life_event/marriage (+ marital_status)
"my dog/cat X", "I have a cat named X"                 demographics/pets
"I study X at Y", "I graduated from Y"                 education/major, education/school
"I'm learning X", "I want to X", "my goal is to X"     psychological/goals
"I'm going to <Place> next week"                       life_event/travel ("trip to <Place>")
"I'm going to <do X> on <date>", "I plan to X",        life_event/plans
"I have a dentist appointment on Friday"
=====================================================  ========================================

Chinese (``language: zh``) knows a smaller set: 我叫/我的名字是, 我今年N岁, 我住在, 我搬到,
我在…工作, 我是一名…(职位), 我喜欢.

Relative dates ("tomorrow", "next Friday", "in 3 days", "last week") are resolved against the
message's ``[timestamp]`` (rules in :mod:`memobase_integrations.testing._dates`). Questions and
negated sentences ("I don't live in Paris anymore") reveal nothing.

Per step: the entry summary lists ``- User ... [mention DATE, <event> in DATE] // info|event|
schedule`` lines (``NONE``, the explicit "nothing to keep", for greeting-only chats);
extraction re-reads those lines and answers ``thinking / --- / - topic::sub_topic::memo``;
merge answers ``UPDATE::<new memo>`` when a single-valued slot (name, age, city, title,
company, marital status...) gets a different value, ``ABORT`` when the value is already there
and ``APPEND`` otherwise; organize keeps the suggested sub-topics first and folds the overflow
into ``others``; re-summary keeps the first three ``;``-parts (40 words at most); tagging
fills emotion / location tags and tags whose name appears in the memo (``NONE`` when none
applies); the profile picker chooses memos sharing words with the conversation.
Embeddings (:mod:`._embeddings`) are unit vectors of the requested ``dimensions`` built from
the words and the concepts of a small hand-written lexicon ("Lisbon" is near "Portugal"),
so vector search finds some paraphrases that words miss, as a model's would.

Faults for tests: :meth:`StandInLLM.fail_next` with ``timeout``, ``http500``, ``http429``,
``empty``, ``garbage``, ``half_formatted`` or ``invalid_json``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx

from ..engine.prompts import STEP_HEADER, Step, guess_step
from ..settings import LLMSettings
from ..tokens import count_tokens, encoding
from ._answers import answer, garble, half_format
from ._embeddings import embed_text

if TYPE_CHECKING:
    import openai

    from .memory import InMemoryBackend as InMemoryBackend

__all__ = [
    "BASE_URL",
    "LABEL",
    "FaultKind",
    "InMemoryBackend",
    "StandInCall",
    "StandInLLM",
    "embed_text",
]

log = logging.getLogger(__name__)

#: Printed by the demo and docs wherever the stand-in answers instead of a model.
LABEL = "offline stand-in LLM (deterministic rules, not a real model)"

#: The base URL the in-process clients use. ``.invalid`` is never resolved: the transport
#: answers before any network access.
BASE_URL = "http://stand-in.invalid/v1"
API_KEY = "stand-in"

FaultKind = Literal[
    "timeout", "http500", "http429", "empty", "garbage", "half_formatted", "invalid_json"
]
_FAULT_KINDS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]
EMBEDDING_STEP = "embedding"
UNKNOWN_STEP = "unknown"


@dataclass(frozen=True, slots=True)
class StandInCall:
    """One answered request, kept in :attr:`StandInLLM.history` for tests and debugging."""

    step: str
    system: str
    user: str
    answer: str
    fault: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class _Fault:
    step: str | None
    kind: FaultKind
    remaining: int | None


@dataclass(slots=True)
class _Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    timeout: bool = False
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def _error(status: int, message: str, kind: str) -> _Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return _Reply(status=status, body=json.dumps(body).encode())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class StandInLLM:
    """A deterministic OpenAI-compatible chat + embeddings endpoint (see the module doc).

    ``delay_s`` + ``per_token_delay_s`` x completion tokens simulate latency (``time.sleep`` in
    the sync transport, ``asyncio.sleep`` in the async one). Thread-safe.
    """

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        per_token_delay_s: float = 0.0,
        embedding_dim: int | None = None,
        history_size: int = 1000,
    ) -> None:
        self.delay_s = delay_s
        self.per_token_delay_s = per_token_delay_s
        self.embedding_dim = embedding_dim
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.history: deque[StandInCall] = deque(maxlen=history_size)
        self.calls = 0
        self.calls_by_step: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.embedding_calls = 0
        self.embedding_tokens = 0
        self.faults_triggered = 0

    def __repr__(self) -> str:
        return f"StandInLLM(calls={self.calls}, label={LABEL!r})"

    # -- counters and faults ------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the counters, forget the history and drop pending faults."""
        with self._lock:
            self.calls = self.prompt_tokens = self.completion_tokens = 0
            self.embedding_calls = self.embedding_tokens = self.faults_triggered = 0
            self.calls_by_step.clear()
            self.history.clear()
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """The counters as a plain dict (for benchmarks and reports)."""
        with self._lock:
            return {
                "calls": self.calls,
                "calls_by_step": dict(self.calls_by_step),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "embedding_calls": self.embedding_calls,
                "embedding_tokens": self.embedding_tokens,
                "faults_triggered": self.faults_triggered,
            }

    def fail_next(
        self, step: Step | str | None = None, kind: FaultKind = "http500", times: int | None = 1
    ) -> None:
        """Make the next ``times`` requests of ``step`` (any step when ``None``; ``"embedding"``
        for embeddings) fail with ``kind``; ``times=None`` keeps failing until
        :meth:`clear_faults`.

        * ``timeout``: the transport raises ``httpx.ReadTimeout`` (served: the connection is
          dropped without an answer);
        * ``http500`` / ``http429``: an OpenAI-style error response;
        * ``empty``: a 200 answer with empty content; ``garbage``: fluent text in no format;
          ``half_formatted``: the real answer with broken separators and its last line cut
          off inside a word;
        * ``invalid_json``: a 200 response whose body is not JSON.
        """
        kind = kind.replace("-", "_")  # type: ignore[assignment]  # "half-formatted" too
        if kind not in _FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; use one of {sorted(_FAULT_KINDS)}.")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for 'until cleared').")
        with self._lock:
            self._faults.append(_Fault(str(step) if step is not None else None, kind, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, step: str) -> FaultKind | None:
        with self._lock:
            for fault in self._faults:
                if fault.step is None and step == EMBEDDING_STEP:
                    continue  # "any step" means any chat step; embeddings are asked for by name
                if fault.step not in (None, step):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                self.faults_triggered += 1
                return fault.kind
            return None

    # -- the answers --------------------------------------------------------------------------
    def complete(self, step: Step | str | None, system: str, user: str) -> str:
        """The answer for one prompt, without counting or faults (handy in unit tests)."""
        resolved = _resolve_step(str(step) if step is not None else None, system)
        return answer(resolved, system, user)

    def _reply(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = {"object": "list", "data": [{"id": "stand-in", "object": "model"}]}
            return _Reply(body=json.dumps(data).encode())
        if method != "POST":
            return _error(405, f"{method} {path} is not served by the stand-in.", "invalid_request")
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return _error(400, "The request body is not JSON.", "invalid_request_error")
        if path.rstrip("/").endswith("/chat/completions"):
            return self._chat(payload, headers)
        if path.rstrip("/").endswith("/embeddings"):
            return self._embeddings(payload)
        return _error(404, f"Unknown path {path}.", "invalid_request_error")

    def _chat(self, payload: dict[str, Any], headers: Mapping[str, str]) -> _Reply:
        if payload.get("stream"):
            return _error(400, "The stand-in LLM does not stream.", "invalid_request_error")
        messages = payload.get("messages") or []
        system = "\n".join(
            _text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
        )
        user = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user")
        header = next((v for k, v in headers.items() if k.lower() == STEP_HEADER.lower()), None)
        step = _resolve_step(header, system)
        key = str(step) if step is not None else UNKNOWN_STEP
        prompt_tokens = count_tokens(system) + count_tokens(user)
        fault = self._take_fault(key)
        with self._lock:
            self.calls += 1
            self.calls_by_step[key] += 1
            self.prompt_tokens += prompt_tokens
        if fault == "timeout":
            self._record(key, system, user, "", fault, prompt_tokens, 0)
            return _Reply(timeout=True, delay=self.delay_s)
        if fault in ("http500", "http429"):
            self._record(key, system, user, "", fault, prompt_tokens, 0)
            status = 500 if fault == "http500" else 429
            kind = "server_error" if status == 500 else "rate_limit_exceeded"
            reply = _error(status, f"Simulated {status} from the stand-in LLM.", kind)
            reply.delay = self.delay_s
            return reply
        wants_json = (payload.get("response_format") or {}).get("type") == "json_object"
        try:
            content = answer(step, system, user, wants_json=wants_json)
        except Exception as exc:  # a stand-in bug must be visible, not a hang or a crash
            log.exception("The stand-in LLM failed to answer step %s", key)
            return _error(500, f"stand-in internal error: {exc!r}", "server_error")
        if fault == "empty":
            content = ""
        elif fault == "garbage":
            content = garble(content)
        elif fault == "half_formatted":
            content = half_format(content)
        completion_tokens = count_tokens(content)
        with self._lock:
            self.completion_tokens += completion_tokens
            number = self.calls
        self._record(key, system, user, content, fault, prompt_tokens, completion_tokens)
        delay = self.delay_s + self.per_token_delay_s * completion_tokens
        if fault == "invalid_json":
            return _Reply(body=b'{"id": "chatcmpl-broken", "choices": [', delay=delay)
        data = {
            "id": f"chatcmpl-standin-{number}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": payload.get("model") or "stand-in",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return _Reply(body=json.dumps(data, ensure_ascii=False).encode(), delay=delay)

    def _embeddings(self, payload: dict[str, Any]) -> _Reply:
        raw = payload.get("input")
        texts: list[str]
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            texts = [encoding().decode(raw)]
        elif isinstance(raw, list):
            texts = [x if isinstance(x, str) else encoding().decode(list(x)) for x in raw]
        else:
            return _error(400, "'input' must be a string or a list.", "invalid_request_error")
        dimensions = int(payload.get("dimensions") or self.embedding_dim or 1536)
        tokens = sum(count_tokens(t) for t in texts)
        fault = self._take_fault(EMBEDDING_STEP)
        with self._lock:
            self.embedding_calls += 1
            self.embedding_tokens += tokens
        if fault == "timeout":
            return _Reply(timeout=True, delay=self.delay_s)
        if fault in ("http500", "http429"):
            return _error(
                500 if fault == "http500" else 429, "Simulated embedding failure.", "server_error"
            )
        if fault == "invalid_json":
            return _Reply(body=b"{not json")
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimensions)
            if fault in ("empty", "garbage", "half_formatted"):
                vector = vector[: max(1, dimensions // 2)]  # a wrong-sized vector
            encoded: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        body = {
            "object": "list",
            "data": data,
            "model": payload.get("model") or "stand-in-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return _Reply(body=json.dumps(body).encode(), delay=self.delay_s)

    def _record(
        self,
        step: str,
        system: str,
        user: str,
        content: str,
        fault: str | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        call = StandInCall(step, system, user, content, fault, prompt_tokens, completion_tokens)
        with self._lock:
            self.history.append(call)

    def embed(self, texts: list[str], dimensions: int | None = None) -> list[list[float]]:
        """The vectors the embeddings endpoint would return (no counting)."""
        dim = dimensions or self.embedding_dim or 1536
        return [embed_text(t, dim) for t in texts]

    # -- wiring into httpx / openai -----------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        """A sync transport for ``httpx.Client`` (and so ``openai.OpenAI``)."""

        def handle(request: httpx.Request) -> httpx.Response:
            reply = self._reply(request.method, request.url.path, request.headers, request.content)
            if reply.delay > 0:
                time.sleep(reply.delay)
            if reply.timeout:
                raise httpx.ReadTimeout("Simulated timeout from the stand-in LLM.", request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handle)

    def async_transport(self) -> httpx.MockTransport:
        """An async transport for ``httpx.AsyncClient`` (and so ``openai.AsyncOpenAI``);
        simulated latency uses ``asyncio.sleep``, never blocking the loop."""

        async def handle(request: httpx.Request) -> httpx.Response:
            reply = self._reply(request.method, request.url.path, request.headers, request.content)
            if reply.delay > 0:
                await asyncio.sleep(reply.delay)
            if reply.timeout:
                raise httpx.ReadTimeout("Simulated timeout from the stand-in LLM.", request=request)
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handle)

    def settings(self, **overrides: Any) -> LLMSettings:
        """:class:`LLMSettings` wired to this stand-in (sync and async clients).

        ``base_url`` is never contacted. Pass e.g. ``enable_embeddings=True`` to turn on
        embeddings, or any other LLMSettings field.
        """
        values: dict[str, Any] = {
            "base_url": BASE_URL,
            "api_key": API_KEY,
            "http_client": httpx.Client(transport=self.transport()),
            "async_http_client": httpx.AsyncClient(transport=self.async_transport()),
        }
        values.update(overrides)
        return LLMSettings(**values)

    def client(self, **options: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` client talking to this stand-in (no retries by default)."""
        import openai

        options.setdefault("max_retries", 0)
        return openai.OpenAI(
            api_key=API_KEY,
            base_url=BASE_URL,
            # openai types its client as ``httpx2`` but accepts a plain ``httpx`` client.
            http_client=cast(Any, httpx.Client(transport=self.transport())),
            **options,
        )

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client talking to this stand-in (no retries by default)."""
        import openai

        options.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=BASE_URL,
            http_client=cast(Any, httpx.AsyncClient(transport=self.async_transport())),
            **options,
        )

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run as a real HTTP server on ``127.0.0.1`` (random port); yields its ``/v1`` URL.

        For tools that need a URL rather than a client (the benchmarks' mem0 run). A
        ``timeout`` fault drops the connection without an answer.
        """
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are separate writes: without TCP_NODELAY, Nagle plus the
            # client's delayed ACK stall every keep-alive request by ~40 ms.
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                reply = llm._reply(self.command, path, dict(self.headers.items()), body)
                if reply.delay > 0:
                    time.sleep(reply.delay)
                if reply.timeout:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("stand-in http: " + format, *args)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="stand-in-llm", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/v1"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _resolve_step(header: str | None, system: str) -> Step | None:
    if header:
        try:
            return Step(header.strip())
        except ValueError:
            log.warning("Unknown %s value %r; guessing from the prompt.", STEP_HEADER, header)
    return guess_step(system)


def __getattr__(name: str) -> Any:
    """:class:`~.memory.InMemoryBackend` is imported on first use: it brings the whole
    embedded engine (SQLAlchemy) with it, which the stand-in alone does not need."""
    if name == "InMemoryBackend":
        from .memory import InMemoryBackend

        return InMemoryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
