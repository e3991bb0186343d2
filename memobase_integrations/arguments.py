"""Argument checks of the public API: a wrong type or value fails at the call that got it.

Without them a bad argument travels into a backend and surfaces as whatever broke first
there - a ``TypeError`` from a comparison, an ``AttributeError`` deep in the packer, pydantic's
own ``ValidationError`` - which callers cannot catch as this package's errors and which never
says which argument was wrong. Each check here names the method, the argument, what it got
and what to pass, and raises one of :mod:`.errors` (``ValidationError`` for arguments,
``ConfigurationError`` for construction options).

Types are checked by pydantic in strict mode against the very annotations of the options
dataclasses and backend constructors, so a new option is checked the day it is added.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import json
import math
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import ConfigDict, Field, TypeAdapter

from .errors import ConfigurationError, MemobaseError, ValidationError
from .text_policy import storable_text

__all__ = [
    "check_arg",
    "check_bool",
    "check_call_options",
    "check_count",
    "check_json",
    "check_options",
    "check_text",
    "check_timeout",
    "check_uuid",
    "did_you_mean",
]

_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)

#: Value ranges of option fields, beyond their annotated types. A non-positive budget or
#: window would silently give an empty result (or, on PostgreSQL, a SQL error).
_RANGES: dict[str, Any] = {
    "max_token_size": Field(ge=1),
    "topk": Field(ge=1),
    "max_subtopic_size": Field(ge=1),
    "time_range_in_days": Field(ge=0),  # 0: today only (the server accepts it)
    "limit": Field(ge=0),
    "offset": Field(ge=0),
    "page": Field(ge=0),
    "page_size": Field(ge=1),
    "last_days": Field(ge=1, le=366),
    "profile_event_ratio": Field(ge=0.0, le=1.0, allow_inf_nan=False),
    "event_similarity_threshold": Field(allow_inf_nan=False),
    "similarity_threshold": Field(allow_inf_nan=False),
}

#: The options of the search calls (the backends' keyword parameters after ``topk``).
SEARCH_OPTIONS: dict[str, Any] = {
    "similarity_threshold": float,
    "time_range_in_days": int,
}

T = TypeVar("T")


@functools.cache
def _adapter(hint: Any, field: str | None) -> TypeAdapter[Any]:
    rule = _RANGES.get(field or "")
    return TypeAdapter(Annotated[hint, rule] if rule is not None else hint, config=_STRICT)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(
    value: Any,
    hint: Any,
    name: str,
    where: str,
    *,
    error: type[MemobaseError] = ValidationError,
) -> Any:
    try:
        adapter = _adapter(hint, name)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        return value  # a type pydantic cannot describe: the callee checks it
    try:
        return _storable(adapter.validate_python(value), f"{name} of {where}")
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        inner = "".join(f"[{p!r}]" for p in first["loc"])
        raise error(
            f"{where}: {name}{inner} got {_show(value)}: {first['msg']}. Pass "
            f"{_describe(hint)} (see help({where.removesuffix('()')}))."
        ) from None


def _storable(value: Any, what: str) -> Any:
    """Strings (also inside lists, tuples and dicts) with the text policy applied: a
    topic, a tag or a JSON value with U+0000 would fail in PostgreSQL or in a URL."""
    if isinstance(value, str):
        return storable_text(value, what)
    if isinstance(value, list | tuple):
        return type(value)(_storable(v, what) for v in value)
    if isinstance(value, dict):
        return {_storable(k, what): _storable(v, what) for k, v in value.items()}
    return value


def _describe(hint: Any) -> str:
    """``int >= 1``, ``Sequence[str] | None``...: the type as a person writes it."""
    bounds = ""
    if typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
        for item in meta:
            for rule in getattr(item, "metadata", [item]):
                for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                    if getattr(rule, attr, None) is not None:
                        bounds += f" {sign} {getattr(rule, attr)}"
    text = getattr(hint, "__name__", None) if isinstance(hint, type) else None
    text = text or str(hint).replace("typing.", "").replace("collections.abc.", "")
    return "a value of type " + text.replace("NoneType", "None") + bounds


def did_you_mean(word: str, known: typing.Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known word, or ``""`` (difflib, cutoff 0.6)."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _unknown(name: Any, known: typing.Iterable[str], where: str) -> str:
    names = sorted(known)
    shown = str(name) if isinstance(name, str) else repr(name)
    hint = did_you_mean(shown, names)
    return f"{where}: unknown option {shown!r}.{hint} Known options: {', '.join(names)}."


@functools.cache
def _field_hints(cls: type) -> dict[str, Any]:
    """The annotations of a dataclass's fields (resolved once: ``context()`` is hot)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_options(cls: type[T], values: Mapping[str, Any], where: str, **fixed: Any) -> T:
    """An options dataclass (``ContextOptions``, ``ProfileOptions``) built from keyword
    arguments, every given value checked against the field's annotation. ``fixed`` are
    fields the caller already converted (e.g. ``chats``)."""
    hints = _field_hints(cls)  # type: ignore[arg-type]  # (a type is hashable)
    names = set(hints)
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names or name in fixed:
            raise ValidationError(_unknown(name, names - set(fixed), where))
        checked[name] = _checked(value, hints[name], name, where)
    return cls(**checked, **fixed)


