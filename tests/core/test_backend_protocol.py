"""Every backend implements the whole Backend protocol with the protocol's signatures.

The contract suite (``tests/contract``) checks behaviour; this checks the shape, so a method
added to the protocol and forgotten in one backend, or a parameter named or defaulted
differently (``retry_failed(user_id)`` vs ``retry_failed(user_id=None)`` once), fails here
at once. The in-memory test backend is included: it is what users' tests stand on.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from memobase_integrations import ConfigurationError, Memobase
from memobase_integrations.backends.base import Backend
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.testing import InMemoryBackend

IMPLEMENTATIONS = [EmbeddedBackend, RemoteBackend, InMemoryBackend]
KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
EMPTY = inspect.Parameter.empty


def protocol_methods() -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(Backend).items()
        if callable(member) and not name.startswith("_")
    }


def shape(fn: Any) -> list[tuple[str, Any, Any]]:
    """Names, kinds and defaults of the parameters (annotations are checked by mypy). A
    backend may add keyword-only parameters with defaults (the remote ``events()`` has
    ``need_summary``): every call the protocol allows still works."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_the_protocol_has_the_failure_methods_and_their_twins() -> None:
    names = set(protocol_methods())
    for name in ("failures", "retry_failed", "discard_failed"):
        assert {name, f"a{name}"} <= names


def test_every_method_has_an_async_twin_in_the_protocol() -> None:
    names = set(protocol_methods())
    sync = {n for n in names if not inspect.iscoroutinefunction(protocol_methods()[n])}
    assert {n for n in sync if f"a{n}" not in names} == {"add_listener"}


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_implementation_matches_the_protocol(cls: type) -> None:
    mismatched = []
    for name, member in protocol_methods().items():
        impl = getattr(cls, name, None)
        if impl is None:
            mismatched.append(f"{name}: missing")
            continue
        if inspect.iscoroutinefunction(member) != inspect.iscoroutinefunction(impl):
            mismatched.append(f"{name}: sync/async differs")
        wanted, got = shape(member), shape(impl)
        extra = got[len(wanted) :]
        optional_extras = all(k is KEYWORD_ONLY and d is not EMPTY for _, k, d in extra)
        if got[: len(wanted)] != wanted or not optional_extras:
            mismatched.append(f"{name}{inspect.signature(impl)} != {inspect.signature(member)}")
    assert mismatched == []


def test_the_in_memory_backend_is_a_backend() -> None:
    backend = InMemoryBackend()
    try:
        assert isinstance(backend, Backend)
        assert backend.kind == "memory" and backend.worker_mode is None
    finally:
        backend.close(0)


def test_the_facade_refuses_a_partial_backend_and_names_what_it_lacks() -> None:
    class Partial:
        def add_listener(self, listener: Any) -> None: ...

    with pytest.raises(ConfigurationError, match=r"lacks record, arecord, .*\.\.\."):
        Memobase(Partial())  # type: ignore[arg-type]
