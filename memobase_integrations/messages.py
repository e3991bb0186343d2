"""The neutral chat message and the conversion of a finished turn into ChatBlobs.

Adapters translate their framework's messages into :class:`Message`; everything below
this module only ever sees these. Conversion is pure and deterministic: the same turn
always gives the same blobs, which is what makes replays idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import InvalidMessageError
from .models import ChatBlob, OpenAICompatibleMessage, SummaryBlob
from .text_policy import storable_text
from .tokens import count_tokens, encoding

__all__ = [
    "DEFAULT_MAX_BLOB_TOKENS",
    "DEFAULT_MAX_TURN_CHARS",
    "Message",
    "format_timestamp",
    "render_blob",
    "render_chat_line",
    "turn_to_blobs",
]

#: A blob bigger than Memobase's processing cap (16384 tokens) can never be processed
#: (the server fails it with errno 520), so turns are split well below that.
DEFAULT_MAX_BLOB_TOKENS = 4096

#: The most text one recorded turn may carry (characters of content and names, all messages
#: together): 256k characters, about 60k tokens of English, a long pasted document.
#: ``record`` converts a turn on the caller's thread in time linear in its size; this bound
#: keeps that under a second (0.2-0.8 s measured at the limit on a loaded 2-core machine,
#: English to CJK text), where a 10 MB message took 30-73 s. Raise it with
#: ``Memobase(max_turn_chars=...)``.
DEFAULT_MAX_TURN_CHARS = 256_000

Role = Literal["user", "assistant"]
_ROLE_ALIASES: dict[str, Role] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "chatbot": "assistant",
}


@dataclass(frozen=True, slots=True)
class Message:
    """A framework-free chat message.

    ``role`` is ``user`` or ``assistant`` (``human``/``ai`` are accepted and normalised);
    ``name`` becomes Memobase's ``alias``; ``created_at`` becomes the per-message timestamp the
    LLM sees (a ``datetime`` is written as ISO 8601, a string is passed through verbatim).

    Every way of building one checks it (the constructor too), so a wrong type fails here
    with :class:`InvalidMessageError` instead of deep in a backend. Text no store can keep
    (U+0000, lone surrogates) in ``content``, ``name`` or a ``created_at`` string becomes
    U+FFFD (see :mod:`.text_policy`).
    """

    role: Role
    content: str
    name: str | None = None
    created_at: datetime | str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        role = _ROLE_ALIASES.get(self.role.strip().lower()) if isinstance(self.role, str) else None
        if role is None:
            raise InvalidMessageError(
                f"Message role {self.role!r:.40} cannot be stored: Memobase keeps only 'user' "
                "and 'assistant' turns. Drop system, tool and function messages before "
                "recording."
            )
        if not isinstance(self.content, str):
            raise InvalidMessageError(
                f"Message content must be text, got {type(self.content).__name__}. Flatten "
                "multimodal content to its text parts first (the adapters do this for you)."
            )
        if self.name is not None and not isinstance(self.name, str):
            raise InvalidMessageError(
                f"A message's name (alias) must be a str or None, got "
                f"{type(self.name).__name__}. Pass the speaker's display name as text."
            )
        created = self.created_at
        if created is not None and not isinstance(created, datetime | str):
            raise InvalidMessageError(
                f"A message's created_at must be a datetime, a string or None, got "
                f"{type(created).__name__}. Pass e.g. datetime.now(UTC) or '2025/01/14 10:00'."
            )
        if not isinstance(self.metadata, dict):
            raise InvalidMessageError(
                f"A message's metadata must be a dict, got {type(self.metadata).__name__}."
            )
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "content", storable_text(self.content, f"{role} message content"))
        if self.name is not None:
            name = storable_text(self.name, f"{role} message name") or None
            object.__setattr__(self, "name", name)
        if isinstance(created, str):
            object.__setattr__(self, "created_at", storable_text(created, "message created_at"))

    @classmethod
    def of(
        cls,
        role: str,
        content: str,
        *,
        name: str | None = None,
        created_at: datetime | str | None = None,
    ) -> Message:
        """Build a message, normalising ``role`` and rejecting what Memobase cannot store."""
        return cls(role=role, content=content, name=name or None, created_at=created_at)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: Message | dict[str, Any]) -> Message:
        """Accept a :class:`Message` or an OpenAI-style ``{"role", "content"}`` dict."""
        if isinstance(value, Message):
            return value
        if isinstance(value, dict):
            if "role" not in value or "content" not in value:
                raise InvalidMessageError(
                    "A message dict needs 'role' and 'content' keys; got keys "
                    f"{sorted(map(repr, value))}."
                )
            return cls.of(
                value["role"],
                value["content"],
                name=value.get("name") or value.get("alias"),
                created_at=value.get("created_at"),
            )
        raise InvalidMessageError(
            f"Expected a Message or a dict with 'role' and 'content', got {type(value).__name__}."
        )

    def to_wire(self) -> OpenAICompatibleMessage:
        return OpenAICompatibleMessage(
            role=self.role,
            content=self.content,
            alias=self.name,
            created_at=format_timestamp(self.created_at),
        )


def format_timestamp(value: datetime | str | None) -> str | None:
    """A message timestamp as the string Memobase shows the LLM: ``2025/01/14 10:00 UTC+02:00``.

    Memobase puts this string in front of every chat line it sends to the LLM, so it is kept
    short: minute precision, the user's own local time and offset (so "tonight" stays
    tonight), and Memobase's own ``%Y/%m/%d`` date style. An ISO timestamp with seconds and
    microseconds costs about twice the tokens on every message and tells the LLM nothing more.
    Naive datetimes are taken as UTC so the same turn renders the same on every machine.
    Strings pass through verbatim.
    """
    if value is None or isinstance(value, str):
        return value or None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset() or timedelta(0)
    zone = "UTC" if not offset else f"UTC{value.strftime('%z')[:3]}:{value.strftime('%z')[3:]}"
    return f"{value.strftime('%Y/%m/%d %H:%M')} {zone}"


def render_chat_line(message: OpenAICompatibleMessage, fallback_date: str) -> str:
    """``[ts] alias(role): content``, Memobase's rendering of one message for the LLM."""
    ts = message.created_at or fallback_date
    who = f"{message.alias}({message.role})" if message.alias else message.role
    return f"[{ts}] {who}: {message.content}"


