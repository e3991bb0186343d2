"""The embedded engine's LLM client: the ``openai`` SDK against any OpenAI-compatible endpoint.

Every request carries ``X-Memobase-Step: <step>`` so the stand-in LLM, proxies and logs can tell
the pipeline steps apart. Every failure becomes :class:`~memobase_integrations.errors.LLMError`
naming the step (or :class:`~memobase_integrations.errors.ConfigurationError` when no endpoint
is configured at all); the API key never appears in a message: we build messages ourselves
from the status code and the exception type instead of copying the SDK's text, which may
quote request details.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..errors import ConfigurationError, LLMError
from ..settings import LLMSettings
from .llm_gate import LLMGate, retry_after_seconds
from .prompts import STEP_HEADER  # defined once, next to the Step names it carries

if TYPE_CHECKING:
    import openai

__all__ = ["LLMClient", "StepUsage"]

logger = logging.getLogger(__name__)

EMBEDDING_STEP: Final = "embedding"
#: Steps that use ``summary_model`` (Memobase's ``summary_llm_model``) when one is set.
_SUMMARY_STEPS: Final = frozenset({"entry_summary", "summary_profile", "pick_related_profiles"})
#: ``finish_reason`` values of an answer the endpoint did not finish: never used.
_UNFINISHED: Final = frozenset({"length", "content_filter"})
#: Used when only a base URL is set (Ollama, vLLM, LM Studio accept any key).
_PLACEHOLDER_KEY: Final = "not-needed"
#: HTTP statuses worth another try (the openai SDK's own list).
_RETRY_STATUSES: Final = frozenset({408, 409, 429})
#: Backoff between tries of one request when the endpoint gave no ``Retry-After``.
_RETRY_BASE_SECONDS: Final = 0.5
_RETRY_MAX_SECONDS: Final = 8.0

_T = TypeVar("_T")

NO_LLM_MESSAGE: Final = (
    "No LLM is configured for the embedded engine, so buffered turns cannot be processed (they "
    "stay safely buffered). Set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI "
    "endpoint such as Ollama or vLLM), pass llm=LLMSettings(...), or use the offline stand-in: "
    "llm=memobase_integrations.testing.StandInLLM().settings()."
)


def _openai() -> ModuleType:
    """The ``openai`` SDK, imported on first use: it takes about a second to import, and a
    process that only records turns never needs it."""
    import openai

    return openai


@dataclass(slots=True)
class StepUsage:
    """Counters for one step (or ``embedding``)."""

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class _Usage:
    steps: dict[str, StepUsage] = field(default_factory=dict)

    def step(self, name: str) -> StepUsage:
        return self.steps.setdefault(name, StepUsage())


class LLMClient:
    """Chat completions and embeddings for the pipeline, with per-step counters.

    The ``openai`` clients are built lazily, so constructing an engine without any LLM
    configured works (recording needs no LLM); the first completion then raises
    :class:`ConfigurationError` with what to set.

    Sync requests pass the ``gate`` (:class:`~.llm_gate.LLMGate`): a bound on requests in
    flight and a pause shared by all of them when the endpoint answers 429 (or a 5xx with
    ``Retry-After``). Their retries (``LLMSettings.max_retries``) are therefore ours, not the
    SDK's, so that such an answer pauses every request and not just the one that got it.
    """

    def __init__(self, settings: LLMSettings, gate: LLMGate | None = None) -> None:
        self.settings = settings
        self.gate = gate if gate is not None else LLMGate()
        self._lock = threading.Lock()
        self._usage = _Usage()
        self._sync: openai.OpenAI | None = None
        self._async: openai.AsyncOpenAI | None = None
        self._sync_embed: openai.OpenAI | None = None
        self._async_embed: openai.AsyncOpenAI | None = None

    def __repr__(self) -> str:  # never the key
        return (
            f"LLMClient(base_url={self.settings.base_url!r}, model={self.settings.best_model!r}, "
            f"configured={self.configured})"
        )

    # -- configuration --------------------------------------------------------------------------
    @property
    def configured(self) -> bool:
        return self.settings.configured

    @property
    def embeddings_enabled(self) -> bool:
        return self.settings.enable_embeddings

    def model_for(self, step: str) -> str:
        s = self.settings
        if step in _SUMMARY_STEPS and s.summary_model:
            return s.summary_model
        return s.best_model

    def _require(self) -> None:
        if not self.configured:
            raise ConfigurationError(NO_LLM_MESSAGE)

    def _key(self, embedding: bool = False) -> str:
        s = self.settings
        secret = (s.embedding_api_key or s.api_key) if embedding else s.api_key
        return secret.get_secret_value() if secret is not None else _PLACEHOLDER_KEY

    def _base_url(self, embedding: bool = False) -> str | None:
        s = self.settings
        return (s.embedding_base_url or s.base_url) if embedding else s.base_url

    def _client(self, embedding: bool = False) -> openai.OpenAI:
        self._require()
        attr = "_sync_embed" if embedding else "_sync"
        sdk = _openai()  # imported outside the lock: close() must never wait for an import
        with self._lock:
            client: openai.OpenAI | None = getattr(self, attr)
            if client is None:
                client = sdk.OpenAI(
                    api_key=self._key(embedding),
                    base_url=self._base_url(embedding),
                    timeout=self.settings.timeout,
                    max_retries=0,  # retried in _send, through the gate
                    http_client=self.settings.http_client,  # type: ignore[arg-type]
                )
                setattr(self, attr, client)
        return client

    def _aclient(self, embedding: bool = False) -> openai.AsyncOpenAI:
        self._require()
        attr = "_async_embed" if embedding else "_async"
        sdk = _openai()
        with self._lock:
            client: openai.AsyncOpenAI | None = getattr(self, attr)
            if client is None:
                client = sdk.AsyncOpenAI(
                    api_key=self._key(embedding),
                    base_url=self._base_url(embedding),
                    timeout=self.settings.timeout,
                    max_retries=self.settings.max_retries,
                    http_client=self.settings.async_http_client,  # type: ignore[arg-type]
                )
                setattr(self, attr, client)
        return client

    def warm_up(self) -> None:
        """Import the SDK and build the sync clients now (about a second of CPU), so a
        worker's first flush does not pay for it. Does nothing without an LLM."""
        if self.configured:
            self._client()
            if self.embeddings_enabled:
                self._client(embedding=True)

    # -- chat completions -----------------------------------------------------------------------
    def _chat_args(self, step: str, system: str, user: str, model: str | None) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return {
            "model": model or self.model_for(step),
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "extra_headers": {STEP_HEADER: step},
        }

    def complete(self, step: str, system: str, user: str, *, model: str | None = None) -> str:
        """One chat completion for ``step``; returns the answer text (may be ``""``).

        Raises :class:`LLMError` for transport/HTTP failures, for a response with no message
        content at all (``content: null``, no choices) and for an answer the endpoint did not
        finish: ``finish_reason`` ``length`` (cut at ``max_tokens``) or ``content_filter``. A
        cut answer can look complete, so the reason is the only safe signal. An empty string
        is returned as is: whether it is usable is the step's call (none accepts it today).
        """
        step = str(step)
        args = self._chat_args(step, system, user, model)
        client = self._client()
        started = time.perf_counter()
        response = self._send(step, started, lambda: client.chat.completions.create(**args))
        return self._answer(step, response, started)

    def _send(self, step: str, started: float, request: Callable[[], _T]) -> _T:
        """Run ``request`` through the gate, retrying what the SDK would retry.

        A 429, or any retryable answer with ``Retry-After``, pauses the whole gate for the
        time asked (every request of this client waits); other retryable failures (timeouts,
        connection errors, 5xx) back off this request alone. The last failure raises
        :class:`LLMError` and the flush's turns follow the per-turn retry policy."""
        openai = _openai()
        attempt = 0
        while True:
            with self.gate.slot():
                try:
                    return request()
                except (openai.OpenAIError, ValueError) as exc:
                    error: Exception = exc
            wait = self._retry_wait(error, attempt)
            if wait is None or attempt >= self.settings.max_retries:
                self._count_failure(step, started)
                raise _llm_error(step, error, self.settings.timeout) from None
            attempt += 1
            if wait > 0:
                time.sleep(wait)

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """How long this request waits before its next try (0 after a shared pause, which
        the gate itself waits out); ``None`` when the failure is not worth another try."""
        openai = _openai()
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            if code not in _RETRY_STATUSES and code < 500:
                return None
            asked = retry_after_seconds(exc.response.headers)
            if code == 429 or asked is not None:
                self.gate.pause(asked if asked is not None else self._backoff(attempt))
                return 0.0
            return self._backoff(attempt)
        if isinstance(exc, openai.APIConnectionError):  # timeouts included
            return self._backoff(attempt)
        return None

    @staticmethod
    def _backoff(attempt: int) -> float:
        backoff = min(_RETRY_BASE_SECONDS * 2.0**attempt, _RETRY_MAX_SECONDS)
        return backoff * (1.0 - 0.25 * random.random())

    async def acomplete(
        self, step: str, system: str, user: str, *, model: str | None = None
    ) -> str:
        """Async twin of :meth:`complete` (``openai.AsyncOpenAI``)."""
        step = str(step)
        args = self._chat_args(step, system, user, model)
        client = self._aclient()
        started = time.perf_counter()
        try:
            response = await client.chat.completions.create(**args)
        except (_openai().OpenAIError, ValueError) as exc:
            self._count_failure(step, started)
            raise _llm_error(step, exc, self.settings.timeout) from None
        return self._answer(step, response, started)

    def _answer(self, step: str, response: Any, started: float) -> str:
        elapsed = time.perf_counter() - started
        usage = getattr(response, "usage", None)
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices and choices[0].message else None
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        with self._lock:
            counters = self._usage.step(step)
            counters.calls += 1
            counters.seconds += elapsed
            if usage is not None:
                counters.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                counters.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        if content is None or finish in _UNFINISHED:
            with self._lock:
                self._usage.step(step).failures += 1
            raise LLMError(self._unfinished_message(step, finish, has_text=bool(content)))
        return str(content)

    def _unfinished_message(self, step: str, finish: str | None, *, has_text: bool) -> str:
        kept = "the turns stay buffered and will be retried"
        if finish == "content_filter":
            return (
                f"The LLM endpoint's content filter stopped the answer to the '{step}' step "
                f"(finish_reason=content_filter). Nothing was written; {kept}. If it repeats, "
                "the endpoint's filter settings refuse this conversation."
            )
        if finish == "length":
            what = "was cut off at" if has_text else "hit"
            return (
                f"The LLM's answer to the '{step}' step {what} LLMSettings.max_tokens "
                f"({self.settings.max_tokens}) before it was finished (finish_reason=length). "
                f"Nothing was written; {kept}. Raise max_tokens if this repeats."
            )
        return (
            f"The LLM answered the '{step}' step with no text. Check that the model "
            f"{self.model_for(step)!r} is a chat model; {kept}."
        )

    # -- embeddings -----------------------------------------------------------------------------
    def _embed_args(self, texts: Sequence[str]) -> dict[str, Any]:
        s = self.settings
        args: dict[str, Any] = {
            "input": list(texts),
            "model": s.embedding_model,
            "extra_headers": {STEP_HEADER: EMBEDDING_STEP},
        }
        # Only the text-embedding-3 family accepts ``dimensions``; others reject the field.
        if s.embedding_model.startswith("text-embedding-3"):
            args["dimensions"] = s.embedding_dim
        return args

    def _require_embeddings(self) -> None:
        if not self.embeddings_enabled:
            raise ConfigurationError(
                "Embeddings are off: set LLMSettings(enable_embeddings=True) or "
                "MEMOBASE_EMBEDDING_MODEL to use similarity search."
            )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One embeddings call for all ``texts`` (in order)."""
        self._require_embeddings()
        if not texts:
            return []
        client = self._client(embedding=True)
        started = time.perf_counter()
        args = self._embed_args(texts)
        response = self._send(EMBEDDING_STEP, started, lambda: client.embeddings.create(**args))
        return self._vectors(response, len(texts), started)

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        self._require_embeddings()
        if not texts:
            return []
        client = self._aclient(embedding=True)
        started = time.perf_counter()
        try:
            response = await client.embeddings.create(**self._embed_args(texts))
        except (_openai().OpenAIError, ValueError) as exc:
            self._count_failure(EMBEDDING_STEP, started)
            raise _llm_error(EMBEDDING_STEP, exc, self.settings.timeout) from None
        return self._vectors(response, len(texts), started)

    def _vectors(self, response: Any, expected: int, started: float) -> list[list[float]]:
        data = sorted(getattr(response, "data", None) or [], key=lambda d: d.index)
        with self._lock:
            counters = self._usage.step(EMBEDDING_STEP)
            counters.calls += 1
            counters.seconds += time.perf_counter() - started
            usage = getattr(response, "usage", None)
            if usage is not None:
                counters.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        model = self.settings.embedding_model
        try:
            vectors = [[float(x) for x in d.embedding] for d in data]
        except (TypeError, ValueError):
            vectors = []
        if (
            len(vectors) != expected
            or any(not v for v in vectors)
            or not all(math.isfinite(x) for v in vectors for x in v)
        ):
            raise LLMError(
                f"The embeddings endpoint returned no usable vectors for {expected} texts "
                f"(model {model!r}); nothing was written and the turns will be retried. Check "
                "LLMSettings.embedding_model."
            )
        # Vectors of another size are never found by similarity search (it skips them), so
        # one answer must have one size, and the requested one when we asked for a size.
        sizes = sorted({len(v) for v in vectors})
        dim = self.settings.embedding_dim
        if len(sizes) > 1 or ("dimensions" in self._embed_args(["x"]) and sizes != [dim]):
            raise LLMError(
                f"The embeddings endpoint returned vectors of size {', '.join(map(str, sizes))}, "
                f"not LLMSettings.embedding_dim={dim} (model {model!r}); nothing was written. "
                "Make the two agree."
            )
        return vectors

    # -- counters -------------------------------------------------------------------------------
    def _count_failure(self, step: str, started: float) -> None:
        with self._lock:
            counters = self._usage.step(step)
            counters.failures += 1
            counters.seconds += time.perf_counter() - started

    def usage(self) -> dict[str, StepUsage]:
        """A snapshot of the per-step counters."""
        with self._lock:
            return {
                k: StepUsage(v.calls, v.failures, v.prompt_tokens, v.completion_tokens, v.seconds)
                for k, v in self._usage.steps.items()
            }

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage().values())

    @property
    def llm_seconds(self) -> float:
        """Wall time spent inside LLM and embedding calls (for the non-LLM time of a flush)."""
        return sum(u.seconds for u in self.usage().values())

    def close(self) -> None:
        """Close the clients this object created (injected httpx clients stay the caller's)."""
        self.gate.close()
        with self._lock:
            for attr in ("_sync", "_sync_embed"):
                client = getattr(self, attr)
                if client is not None and self.settings.http_client is None:
                    client.close()
                setattr(self, attr, None)


def _llm_error(step: str, exc: Exception, timeout: float) -> LLMError:
    """An :class:`LLMError` that names the step and says what to do - and never the key."""
    openai = _openai()
    if isinstance(exc, ValueError):  # the SDK raises JSONDecodeError for a non-JSON body
        return LLMError(
            f"The LLM endpoint's answer for the '{step}' step was not valid JSON. Check that "
            "OPENAI_BASE_URL points at an OpenAI-compatible API (it usually ends in /v1); the "
            "turns stay buffered and will be retried."
        )
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(
            f"The LLM call for the '{step}' step timed out (LLMSettings.timeout={timeout}s). "
            "The endpoint may be overloaded; the turns stay buffered and will be retried. "
            "Raise the timeout for slow local models."
        )
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(
            f"The LLM endpoint could not be reached for the '{step}' step. Check "
            "OPENAI_BASE_URL / LLMSettings.base_url and that the server is running; the turns "
            "stay buffered and will be retried."
        )
    if isinstance(exc, openai.AuthenticationError):
        return LLMError(
            f"The LLM endpoint refused the API key for the '{step}' step (HTTP 401). Check "
            "OPENAI_API_KEY / LLMSettings.api_key.",
            status_code=401,
        )
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        hint = {
            400: "the endpoint rejected the request (model name? context length?)",
            403: "the key is not allowed to use this model",
            404: "check the model name and the base URL (it usually ends in /v1)",
            429: "rate limited or out of quota",
        }.get(code, "the endpoint failed")
        return LLMError(
            f"The LLM endpoint answered HTTP {code} for the '{step}' step: {hint}. The turns "
            "stay buffered and will be retried.",
            status_code=code,
        )
    return LLMError(
        f"The LLM call for the '{step}' step failed ({type(exc).__name__}). The turns stay "
        "buffered and will be retried."
    )
