"""Fuzz every public entry point of the facade: only the package's typed errors escape.

Issue 12, item 13: fuzzed ``record()`` calls raised ``TypeError``, ``AttributeError``,
``UnicodeEncodeError`` or pydantic's ``ValidationError``, which callers cannot catch as
:class:`~memobase_integrations.errors.MemobaseError` and which never say what was wrong.

The entry points are found by introspection (every public function, classmethod and async
twin of :class:`Memobase` and :class:`UserMemory`), and their arguments are drawn from their
type annotations, mixed with junk of every kind (``None``, numbers, NaN, bytes, lists, text
with U+0000 and lone surrogates...). A method added tomorrow is fuzzed without touching this
file. Each runs against the embedded engine (SQLite, the stand-in LLM) and the remote
backend (the fake Memobase server behind an httpx mock transport). A call may succeed or
raise a ``MemobaseError``; anything else fails the test with the call that caused it.

``MEMOBASE_FUZZ_EXAMPLES`` (default 30) sets the examples per entry point and backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import os
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from memobase_integrations import Memobase, UserMemory
from memobase_integrations.engine.config import ProfileConfig
from memobase_integrations.errors import MemobaseError
from memobase_integrations.messages import Message
from memobase_integrations.models import ChatBlob, DocBlob, OpenAICompatibleMessage, SummaryBlob
from memobase_integrations.settings import FlushPolicy, LLMSettings
from memobase_integrations.testing import StandInLLM
from memobase_integrations.values import ContextOptions, ProfileOptions

#: The keyword options of the search calls (the backends' parameters after ``topk``).
SEARCH_OPTIONS: dict[str, Any] = {"similarity_threshold": float, "time_range_in_days": int}

from remote.fake_server import FakeMemobase  # noqa: E402

EXAMPLES = int(os.environ.get("MEMOBASE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Built fresh per example in their own tests: they make or end an instance.
CONSTRUCTORS = {"embedded", "remote", "from_env"}
LIFECYCLE = {"close", "aclose"}


def entry_points(cls: type) -> list[str]:
    """Every public callable a user can reach on ``cls`` (dunders are protocol, not API)."""
    names = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, classmethod | staticmethod) or inspect.isfunction(value):
            names.append(name)
    return sorted(names)


MEMOBASE_METHODS = [n for n in entry_points(Memobase) if n not in CONSTRUCTORS | LIFECYCLE]
USER_METHODS = entry_points(UserMemory)


def test_the_fuzzed_surface_is_the_whole_public_api() -> None:
    # A guard for the introspection itself: the methods named in the issue are all in.
    assert {"record", "arecord", "context", "acontext", "events", "add_profile"} <= set(
        USER_METHODS
    )
    assert {"set_profile_config", "user", "status"} <= set(MEMOBASE_METHODS)
    assert set(entry_points(Memobase)) >= CONSTRUCTORS | LIFECYCLE
    for name in USER_METHODS:
        if not name.startswith("a") or name[1:] not in USER_METHODS:
            continue
        assert inspect.iscoroutinefunction(getattr(UserMemory, name)), name


# -- strategies ---------------------------------------------------------------------------------
TRICKY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udc80y",
    "alice",
    "work",
    "title",
    "I live in Lyon.",
    "👩‍👩‍👧",
    "שלום",
    "e\u0301",
    "x" * 300,
    "chat",
    "summary",
    str(uuid.UUID(int=7, version=4)),
]
texts = st.one_of(st.text(max_size=30), st.sampled_from(TRICKY))
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.uuids(),
    st.datetimes(),
    st.sampled_from([[1], (), {}, b"sqlite:///x.db", object(), 1j, ...]),
)

ROLES = ["user", "assistant", "human", "ai", "system", "tool", " User "]
message_dicts = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(ROLES), junk), "content": st.one_of(texts, junk)},
    optional={
        "name": st.one_of(texts, junk),
        "alias": st.one_of(texts, junk),
        "created_at": st.one_of(texts, st.datetimes(timezones=st.just(UTC)), junk),
    },
)
messages = st.builds(
    Message.of, role=st.sampled_from(["user", "assistant"]), content=texts, name=texts
)
message_likes = st.one_of(message_dicts, messages, junk)
chat_blobs = st.builds(
    ChatBlob,
    messages=st.lists(
        st.builds(
            OpenAICompatibleMessage,
            role=st.sampled_from(["user", "assistant"]),
            content=texts,
            alias=st.one_of(st.none(), texts),
        ),
        max_size=3,
    ),
)
blobs = st.one_of(
    chat_blobs, st.builds(SummaryBlob, summary=texts), st.builds(DocBlob, content=texts)
)


def from_hint(hint: Any) -> st.SearchStrategy[Any]:
    """Plausible values for an annotation (unknown ones get junk)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(from_hint(a) for a in args))
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-3, 60)
    if hint is float:
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 400))
    if hint is str:
        return texts
    if hint is uuid.UUID:
        return st.one_of(st.uuids(), st.uuids().map(str))
    if hint is Message:
        return messages
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return blobs
    if origin in (Iterable, Sequence, list):
        item = message_likes if args and _is_message_like(args[0]) else from_hint(args[0])
        return st.lists(item, max_size=4)
    if origin in (dict, Mapping):
        return st.dictionaries(texts, junk, max_size=3)
    return junk