def render_blob(blob: ChatBlob | SummaryBlob, when: datetime | None = None) -> str:
    """The text Memobase counts tokens on and shows the LLM for a blob."""
    date = (when or datetime.now(UTC)).strftime("%Y/%m/%d")
    if isinstance(blob, ChatBlob):
        return "\n".join(render_chat_line(m, date) for m in blob.messages)
    return f"- {blob.summary.replace(chr(10), ' ')}[{date}]"


def turn_to_blobs(
    messages: Iterable[Message | dict[str, Any]],
    *,
    max_blob_tokens: int = DEFAULT_MAX_BLOB_TOKENS,
    fields: dict[str, Any] | None = None,
    max_turn_chars: int | None = DEFAULT_MAX_TURN_CHARS,
) -> list[ChatBlob]:
    """Convert one finished turn into the ChatBlobs to insert.

    * ``messages`` is a list (any iterable) of :class:`Message` or ``{"role", "content"}``
      dicts; anything else raises :class:`InvalidMessageError` saying what was given;
    * a turn with more than ``max_turn_chars`` characters of text (contents and names, all
      messages together; ``None``: no limit) is refused with :class:`InvalidMessageError`
      before any tokenizing, so the caller's thread never spends more than a bounded,
      size-proportional time here;
    * only user and assistant text survives; messages whose text is blank are dropped;
    * consecutive messages are packed into one blob while the rendered text stays within
      ``max_blob_tokens``; a single message longer than that is split into pieces (on
      character boundaries, guided by token offsets), so no blob can exceed the processing
      cap and fail on the server, and the pieces concatenate back to the original text;
    * the result is deterministic; an empty turn gives ``[]``.
    """
    if max_blob_tokens < 16:
        raise InvalidMessageError(f"max_blob_tokens must be at least 16, got {max_blob_tokens}.")
    turn = [_wire(x) for x in _iterate(messages)]
    if max_turn_chars is not None:
        _check_size(turn, max_turn_chars)
    wires = [w for w in turn if w.content.strip()]
    if _fits_one_blob(wires, max_blob_tokens):
        # The common case, decided without the tokenizer: the result is the one the exact
        # packing below gives (see _fits_one_blob), at a fraction of the caller's CPU.
        return [ChatBlob(messages=wires, fields=_copy(fields))] if wires else []
    pieces: list[tuple[OpenAICompatibleMessage, int]] = []
    for wire in wires:
        pieces.extend(_split_message(wire, max_blob_tokens))

    blobs: list[ChatBlob] = []
    current: list[OpenAICompatibleMessage] = []
    current_tokens = 0
    for wire, tokens in pieces:
        if current and current_tokens + tokens > max_blob_tokens:
            blobs.append(ChatBlob(messages=current, fields=_copy(fields)))
            current, current_tokens = [], 0
        current.append(wire)
        current_tokens += tokens
    if current:
        blobs.append(ChatBlob(messages=current, fields=_copy(fields)))
    return blobs


