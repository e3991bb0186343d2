"""The keyword options of ``Memobase.embedded()``, ``.remote()`` and ``.from_env()``, typed.

The constructors take these as ``**options: Unpack[...]`` so a type checker (and an editor)
sees every option and its type, where ``**options: Any`` hid them all. At run time the
facade still checks each value against the backend constructor's own annotations
(:func:`~.arguments.check_call_options`), and refuses an unknown name with a suggestion;
``tests/core/test_typed_options.py`` keeps these dictionaries and the constructors in step.

These sit at the facade's level: they name backend and engine types for the type checker
only, so importing this module imports neither.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    import httpx

    from .engine.config import ProfileConfig
    from .settings import FlushPolicy, LLMSettings

__all__ = ["EmbeddedOptions", "FacadeLimits", "FromEnvOptions", "RemoteOptions", "WorkerMode"]

#: Where the embedded engine's flush worker runs (see ``EmbeddedBackend``).
WorkerMode = Literal["auto", "thread", "process"]


class FacadeLimits(TypedDict, total=False):
    """The facade's own limits (see :class:`~.facade.Memobase`)."""

    max_blob_tokens: int
    max_turn_chars: int | None


class EmbeddedOptions(FacadeLimits, total=False):
    """``EmbeddedBackend``'s keyword options besides ``llm``, ``profile_config``, ``policy``."""

    start_worker: bool
    worker: WorkerMode
    engine_options: dict[str, Any] | None
    lease_seconds: float
    keep_processed_blobs: bool
    create_store: bool


class RemoteOptions(FacadeLimits, total=False):
    """``RemoteBackend``'s keyword options besides ``project_url`` and ``api_key``."""

    timeout: float
    read_deadline: float
    breaker_cooldown: float
    max_retries: int
    retry_backoff: float
    retry_backoff_max: float
    outbox_path: str | os.PathLike[str] | None
    policy: FlushPolicy | None
    transport: httpx.BaseTransport | None
    async_transport: httpx.AsyncBaseTransport | None
    auto_create_users: bool


class FromEnvOptions(EmbeddedOptions, RemoteOptions, total=False):
    """Either backend's options (the environment picks the backend), plus the embedded
    engine's ``llm`` and ``profile_config``."""

    llm: LLMSettings | None
    profile_config: ProfileConfig | str | None
