"""The o200k encoder is built from the bundled file without touching any tiktoken global."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import tiktoken
import tiktoken.core
import tiktoken.load
import tiktoken.registry
from tiktoken_ext import openai_public  # type: ignore[import-untyped]

from memobase_integrations import tokens

WATCHED = (tiktoken, tiktoken.core, tiktoken.load, tiktoken.registry, openai_public)


@contextmanager
def watching_setattr(modules: tuple[types.ModuleType, ...]) -> Iterator[list[str]]:
    """Record every attribute assignment or deletion on ``modules`` (any thread)."""
    seen: list[str] = []
    lock = threading.Lock()

    class Watched(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            with lock:
                seen.append(f"{self.__name__}.{name}")
            super().__setattr__(name, value)

        def __delattr__(self, name: str) -> None:
            with lock:
                seen.append(f"del {self.__name__}.{name}")
            super().__delattr__(name)

    originals = [m.__class__ for m in modules]
    for module in modules:
        module.__class__ = Watched
    try:
        yield seen
    finally:
        for module, cls in zip(modules, originals, strict=True):
            module.__class__ = cls


def snapshot(modules: tuple[types.ModuleType, ...]) -> dict[str, int]:
    return {f"{m.__name__}.{k}": id(v) for m in modules for k, v in vars(m).items()}


def test_racing_first_use_builds_once_and_changes_no_tiktoken_global(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_ENCODING", tokens._Lazy())  # a process's first use, again
    before = snapshot(WATCHED)
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    results: list[tiktoken.Encoding] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait(timeout=60)
            results.append(tokens.encoding())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with watching_setattr(WATCHED) as assignments:
        threads = [threading.Thread(target=first_use) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assigned = list(assignments)
    assert not errors
    assert assigned == []  # not even a temporary patch
    assert snapshot(WATCHED) == before
    assert len(results) == threads_n and len({id(r) for r in results}) == 1
    assert results[0].encode_ordinary("hello world") == [24912, 2375]


def test_the_encoder_matches_tiktokens_own_o200k_definition() -> None:
    enc = tokens.encoding()
    # Ask tiktoken for its definition, with its (downloading) loader stubbed in this test only.
    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *_a, **_k: {}):
        spec = openai_public.o200k_base()
    assert spec["pat_str"] == tokens.O200K_PATTERN
    assert spec["special_tokens"] == tokens.O200K_SPECIAL_TOKENS
    assert enc.name == "o200k_base" and enc.n_vocab == 200019
    assert tokens.count_tokens("Memobase keeps user memory. 我住在杭州。") == len(
        enc.encode_ordinary("Memobase keeps user memory. 我住在杭州。")
    )
    assert tokens.truncate_tokens("one two three four", 2, "...") == "one two..."