#: ``storable_text``'s field names, per role (not formatted again for every message).
_CONTENT = {role: f"{role} message content" for role in ("user", "assistant")}
_NAME = {role: f"{role} message name" for role in ("user", "assistant")}


def _wire(value: Message | dict[str, Any]) -> OpenAICompatibleMessage:
    """``Message.coerce(value).to_wire()``.

    A plain ``{"role", "content"}`` dict (with a ``name``/``alias`` perhaps, no
    ``created_at``), what most callers of ``record`` pass, is converted directly: the same
    checks and the same text policy as :class:`Message`, without building one on the
    caller's thread. Anything else, and every value that :class:`Message` would refuse,
    takes the general path (which raises its errors).
    """
    if type(value) is dict and value.get("created_at") is None:
        given = value.get("role")
        role = _ROLE_ALIASES.get(given) if type(given) is str else None
        content = value.get("content")
        name = value.get("name") or value.get("alias") or None
        if role is not None and type(content) is str and (name is None or type(name) is str):
            return OpenAICompatibleMessage(
                role=role,
                content=storable_text(content, _CONTENT[role]),
                alias=None if name is None else storable_text(name, _NAME[role]) or None,
                created_at=None,
            )
    return Message.coerce(value).to_wire()


def _iterate(messages: object) -> Iterable[Any]:
    """The messages of a turn, refusing the values that are iterable by accident."""
    if type(messages) is list:
        return messages
    if isinstance(messages, str | bytes | bytearray | dict | Message):
        raise InvalidMessageError(
            f"A turn is a list of messages, got a single {type(messages).__name__}. Wrap it: "
            "record([{'role': 'user', 'content': '...'}, ...])."
        )
    if not isinstance(messages, Iterable):
        raise InvalidMessageError(
            f"A turn is a list of messages, got {type(messages).__name__}. Pass e.g. "
            "[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}]."
        )
    return messages


def _check_size(turn: Sequence[OpenAICompatibleMessage], limit: int) -> None:
    size = sum(len(m.content) + len(m.alias or "") for m in turn)
    if size > limit:
        raise InvalidMessageError(
            f"This turn holds {size:,} characters of text; the limit is {limit:,} per turn. "
            "Record a long document as several turns, or a summary of it, or raise the limit "
            "with Memobase(..., max_turn_chars=N) (conversion runs on the caller's thread, "
            "in time proportional to the size).",
            detail={"characters": size, "limit": limit},
        )


