"""The facade's argument checks: each turns one call's raw arguments into what the
backend takes, or raises a typed error naming the call (built on :mod:`..arguments`)."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from ..arguments import (
    check_arg,
    check_bool,
    check_count,
    check_json,
    check_options,
    check_search_options,
    check_text,
    check_uuid,
)
from ..errors import ConfigurationError, InvalidMessageError, ValidationError
from ..messages import DEFAULT_MAX_BLOB_TOKENS, DEFAULT_MAX_TURN_CHARS, Message
from ..models import Blob, BlobType, ChatBlob, EventData, SummaryBlob
from ..values import BufferStatus, ProfileOptions, UserOrder

MessageLike = Message | dict[str, Any]


def pop_limits(options: dict[str, Any], where: str) -> dict[str, Any]:
    """The facade's own options among a constructor's keyword options, checked before the
    backend is built (so a refused limit creates no store)."""
    names = ("max_blob_tokens", "max_turn_chars")
    limits: dict[str, Any] = {k: options.pop(k) for k in names if k in options}
    check_limits(
        limits.get("max_blob_tokens", DEFAULT_MAX_BLOB_TOKENS),
        limits.get("max_turn_chars", DEFAULT_MAX_TURN_CHARS),
        where,
    )
    return limits


def check_limits(max_blob_tokens: Any, max_turn_chars: Any, where: str) -> dict[str, Any]:
    blob_tokens = check_count(max_blob_tokens, "max_blob_tokens", where, error=ConfigurationError)
    if blob_tokens < 16:
        raise ConfigurationError(f"{where}: max_blob_tokens must be >= 16, got {blob_tokens}.")
    turn_chars = check_count(
        max_turn_chars, "max_turn_chars", where, optional=True, error=ConfigurationError
    )
    return {"max_blob_tokens": blob_tokens, "max_turn_chars": turn_chars}


def check_url(value: Any, name: str, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{where}: {name} must be a str or None, got {type(value).__name__}. Pass it as "
            "text (decode bytes first)."
        )
    if not value.strip():
        raise ConfigurationError(
            f"{where}: {name} is empty. Pass a URL (e.g. sqlite:///memobase.db, "
            "postgresql+psycopg://user@host/db, https://api.memobase.dev), or None for the "
            "default."
        )


def checked_config(config_yaml: Any, where: str) -> str | None:
    from ..engine.config import ProfileConfig

    if config_yaml is not None and not isinstance(config_yaml, str):
        raise ValidationError(
            f"Memobase.{where}: config_yaml must be the YAML text (a str) or None for the "
            f"default profile, got {type(config_yaml).__name__}. For a ProfileConfig, pass "
            "config.to_yaml()."
        )
    ProfileConfig.from_yaml(config_yaml)  # raises ValidationError naming the problem
    return config_yaml


def checked_blob(blob: Any, where: str) -> Blob:
    kinds = typing.get_args(Blob)
    if not isinstance(blob, kinds):
        raise InvalidMessageError(
            f"{where}: blob must be one of {', '.join(k.__name__ for k in kinds)}, got "
            f"{type(blob).__name__}. To record a conversation turn, use record(messages)."
        )
    if isinstance(blob, ChatBlob):
        messages = [
            Message.of(m.role, m.content, name=m.alias, created_at=m.created_at).to_wire()
            for m in blob.messages
        ]
        return blob.model_copy(update={"messages": messages})
    if isinstance(blob, SummaryBlob):
        return blob.model_copy(update={"summary": check_text(blob.summary, "summary", where)})
    return typing.cast(Blob, blob)


def flush_args(blob_type: Any, wait: Any, where: str) -> tuple[BlobType, bool]:
    return blob_kind(blob_type, where), check_bool(wait, "wait", where)


def checked_chats(chats: Any, where: str) -> list[Message] | None:
    if chats is None:
        return None
    if isinstance(chats, str | bytes | dict | Message) or not isinstance(chats, Iterable):
        raise ValidationError(
            f"{where}: chats must be a list of messages (Message or {{'role', 'content'}} "
            f"dicts), got {type(chats).__name__}."
        )
    converted = [Message.coerce(m) for m in chats]
    return converted or None


def profile_options(options: Mapping[str, Any], where: str) -> ProfileOptions:
    rest = dict(options)
    chats = checked_chats(rest.pop("chats", None), where)
    return check_options(ProfileOptions, rest, where, chats=chats)


def search_args(
    query: Any, topk: Any, options: Mapping[str, Any], where: str
) -> tuple[str, int, dict[str, Any]]:
    text: str = check_text(query, "query", where)
    return text, check_count(topk, "topk", where), check_search_options(dict(options), where)


def profile_row(content: Any, topic: Any, sub_topic: Any, where: str) -> tuple[str, str, str]:
    return (
        check_text(content, "content", where, blank=True),  # the server accepts an empty memo
        check_text(topic, "topic", where),
        check_text(sub_topic, "sub_topic", where),
    )


def profile_update(
    profile_id: Any, content: Any, topic: Any, sub_topic: Any, where: str
) -> tuple[uuid.UUID, str, str | None, str | None]:
    return (
        check_uuid(profile_id, "profile_id", where),
        check_text(content, "content", where, blank=True),
        check_text(topic, "topic", where, optional=True),
        check_text(sub_topic, "sub_topic", where, optional=True),
    )


def blob_kind(blob_type: Any, where: str) -> BlobType:
    try:
        return BlobType(blob_type)
    except ValueError:
        raise ValidationError(
            f"{where}: blob_type got {blob_type!r:.40}; pass a BlobType (BlobType.chat, "
            f"BlobType.summary, ...: {', '.join(t.value for t in BlobType)})."
        ) from None


def users_page(
    search: Any, order_by: Any, order_desc: Any, limit: Any, offset: Any, where: str
) -> tuple[str, UserOrder, bool, int, int]:
    where = f"Memobase.{where}"
    return (
        check_arg(search, str, "search", where),
        check_arg(order_by, UserOrder, "order_by", where),
        check_bool(order_desc, "order_desc", where),
        check_arg(limit, int, "limit", where),
        check_arg(offset, int, "offset", where),
    )


def event_update(
    event_id: Any, data: Any, where: str
) -> tuple[uuid.UUID, EventData | dict[str, Any]]:
    checked_id = check_uuid(event_id, "event_id", where)
    if isinstance(data, EventData):
        return checked_id, data
    try:
        return checked_id, EventData.model_validate(check_json(data, "data", where))
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValidationError(
            f"{where}: Invalid event data: data.{'.'.join(str(p) for p in first['loc'])}: "
            f"{first['msg']}. Pass "
            "EventData fields: event_tip (str), event_tags ([{tag, value}]), profile_delta."
        ) from None


def tag_search(
    tags: Any, tag_values: Any, topk: Any, where: str
) -> tuple[Sequence[str] | None, dict[str, str] | None, int]:
    return (
        check_arg(tags, Sequence[str] | None, "tags", where),
        check_arg(tag_values, dict[str, str] | None, "tag_values", where),
        check_count(topk, "topk", where),
    )


def blob_page(blob_type: Any, page: Any, page_size: Any, where: str) -> tuple[BlobType, int, int]:
    return (
        blob_kind(blob_type, where),
        check_arg(page, int, "page", where),
        check_arg(page_size, int, "page_size", where),
    )


def buffer_args(blob_type: Any, status: Any, where: str) -> tuple[BlobType, BufferStatus]:
    return blob_kind(blob_type, where), check_arg(status, BufferStatus, "status", where)