def check_search_options(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The keyword options of ``search_events`` / ``search_gists``, checked."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SEARCH_OPTIONS:
            raise ValidationError(_unknown(name, SEARCH_OPTIONS, where))
        checked[name] = _checked(value, SEARCH_OPTIONS[name], name, where)
    return checked


def check_call_options(
    func: Callable[..., Any], values: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """Keyword options meant for ``func`` (a backend constructor): names must be parameters
    of it, values must match their annotations. Raises ``ConfigurationError``."""
    params = {
        n: p
        for n, p in inspect.signature(func).parameters.items()
        if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an annotation that does not resolve: check names only
        hints = {}
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in params:
            raise ConfigurationError(_unknown(name, params, where))
        hint = hints.get(name)
        checked[name] = (
            value if hint is None else _checked(value, hint, name, where, error=ConfigurationError)
        )
    return checked


def check_arg(value: Any, hint: Any, name: str, where: str) -> Any:
    """``value`` checked against ``hint`` (pydantic, strict; the ranges of well-known names
    such as ``limit`` or ``page_size`` apply), its strings made storable."""
    return _checked(value, hint, name, where)


def check_json(value: Any, name: str, where: str, *, optional: bool = False) -> Any:
    """A JSON object (a dict of JSON values) - what both stores and the wire can carry -
    with the text policy applied to its strings."""
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise ValidationError(
            f"{where}: {name} must be a dict (a JSON object){' or None' if optional else ''}, "
            f"got {type(value).__name__}."
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{where}: {name} must hold only JSON values (str, int, float, bool, None, lists "
            f"and dicts with str keys): {exc}."
        ) from None
    return _storable(value, f"{name} of {where}")


def check_count(
    value: Any,
    name: str,
    where: str,
    *,
    optional: bool = False,
    error: type[MemobaseError] = ValidationError,
) -> Any:
    """An ``int >= 1`` (``None`` too when ``optional``)."""
    hint: Any = int | None if optional else int
    return _checked(value, Annotated[hint, Field(ge=1)], name, where, error=error)


#: The longest usage window, in days: one entry per day is built (days without activity
#: included, as the server does), so an unbounded window would allocate without end or
#: overflow the calendar. ``serve`` refuses the same range.
MAX_USAGE_DAYS = 366


def check_usage_days(value: Any, where: str) -> int:
    """``last_days`` of the usage calls: an ``int`` in ``1..MAX_USAGE_DAYS``."""
    days: int = _checked(value, Annotated[int, Field(ge=1, le=MAX_USAGE_DAYS)], "last_days", where)
    return days


def check_bool(value: Any, name: str, where: str) -> bool:
    result: bool = _checked(value, bool, name, where)
    return result


#: The longest wait a timeout stands for (about three years). Python's clocks overflow a
#: little past 9e9 s, and "wait for ever" (``math.inf``) means this in practice.
MAX_TIMEOUT_SECONDS = 1e8


def check_timeout(value: Any, where: str) -> float | None:
    """``None`` (the configured default) or a number of seconds ``>= 0``; anything above
    :data:`MAX_TIMEOUT_SECONDS` (``math.inf`` included) counts as that."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(
            f"{where}: timeout got {_show(value)}; pass a number of seconds >= 0, or None for "
            "FlushPolicy.close_timeout_seconds."
        )
    if value < 0:
        raise ValidationError(f"{where}: timeout must be >= 0 seconds, got {value}.")
    return min(float(value), MAX_TIMEOUT_SECONDS)


def check_text(
    value: Any, name: str, where: str, *, optional: bool = False, blank: bool = False
) -> Any:
    """A ``str`` (``None`` too when ``optional``), non-blank unless ``blank``; characters no
    store can keep become U+FFFD (:mod:`.text_policy`)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"{where}: {name} must be a str{' or None' if optional else ''}, got "
            f"{type(value).__name__} {_show(value)}."
        )
    if not blank and not value.strip():
        raise ValidationError(f"{where}: {name} is empty; pass some text, e.g. {name}='...'.")
    return storable_text(value, f"{name} of {where}")


def check_uuid(value: Any, name: str, where: str) -> uuid.UUID:
    """A ``uuid.UUID`` or its string form (as the ids returned by this package)."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(
        f"{where}: {name} must be a UUID (as returned by this package, e.g. Profile.id), got "
        f"{type(value).__name__} {_show(value)}."
    )