def _copy(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    return dict(fields) if fields is not None else None


# The date Memobase puts in a line whose message has no ``created_at`` (``YYYY/MM/DD``); any
# date has the same token count, so a fixed one is used for budgeting.
_BUDGET_DATE = "2025/01/01"
# Per line: the newline that joins it to the next one, plus one token of slack for merges
# the tokenizer makes across line boundaries.
_JOIN_SLACK = 2
_MIN_PIECE_TOKENS = 8


def _fits_one_blob(wires: Sequence[OpenAICompatibleMessage], max_tokens: int) -> bool:
    """True when every message fits, unsplit, into one blob of ``max_tokens``, judged by
    UTF-8 lengths alone.

    The exact packing budgets a message as ``tokens(content) + tokens(prefix) + _JOIN_SLACK``
    and a token covers at least one byte, so a line's byte length + ``_JOIN_SLACK`` bounds
    its budget from above: when the bounds of all lines fit, the exact sizes fit too, and
    the exact packing puts every message, unsplit, into one blob - the same result.
    """
    total = 0
    for wire in wires:
        total += len(render_chat_line(wire, _BUDGET_DATE).encode("utf-8", "surrogatepass"))
        total += _JOIN_SLACK
        if total > max_tokens:
            return False
    return True


def _line_overhead(wire: OpenAICompatibleMessage) -> int:
    """Tokens a rendered line spends beyond its content: ``[ts] alias(role): `` + joins."""
    prefix = render_chat_line(wire.model_copy(update={"content": ""}), _BUDGET_DATE)
    return count_tokens(prefix) + _JOIN_SLACK


def _split_message(
    wire: OpenAICompatibleMessage, max_tokens: int
) -> Sequence[tuple[OpenAICompatibleMessage, int]]:
    """One message as pieces whose rendered lines fit ``max_tokens`` each, with their sizes.

    Pieces are cut on character boundaries (never inside a multi-byte character), so the
    pieces of a message concatenate back to exactly its content.
    """
    overhead = _line_overhead(wire)
    total = count_tokens(wire.content) + overhead
    if total <= max_tokens:
        return [(wire, total)]
    budget = max_tokens - overhead
    if budget < _MIN_PIECE_TOKENS:
        raise InvalidMessageError(
            f"The name and timestamp of a {wire.role} message take {overhead} tokens, which "
            f"leaves no room for its text within max_blob_tokens={max_tokens}. Shorten the "
            "name / created_at or raise max_blob_tokens."
        )
    return [
        (wire.model_copy(update={"content": piece}), size + overhead)
        for piece, size in _split_text(wire.content, budget)
    ]


def _split_text(text: str, budget: int) -> list[tuple[str, int]]:
    """``text`` cut into consecutive pieces of at most ``budget`` tokens each, with their
    token counts.

    Each cut is proposed by the first ``budget`` tokens of a window of the remaining text
    (doubled until it holds more than ``budget`` tokens), read back as bytes and cut to whole
    characters; because a slice of text can tokenize differently from the slice of tokens,
    every piece is counted again and shortened until it fits. All the per-token work stays
    inside tiktoken (no Python object per token), so the cost is a few native passes over
    the text - the caller's thread pays this on ``record``.
    """
    enc = encoding()
    pieces: list[tuple[str, int]] = []
    start = 0
    while start < len(text):
        window = max(64, 2 * budget)
        while True:
            chunk = text[start : start + window]
            tokens = enc.encode_ordinary(chunk)
            if len(tokens) > budget or start + window >= len(text):
                break
            window *= 2
        if len(tokens) <= budget:
            piece = chunk  # the rest of the text fits
        else:
            # The bytes of the first ``budget`` tokens; a token may end inside a character,
            # whose partial bytes are dropped (the piece never splits a character).
            head = enc.decode_bytes(tokens[:budget]).decode("utf-8", errors="ignore")
            piece = chunk[: max(1, len(head))]
        size = count_tokens(piece)
        while size > budget:
            piece = piece[: max(1, min(len(piece) - 1, len(piece) * budget // size))]
            size = count_tokens(piece)
        pieces.append((piece, size))
        start += len(piece)
    return pieces