def parameter_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations, each resolved on its own: a name imported only for type
    checking (``if TYPE_CHECKING:``) makes that one parameter ``Any``, not the test fail."""
    module = sys.modules[func.__module__]
    scope = {**vars(module), "ProfileConfig": ProfileConfig}
    hints: dict[str, Any] = {}
    for name, annotation in func.__annotations__.items():
        try:
            hints[name] = eval(annotation, scope) if isinstance(annotation, str) else annotation
        except Exception:  # NameError for a TYPE_CHECKING-only name
            hints[name] = Any
    return hints


def _is_message_like(hint: Any) -> bool:
    return Message in typing.get_args(hint) or hint is Message


def option_names(owner: str, method: str) -> list[str]:
    """Known keyword options of a ``**options`` method, plus near misses."""
    if owner == "UserMemory" and "context" in method:
        known = [f.name for f in dataclasses.fields(ContextOptions)]
    elif owner == "UserMemory" and "profile" in method:
        known = [f.name for f in dataclasses.fields(ProfileOptions)]
    elif owner == "UserMemory" and "search" in method:
        known = list(SEARCH_OPTIONS)
    else:
        known = []
    return [*known, "topk", "prefer_topic", "bogus", "max_token_size"]


def option_values(owner: type, name: str) -> st.SearchStrategy[Any]:
    hints: dict[str, Any] = {}
    for cls in (ContextOptions, ProfileOptions):
        hints.update(typing.get_type_hints(cls))
    hints.update(SEARCH_OPTIONS)
    return st.one_of(from_hint(hints[name]), junk) if name in hints else junk


@st.composite
def arguments(
    draw: st.DrawFn, owner: type, func: Callable[..., Any], name: str
) -> tuple[list[Any], dict[str, Any]]:
    hints = parameter_hints(func)
    params = list(inspect.signature(func).parameters.values())[1:]  # self / cls
    # Python itself refuses a call naming a parameter twice, before the method runs.
    named = {p.name for p in params}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            keys = st.sampled_from(option_names(owner.__name__, name)) | st.text(max_size=6)
            for key in draw(
                st.lists(keys.filter(lambda k: k not in named), max_size=3, unique=True)
            ):
                kwargs[key] = draw(option_values(owner, key))
            continue
        if param.kind is param.VAR_POSITIONAL:
            args.extend(draw(st.lists(junk, max_size=2)))
            continue
        if param.default is not param.empty and draw(st.booleans()):
            continue  # leave it at its default
        value = draw(st.one_of(from_hint(hints.get(param.name, Any)), junk))
        if param.kind is param.POSITIONAL_ONLY or (
            param.kind is param.POSITIONAL_OR_KEYWORD and not kwargs and draw(st.booleans())
        ):
            args.append(value)
        else:
            kwargs[param.name] = value
    return args, kwargs


def call_allowing_only_typed_errors(
    target: Any, name: str, args: list[Any], kw: dict[str, Any]
) -> Any:
    method = getattr(target, name)
    try:
        result = method(*args, **kw)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result
    except MemobaseError:
        return None
    except Exception as exc:  # the bug this test exists to find
        raise AssertionError(
            f"{type(target).__name__}.{name}(*{args!r:.300}, **{kw!r:.300}) raised "
            f"{type(exc).__module__}.{type(exc).__name__}: {exc!s:.300}"
        ) from exc


# -- the instances ----------------------------------------------------------------------------
POLICY = FlushPolicy(
    idle_flush_seconds=None, flush_on_close=False, worker_poll_seconds=0.05, retry_max_seconds=1
)


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Memobase]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    fake = FakeMemobase()
    made = {
        "embedded": Memobase.embedded(
            f"sqlite:///{tmp / 'fuzz.db'}",
            llm=StandInLLM().settings(),
            policy=POLICY,
            start_worker=False,
            max_turn_chars=2000,  # so the size limit is reached by small examples
        ),
        "remote": Memobase.remote(
            "http://memobase.test",
            "sk-fuzz-key-0123456789",
            transport=fake.transport(),
            async_transport=fake.transport(),
            outbox_path=tmp / "outbox.db",
            policy=POLICY,
            timeout=5.0,
            max_retries=0,
        ),
    }
    for mb in made.values():  # some memory to read, update and delete
        user = mb.user("fuzz-user")
        user.record([{"role": "user", "content": "I live in Lyon and work as a nurse."}])
        user.flush()
    yield made
    for mb in made.values():
        mb.close(timeout=10)


BACKENDS = ["embedded", "remote"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", USER_METHODS)
def test_user_memory_entry_points_raise_only_typed_errors(
    instances: dict[str, Memobase], backend: str, name: str
) -> None:
    user = instances[backend].user("fuzz-user")
    func = getattr(UserMemory, name)

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        args, kwargs = data.draw(arguments(UserMemory, func, name))
        call_allowing_only_typed_errors(user, name, args, kwargs)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MEMOBASE_METHODS)
def test_memobase_entry_points_raise_only_typed_errors(
    instances: dict[str, Memobase], backend: str, name: str
) -> None:
    mb = instances[backend]
    func = getattr(Memobase, name)

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        args, kwargs = data.draw(arguments(Memobase, func, name))
        call_allowing_only_typed_errors(mb, name, args, kwargs)

    run()
    if backend == "embedded":
        mb.set_profile_config(None)  # leave the shared instance on the default profile


# -- construction and lifecycle: a fresh instance per example ----------------------------------
#: The variables from_env reads (the outbox path stays unset: it names a file to create).
ENV_NAMES = [
    "MEMOBASE_PROJECT_URL",
    "MEMOBASE_API_KEY",
    "MEMOBASE_DATABASE_URL",
    "MEMOBASE_LLM_MODEL",
    "MEMOBASE_SUMMARY_LLM_MODEL",
    "MEMOBASE_EMBEDDING_MODEL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
]
LLMS = st.sampled_from([None, LLMSettings(), "llm"]).map(
    lambda v: StandInLLM().settings() if v == "llm" else v
)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_constructors_raise_only_typed_errors(clean_dir: Path, name: str) -> None:
    func = getattr(Memobase, name).__func__

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        args, kwargs = data.draw(arguments(Memobase, func, name))
        if name in ("embedded", "from_env"):
            # No interpreter per example (a configured LLM without a client could start a
            # worker process), and SQLite files only under this test's directory.
            kwargs["llm"] = data.draw(st.one_of(LLMS, junk))
            kwargs.setdefault("start_worker", False)
            kwargs.pop("engine_options", None)  # passed verbatim to SQLAlchemy
        if name == "embedded" and isinstance(kwargs.get("database_url"), str):
            kwargs["database_url"] = data.draw(
                st.sampled_from([f"sqlite:///{clean_dir / 'a.db'}", kwargs["database_url"]])
            )
        if name == "remote":
            kwargs["outbox_path"] = clean_dir / "outbox.db"
            kwargs["transport"] = FakeMemobase().transport()
        if name == "from_env" and data.draw(st.booleans()):
            args.clear()  # env is the only positional parameter
            kwargs["env"] = data.draw(st.dictionaries(st.sampled_from(ENV_NAMES), texts | junk))
        made = call_allowing_only_typed_errors(Memobase, name, args, kwargs)
        if isinstance(made, Memobase):
            made.close(timeout=0)

    run()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LIFECYCLE))
def test_close_raises_only_typed_errors(clean_dir: Path, backend: str, name: str) -> None:
    @FUZZ
    @given(timeout=st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), junk))
    def run(timeout: Any) -> None:
        if backend == "embedded":
            mb = Memobase.embedded(
                f"sqlite:///{clean_dir / 'c.db'}", llm=StandInLLM().settings(), policy=POLICY
            )
        else:
            mb = Memobase.remote(
                "http://memobase.test",
                "sk-fuzz-key-0123456789",
                transport=FakeMemobase().transport(),
                outbox_path=clean_dir / "c-outbox.db",
                policy=POLICY,
            )
        try:
            call_allowing_only_typed_errors(mb, name, [], {"timeout": timeout})
        finally:
            mb.close(timeout=0)

    run()


def test_a_fuzz_failure_names_the_call() -> None:
    # The checker itself: an untyped error is reported with the call that raised it.
    class Target:
        def boom(self, x: int) -> None:
            raise TypeError("bad")

    with pytest.raises(AssertionError, match=r"Target\.boom\(\*\[5\].*builtins\.TypeError: bad"):
        call_allowing_only_typed_errors(Target(), "boom", [5], {})
