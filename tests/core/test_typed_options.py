"""The facade's keyword options are typed (``Unpack[TypedDict]``), and each TypedDict says
exactly what the code it feeds accepts: the options dataclasses, the backend constructors and
the search methods. A field added to one and not the other fails here, not in a user's type
checker (or worse, at run time with "unknown option")."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

import httpx
import pytest

from memobase_integrations import options as construction
from memobase_integrations.backends.base import Backend
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.engine.config import ProfileConfig
from memobase_integrations.facade import Memobase, UserMemory
from memobase_integrations.settings import FlushPolicy, LLMSettings
from memobase_integrations.values import (
    ContextKwargs,
    ContextOptions,
    ProfileKwargs,
    ProfileOptions,
    SearchKwargs,
)

#: What ``options.py`` imports for the type checker only.
TYPE_CHECKING_NAMES = {
    "httpx": httpx,
    "FlushPolicy": FlushPolicy,
    "LLMSettings": LLMSettings,
    "ProfileConfig": ProfileConfig,
}


def hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(obj, localns=TYPE_CHECKING_NAMES)


def fields(cls: type) -> dict[str, Any]:
    resolved = hints(cls)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls)}


def params(fn: Any, *skip: str) -> dict[str, Any]:
    resolved = hints(fn)
    names = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.name not in ("self", *skip) and p.kind is not p.VAR_KEYWORD
    ]
    return {n: resolved[n] for n in names}


def test_context_kwargs_are_context_options_fields() -> None:
    expected = fields(ContextOptions)
    del expected["max_token_size"], expected["chats"]  # parameters of their own
    assert hints(ContextKwargs) == expected


def test_profile_kwargs_are_profile_options_fields() -> None:
    expected = fields(ProfileOptions)
    got = hints(ProfileKwargs)
    assert got.keys() == expected.keys()
    del expected["chats"], got["chats"]  # the facade also takes {'role', 'content'} dicts
    assert got == expected


@pytest.mark.parametrize("method", ["search_events", "search_gists"])
def test_search_kwargs_are_the_backend_search_options(method: str) -> None:
    expected = params(getattr(Backend, method), "user_id", "query", "topk")
    assert hints(SearchKwargs) == expected


def test_embedded_options_are_the_backend_constructor_options() -> None:
    expected = params(EmbeddedBackend.__init__, "database_url", "llm", "profile_config", "policy")
    expected |= hints(construction.FacadeLimits)
    assert hints(construction.EmbeddedOptions) == expected


def test_remote_options_are_the_backend_constructor_options() -> None:
    expected = params(RemoteBackend.__init__, "project_url", "api_key")
    expected |= hints(construction.FacadeLimits)
    assert hints(construction.RemoteOptions) == expected


def test_from_env_options_cover_both_constructors() -> None:
    got = hints(construction.FromEnvOptions)
    embedded = params(Memobase.embedded, "database_url") | hints(construction.EmbeddedOptions)
    remote = params(Memobase.remote, "project_url", "api_key") | hints(construction.RemoteOptions)
    assert got == embedded | remote


@pytest.mark.parametrize("cls", [Memobase, UserMemory])
def test_no_public_method_takes_untyped_keyword_options(cls: type) -> None:
    untyped = []
    for name, fn in inspect.getmembers(cls, callable):
        if name.startswith("_") and name != "__init__":
            continue
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.VAR_KEYWORD and not str(p.annotation).startswith("Unpack["):
                untyped.append(f"{name}(**{p.name}: {p.annotation})")
    assert untyped == []
