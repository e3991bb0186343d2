"""``MemobaseChatMessageHistory``: a lossless transcript that also feeds Memobase.

Kept in its own module because upstream deprecated the base class (see the class docstring):
when ``BaseChatMessageHistory`` goes away in langchain-core 2.0 this module goes with it and
nothing else changes.

Memobase is not a transcript store (raw chats are dropped after processing and only
user/assistant text is kept), so the transcript lives in a plain SQL table next to the
embedded store, serialised with ``message_to_dict`` so tool calls, usage metadata, ids, names
and multimodal content survive. Memobase gets the user/assistant text of every
``add_messages`` call as one recorded turn; the memory context is offered separately
(``get_context``) and never appears in ``messages``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from memobase_integrations import (
    ConfigurationError,
    FailurePolicy,
    Memobase,
    MemobaseError,
    UserMemory,
    turn_id,
)

from .messages import to_memobase_messages, to_said

__all__ = ["DEFAULT_TABLE_NAME", "MemobaseChatMessageHistory", "TranscriptTableMissingError"]

DEFAULT_TABLE_NAME = "langchain_message_store"

_TURN_SOURCE = "langchain-history"


def _new_engine(url: str) -> Engine:
    """An engine for ``database_url=``, owned by one history (see the class docstring)."""
    options: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Async methods run the SQL in worker threads; an in-memory database must be one
        # shared connection or every thread would see an empty database.
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            options["poolclass"] = StaticPool
    return sa.create_engine(url, **options)


def _table_for(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index(f"ix_{name}_user_session", "user_id", "session_id", "id"),
    )


class TranscriptTableMissingError(ConfigurationError):
    """The transcript table does not exist yet: call ``create_tables()`` once at setup."""


def _sql_error(what: str, table: str, exc: sa.exc.SQLAlchemyError) -> MemobaseError:
    return MemobaseError(
        f"Could not {what} the chat transcript table {table!r}: {type(exc).__name__}: "
        f"{exc.args[0] if exc.args else exc}. Check that the database URL is right, the "
        "database is reachable and the user may create and write tables."
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _default_database_url(memobase: Memobase) -> str | None:
    """The embedded store's database URL, or None for backends without one (remote).

    The transcript gets its own engine on that URL rather than sharing the store's: the
    store serialises its own connection use, and the transcript must not hold its locks.
    (For an in-memory SQLite store this means a separate in-memory transcript database.)
    """
    backend = memobase.backend
    url = getattr(backend, "database_url", None)
    if url is None:
        url = getattr(getattr(backend, "store", None), "url", None)
    if url is None:
        return None
    rendered = getattr(url, "render_as_string", None)  # a sqlalchemy URL object
    if callable(rendered):
        return str(rendered(hide_password=False))
    return str(url)


class MemobaseChatMessageHistory(BaseChatMessageHistory):
    """A per-(user, session) chat transcript in SQL that also records turns to Memobase.

    .. deprecated:: upstream
        langchain-core deprecated ``BaseChatMessageHistory`` in 1.6.4 (removal in 2.0.0) and
        ``RunnableWithMessageHistory`` in 1.3.3, recommending LangGraph persistence instead.
        This class exists for apps that still use them; new agents should use
        :class:`~langchain_memobase.MemobaseMiddleware` with a LangGraph checkpointer.

    * ``messages`` is the faithful transcript, in insertion order, and never contains the
      memory context: ``RunnableWithMessageHistory`` reads it twice per turn and silently
      drops the user message if the two reads differ.
    * ``add_messages`` writes all messages in one transaction, then records their
      user/assistant text to Memobase as one turn (tool calls, tool results, system and
      summary messages are dropped there, not from the transcript).
    * ``clear`` empties this session's transcript only; the user's Memobase profile stays.
    * ``get_context`` / ``aget_context`` give the memory text for a prompt variable.
    * Every method has a native async twin; SQL runs in a worker thread, the Memobase calls
      use the facade's async methods.
    * Tables are never created implicitly: call :meth:`create_tables` (or
      :meth:`acreate_tables`) once at setup. Until then every read and write raises
      :class:`TranscriptTableMissingError`, which says so.

    Args:
        memobase: the facade; its embedded store's database also holds the transcript table
            unless ``engine`` or ``database_url`` is given (required for a remote backend).
        engine: a SQLAlchemy ``Engine`` the app builds once and shares between histories
            (one pool per process). ``database_url=`` (or the embedded store's URL) builds an
            engine for this history alone, which suits scripts, not per-request servers.
        user_id: whose memory this is (any string or a UUID v4/v5).
        session_id: the conversation within that user.
        table_name: the transcript table; create it once with :meth:`create_tables`.
        record: also record turns to Memobase (turn off to keep a transcript only).
        strict: raise Memobase failures. Off by default: they are logged and ignored (the
            transcript write already happened).
        timeout: seconds allowed for each Memobase call.
    """

    def __init__(
        self,
        memobase: Memobase,
        user_id: str | uuid.UUID,
        session_id: str,
        *,
        database_url: str | None = None,
        engine: Engine | None = None,
        table_name: str = DEFAULT_TABLE_NAME,
        record: bool = True,
        strict: bool = False,
        timeout: float | None = 5.0,
    ) -> None:
        super().__init__()
        if not session_id:
            raise ConfigurationError(
                "session_id is empty. Pass the id of the conversation (any non-empty string)."
            )
        if database_url is not None and engine is not None:
            raise ConfigurationError("Pass database_url= or engine=, not both.")
        self.memobase = memobase
        self.user: UserMemory = memobase.user(user_id)
        self.session_id = str(session_id)
        self.record = record
        self._guard = FailurePolicy(
            strict=strict, timeout=timeout, logger=logging.getLogger(__name__)
        )
        if engine is None:
            url = database_url or _default_database_url(memobase)
            if url is None:
                raise ConfigurationError(
                    "MemobaseChatMessageHistory needs a SQL database for the transcript and "
                    f"the {memobase.backend.kind!r} backend has none. Pass "
                    "database_url='sqlite:///chat.db' (or a PostgreSQL URL) or engine=."
                )
            engine = _new_engine(url)
        self._engine = engine
        self._table = _table_for(table_name)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(user={self.user.id}, session_id={self.session_id!r}, "
            f"table={self._table.name!r})"
        )

    # -- schema (explicit, as langchain-postgres does it) -----------------------------------
    def create_tables(self) -> None:
        """Create the transcript table (and its index) if missing. Call once at setup, e.g.
        in a migration or at app start; nothing here creates tables implicitly."""
        try:
            try:
                self._table.create(self._engine, checkfirst=True)
            except sa.exc.DBAPIError:
                # Another process created it between the check and the CREATE.
                if not sa.inspect(self._engine).has_table(self._table.name):
                    raise
        except sa.exc.SQLAlchemyError as exc:
            raise _sql_error("create", self._table.name, exc) from exc

    async def acreate_tables(self) -> None:
        """The async twin of :meth:`create_tables` (the DDL runs in a worker thread)."""
        await asyncio.to_thread(self.create_tables)

    def _failed(self, what: str, exc: sa.exc.SQLAlchemyError) -> MemobaseError:
        """The error for a failed transcript operation: a typed "call create_tables()" when
        the table is missing, else what went wrong."""
        try:
            missing = not sa.inspect(self._engine).has_table(self._table.name)
        except sa.exc.SQLAlchemyError:
            missing = False
        if missing:
            return TranscriptTableMissingError(
                f"The chat transcript table {self._table.name!r} does not exist in "
                f"{self._engine.url.render_as_string(hide_password=True)}. Create it once at "
                "setup with `history.create_tables()` (or `await history.acreate_tables()`)."
            )
        return _sql_error(what, self._table.name, exc)

    # -- SQL (sync; the async twins run these in a worker thread) --------------------------
    def _where(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            self._table.c.user_id == str(self.user.id),
            self._table.c.session_id == self.session_id,
        )

    def _read(self) -> list[BaseMessage]:
        try:
            return self._read_rows()
        except sa.exc.SQLAlchemyError as exc:
            raise self._failed("read", exc) from exc

    def _read_rows(self) -> list[BaseMessage]:
        query = sa.select(self._table.c.message).where(self._where()).order_by(self._table.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).scalars().all()
        return messages_from_dict([json.loads(row) for row in rows])

    def _write(self, messages: Sequence[BaseMessage], now: datetime) -> None:
        if not messages:
            return
        try:
            self._write_rows(messages, now)
        except sa.exc.SQLAlchemyError as exc:
            raise self._failed("write to", exc) from exc

    def _write_rows(self, messages: Sequence[BaseMessage], now: datetime) -> None:
        rows = [
            {
                "user_id": str(self.user.id),
                "session_id": self.session_id,
                "message": json.dumps(message_to_dict(m), default=_json_default),
                "created_at": now,
            }
            for m in messages
        ]
        with self._engine.begin() as conn:
            conn.execute(sa.insert(self._table), rows)

    def _delete(self) -> None:
        try:
            self._delete_rows()
        except sa.exc.SQLAlchemyError as exc:
            raise self._failed("clear", exc) from exc

    def _delete_rows(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(self._table).where(self._where()))

    # -- what Memobase gets ----------------------------------------------------------------
    def _turn_id(self, messages: Sequence[BaseMessage]) -> str | None:
        """The core rule (:func:`memobase_integrations.turns.turn_id`) when every message of
        the batch has an id: re-adding the same messages is a no-op in Memobase, an edited
        message (same id, new text) is a new turn. Without ids the facade picks a fresh id:
        one ``add_messages`` call is the unit here, not a folded turn, and an app that adds
        ``add_user_message("yes")`` twice in a session said it twice (the content-only rule
        would keep it once)."""
        said = [to_said(m) for m in messages]
        if not said or any(not s.key for s in said):
            return None
        return turn_id(_TURN_SOURCE, said, scope=self.session_id)

    # -- BaseChatMessageHistory ------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The stored transcript of this (user, session), oldest first."""
        return self._read()

    async def aget_messages(self) -> list[BaseMessage]:
        return await asyncio.to_thread(self._read)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append to the transcript (one transaction) and record the turn to Memobase."""
        batch = list(messages)
        now = datetime.now(UTC)
        self._write(batch, now)
        if not self.record:
            return
        said = to_memobase_messages(batch, default_created_at=now)
        if said:
            turn_id = self._turn_id(batch)
            self._guard.call_local(
                "record the chat history",
                lambda: self.user.record(said, turn_id=turn_id),
                None,
            )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        batch = list(messages)
        now = datetime.now(UTC)
        await asyncio.to_thread(self._write, batch, now)
        if not self.record:
            return
        said = to_memobase_messages(batch, default_created_at=now)
        if said:
            turn_id = self._turn_id(batch)
            await self._guard.acall(
                "record the chat history",
                lambda: self.user.arecord(said, turn_id=turn_id),
                None,
            )

    def clear(self) -> None:
        """Delete this session's transcript. The user's Memobase memory is not touched."""
        self._delete()

    async def aclear(self) -> None:
        await asyncio.to_thread(self._delete)

    # -- memory for a prompt variable ------------------------------------------------------
    def get_context(self, max_token_size: int = 500, **options: Any) -> str:
        """The user's memory text (profile + events) for a prompt variable, e.g.
        ``RunnablePassthrough.assign(memory=lambda _: history.get_context())``.
        Empty when there is no memory yet (or, fail-open, when Memobase is unavailable)."""
        return self._guard.call(
            "read the context",
            lambda: self.user.context(max_token_size, **options),
            "",
        )

    async def aget_context(self, max_token_size: int = 500, **options: Any) -> str:
        return await self._guard.acall(
            "read the context",
            lambda: self.user.acontext(max_token_size, **options),
            "",
        )
