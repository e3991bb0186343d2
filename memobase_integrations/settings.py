"""Settings shared by the facade and the backends: the LLM endpoint and the flush policy.

Secrets are ``pydantic.SecretStr`` so they never show in a ``repr``, a log line or an error.
A wrong value raises :class:`~memobase_integrations.errors.ConfigurationError` naming the
field (never the value of a secret), not pydantic's own error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .errors import ConfigurationError

__all__ = ["FlushPolicy", "LLMSettings"]


class _Settings(BaseModel):
    """Turns pydantic's validation errors into the package's ``ConfigurationError``."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise _configuration_error(type(self).__name__, exc) from None


def _configuration_error(model: str, exc: pydantic.ValidationError) -> ConfigurationError:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = len(exc.errors()) - 1
    return ConfigurationError(
        f"{model}: {field}: {first['msg']}. See help({model}) for the accepted values."
        + (f" ({more} more problem{'s' if more > 1 else ''}.)" if more else "")
    )


class LLMSettings(_Settings):
    """Where the embedded engine's LLM (and optional embeddings) live.

    Any OpenAI-compatible endpoint works: OpenAI, Azure's compatible route, Ollama
    (``base_url="http://localhost:11434/v1"``), vLLM, LM Studio. ``http_client`` lets tests and
    the offline demo plug in the stand-in LLM (``memobase_integrations.testing``) while the
    real ``openai`` client code path runs.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    base_url: str | None = None
    api_key: SecretStr | None = None
    best_model: str = "gpt-4o-mini"
    summary_model: str | None = None
    temperature: float = 0.2
    max_tokens: int = 1024
    timeout: float = 120.0
    max_retries: int = 2
    enable_embeddings: bool = False
    embedding_model: str = "text-embedding-3-small"
    embedding_dim: int = 1536
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    async_http_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> LLMSettings:
        """``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``MEMOBASE_LLM_MODEL``,
        ``MEMOBASE_SUMMARY_LLM_MODEL``, ``MEMOBASE_EMBEDDING_MODEL`` (turns embeddings on)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("OPENAI_API_KEY"):
            values["api_key"] = SecretStr(env["OPENAI_API_KEY"])
        if env.get("OPENAI_BASE_URL"):
            values["base_url"] = env["OPENAI_BASE_URL"]
        if env.get("MEMOBASE_LLM_MODEL"):
            values["best_model"] = env["MEMOBASE_LLM_MODEL"]
        if env.get("MEMOBASE_SUMMARY_LLM_MODEL"):
            values["summary_model"] = env["MEMOBASE_SUMMARY_LLM_MODEL"]
        if env.get("MEMOBASE_EMBEDDING_MODEL"):
            values["embedding_model"] = env["MEMOBASE_EMBEDDING_MODEL"]
            values["enable_embeddings"] = True
        values.update(overrides)
        return cls.model_validate(values)  # (validation runs _Settings.__init__)

    @property
    def configured(self) -> bool:
        """True when a real endpoint is set (a key, a base URL, or an injected client)."""
        return bool(self.api_key or self.base_url or self.http_client or self.async_http_client)


class FlushPolicy(_Settings):
    """When buffered turns are processed (both backends).

    Memobase itself only processes a buffer over ``buffer_token_threshold`` and never on
    idle; we add the idle flush and the flush on close so nothing sits unprocessed forever.
    """

    model_config = ConfigDict(frozen=True)

    buffer_token_threshold: int = Field(1024, ge=1)
    max_process_tokens: int = Field(16384, ge=1)
    idle_flush_seconds: float | None = Field(300.0, gt=0)
    flush_on_close: bool = True
    close_timeout_seconds: float = Field(30.0, ge=0)
    worker_poll_seconds: float = Field(0.5, gt=0)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    max_attempts: int | None = Field(None, ge=1)
    #: Embedded worker: flushes of *different* users run at once, up to this many (one
    #: user's batches never overlap; the store's leases guarantee it across processes).
    max_concurrent_flushes: int = Field(32, ge=1)
    #: Embedded worker: LLM requests in flight at once, over all its flushes.
    max_llm_requests: int = Field(32, ge=1)
    #: Longest shared pause a 429/5xx ``Retry-After`` may impose on all LLM calls.
    llm_pause_max_seconds: float = Field(60.0, gt=0)
    #: Embedded worker: how often it looks for due work when nothing woke it. Recorded
    #: turns wake it (the app's pipe; PostgreSQL ``LISTEN/NOTIFY``), and so do its own
    #: retries, so this is only a safety net. ``worker_poll_seconds``, when set
    #: explicitly, takes precedence (tests and latency-sensitive setups).
    safety_poll_seconds: float = Field(30.0, gt=0)
    #: ``os.nice`` increment of the worker process (best effort; 0 keeps the app's).
    worker_nice: int = Field(10, ge=0, le=19)
    #: Days a processed turn's id is remembered, so a replay of it is a no-op (embedded).
    #: ``None`` remembers forever (one ledger row per turn ever recorded).
    turn_ledger_days: float | None = Field(30.0, gt=0)

    @property
    def embedded_poll_seconds(self) -> float:
        """The embedded worker's idle poll: ``worker_poll_seconds`` when set explicitly,
        else ``safety_poll_seconds`` (wake-ups do the rest)."""
        if "worker_poll_seconds" in self.model_fields_set:
            return self.worker_poll_seconds
        return self.safety_poll_seconds
