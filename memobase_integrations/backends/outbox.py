"""Durable recording for the remote backend: a local SQLite outbox and its delivery worker.

``record`` writes one row per turn into a SQLite file (WAL) and returns; a background thread
delivers the rows to the Memobase server, decides when the server should process
("flush") each user's buffer, and tells listeners when processing finished. Nothing on the
caller's thread touches the network.

The guarantee, precisely
------------------------
**At-least-once delivery with best-effort de-duplication. Not exactly-once.**

* A turn is durable once ``record`` returned: the row is committed in WAL mode with
  ``synchronous=NORMAL``, which survives a crash or kill of the process (not a power loss of
  the machine, which would need ``synchronous=FULL`` and an fsync per turn).
* Rows are delivered in order per user, retried with exponential backoff, and never dropped
  silently: a row the server refuses as invalid (HTTP 422 / errno 400) or that exhausted
  ``FlushPolicy.max_attempts`` is parked as *failed*, shown by ``status()`` and ``failures()``,
  and only leaves the outbox through ``retry_failed()`` or ``discard_failed()``.
* The server has no idempotency key, so a send whose answer was lost (read timeout, connection
  dropped after the request was written, a gateway error) is ambiguous. Every blob carries
  ``fields = {"turn_id": ..., "blob_index": i}``, and a blob is marked *in flight* in the file
  before it is sent; before sending an in-flight blob again (after a lost answer, or after a
  crash between the send and the commit of its answer) the worker lists the user's chat blobs
  and reads them looking for that pair, and skips the send if it is there. This catches
  every duplicate **while the blob is still buffered**. It cannot catch one whose first copy
  was already processed and deleted by the server in between (the server deletes chat blobs
  after processing, e.g. when another client flushed the user or the server processed an
  over-full buffer on its own); in that window a turn can reach processing twice. That
  window is why this is not exactly-once.
* A flush the server answered with an error (e.g. its LLM was down: errno 503) leaves the
  buffer ``failed``, and Memobase never retries failed buffers. The worker therefore
  re-buffers those turns (inserts a fresh copy of each blob that is still stored, then
  deletes the failed copy) before the next flush, so they are processed once the server
  recovers. A flush whose *answer* was lost is not re-buffered (the processing may have run).

Several processes may share one outbox file (e.g. gunicorn workers): each user is worked on
under a short lease row in the file, so only one process delivers or flushes a given user at
a time; a crashed process's lease simply expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import random
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, overload
from uuid import UUID, uuid4

from .. import errors
from ..messages import render_blob
from ..models import BlobData, ChatBlob, ChatModalResponse, SummaryBlob
from ..settings import FlushPolicy
from ..tokens import count_tokens
from .base import MemoryStatus, UserStatus
from .http import SendOutcome, send_outcome

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "DeliveryClient",
    "DeliveryWorker",
    "OutboxFailure",
    "OutboxStore",
    "UndeliveredTurn",
    "UserGuards",
    "default_outbox_path",
    "lease_owner_id",
]

log = logging.getLogger("memobase_integrations.outbox")

#: Where the outbox lives unless ``outbox_path`` or ``MEMOBASE_OUTBOX_PATH`` says otherwise:
#: next to the app (the current directory), so it survives restarts like the app's own data.
DEFAULT_OUTBOX_PATH = "./memobase-outbox.db"

# Delivered-and-processed rows are kept (without their content) this long, so a turn id that
# is recorded again shortly after is recognised as a duplicate instead of being sent again.
_KEEP_DONE_SECONDS = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    turn_id TEXT NOT NULL,
    blobs TEXT NOT NULL,
    n_blobs INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    flushed INTEGER NOT NULL DEFAULT 0,
    blob_ids TEXT NOT NULL DEFAULT '[]',
    buffered_tokens INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    uncertain INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (scope, user_id, turn_id)
);
CREATE INDEX IF NOT EXISTS outbox_turns_work ON outbox_turns (scope, state, user_id, seq);
CREATE TABLE IF NOT EXISTS outbox_users (
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_delivery_at REAL,
    last_flush_at REAL,
    flush_error TEXT,
    flush_attempts INTEGER NOT NULL DEFAULT 0,
    next_flush_at REAL NOT NULL DEFAULT 0,
    rebuffer_ids TEXT NOT NULL DEFAULT '[]',
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, user_id)
);
"""

# Row states: pending (some blob not delivered yet), failed (parked, see the module doc),
# delivered (all blobs on the server, waiting for a flush), done (processed; content erased).
_UNDELIVERED = ("pending", "failed")


def default_outbox_path() -> Path:
    """``MEMOBASE_OUTBOX_PATH`` if set, else ``./memobase-outbox.db``."""
    return Path(os.environ.get("MEMOBASE_OUTBOX_PATH") or DEFAULT_OUTBOX_PATH)


@dataclass(frozen=True, slots=True)
class OutboxFailure:
    """A turn whose last delivery attempt failed (``parked``: not retried automatically)."""

    user_id: UUID
    turn_id: str
    attempts: int
    error: str
    parked: bool
    next_attempt_at: float | None


@dataclass(frozen=True, slots=True)
class UndeliveredTurn:
    """A recorded turn not (fully) on the server yet, as ``export_user`` reports it."""

    turn_id: str
    recorded_at: float
    blobs: list[dict[str, Any]]
    delivered_blobs: int
    state: str
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "recorded_at": _datetime(self.recorded_at).isoformat(),
            "blobs": self.blobs,
            "delivered_blobs": self.delivered_blobs,
            "state": self.state,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class _Row:
    seq: int
    user_id: UUID
    turn_id: str
    blobs: list[dict[str, Any]]
    delivered: int
    flushed: int
    blob_ids: list[str]
    attempts: int
    uncertain: int | None
    state: str


@dataclass(frozen=True, slots=True)
class _UserState:
    last_delivery_at: float | None
    last_flush_at: float | None
    flush_error: str | None
    flush_attempts: int
    next_flush_at: float
    rebuffer_ids: frozenset[str]

    @property
    def needs_rebuffer(self) -> bool:
        return bool(self.rebuffer_ids)


class OutboxStore:
    """The SQLite file. One connection per thread; every method is one short transaction.

    ``scope`` separates servers/projects sharing a file (derived from the project URL and
    the project id, never the key).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._connections: list[sqlite3.Connection] = []
        conn = self._conn()
        conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"OutboxStore(path={str(self.path)!r})"

    # -- connections ------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise errors.ConfigurationError(
                f"The outbox file {str(self.path)!r} cannot be opened ({exc}). Set outbox_path "
                "(or MEMOBASE_OUTBOX_PATH) to a writable location."
            ) from exc
        with self._lock:
            self._connections.append(conn)
            self._local.conn = (self._generation, conn)
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection; a later call reopens one (recording stays possible)."""
        with self._lock:
            self._generation += 1
            conns, self._connections = self._connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- recording --------------------------------------------------------------------------
    def add(self, scope: str, user_id: UUID, turn_id: str, blobs: list[dict[str, Any]]) -> bool:
        """Store a turn; ``False`` if this turn id was already recorded for the user."""
        now = time.time()
        conn = self._conn()
        cur = conn.execute(
            "INSERT OR IGNORE INTO outbox_turns (scope, user_id, turn_id, blobs, n_blobs, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scope, str(user_id), turn_id, json.dumps(blobs), len(blobs), now, now),
        )
        return cur.rowcount == 1

    # -- reading ----------------------------------------------------------------------------
    def has_undelivered(self, scope: str, user_id: UUID) -> bool:
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM outbox_turns WHERE scope=? AND user_id=? AND state='pending' "
                "LIMIT 1",
                (scope, str(user_id)),
            )
            .fetchone()
        )
        return row is not None

    def has_any_work(self, scope: str) -> bool:
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM outbox_turns WHERE scope=? AND (state='pending' OR "
                "(state='delivered' AND flushed < delivered)) LIMIT 1",
                (scope,),
            )
            .fetchone()
        )
        return row is not None

    def pending_rows(self, scope: str, user_id: UUID) -> list[_Row]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND state='pending' "
                "ORDER BY seq",
                (scope, str(user_id)),
            )
            .fetchall()
        )
        return [_to_row(r) for r in rows]

    def next_attempt_at(self, seq: int) -> float:
        row = (
            self._conn()
            .execute("SELECT next_attempt_at FROM outbox_turns WHERE seq=?", (seq,))
            .fetchone()
        )
        return float(row["next_attempt_at"]) if row else 0.0

    def unflushed_rows(self, scope: str, user_id: UUID) -> list[_Row]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND flushed < delivered "
                "AND state IN ('pending', 'delivered', 'failed') ORDER BY seq",
                (scope, str(user_id)),
            )
            .fetchall()
        )
        return [_to_row(r) for r in rows]

    def known_blob_ids(self, scope: str, user_id: UUID) -> set[str]:
        rows = (
            self._conn()
            .execute(
                "SELECT blob_ids FROM outbox_turns WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            .fetchall()
        )
        known: set[str] = set()
        for r in rows:
            known.update(json.loads(r["blob_ids"]))
        return known

    def buffered_tokens(self, scope: str, user_id: UUID) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT COALESCE(SUM(buffered_tokens), 0) AS t FROM outbox_turns "
                "WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            .fetchone()
        )
        return int(row["t"])

    def user_state(self, scope: str, user_id: UUID) -> _UserState:
        row = (
            self._conn()
            .execute(
                "SELECT * FROM outbox_users WHERE scope=? AND user_id=?", (scope, str(user_id))
            )
            .fetchone()
        )
        if row is None:
            return _UserState(None, None, None, 0, 0.0, frozenset())
        return _UserState(
            row["last_delivery_at"],
            row["last_flush_at"],
            row["flush_error"],
            int(row["flush_attempts"]),
            float(row["next_flush_at"]),
            frozenset(json.loads(row["rebuffer_ids"])),
        )

    def users_with_work(self, scope: str, now: float, policy: FlushPolicy) -> list[UUID]:
        """Users with a row due for delivery, or a buffer due for a flush or re-buffer."""
        conn = self._conn()
        due: dict[str, None] = {}
        for r in conn.execute(
            "SELECT user_id, MIN(seq) AS first FROM outbox_turns WHERE scope=? AND "
            "state='pending' AND next_attempt_at <= ? GROUP BY user_id ORDER BY first",
            (scope, now),
        ):
            due[r["user_id"]] = None
        for r in conn.execute(
            "SELECT t.user_id, SUM(t.buffered_tokens) AS tokens, u.last_delivery_at, "
            "u.next_flush_at, u.rebuffer_ids FROM outbox_turns t LEFT JOIN outbox_users u "
            "ON u.scope = t.scope AND u.user_id = t.user_id WHERE t.scope=? "
            "AND t.flushed < t.delivered GROUP BY t.user_id",
            (scope,),
        ):
            if (r["next_flush_at"] or 0.0) > now:
                continue
            idle = policy.idle_flush_seconds
            last = r["last_delivery_at"] or 0.0
            if (
                (r["rebuffer_ids"] or "[]") != "[]"
                or int(r["tokens"] or 0) > policy.buffer_token_threshold
                or (idle is not None and now - last >= idle)
            ):
                due[r["user_id"]] = None
        return [UUID(u) for u in due]

    def users_to_flush(self, scope: str) -> list[UUID]:
        rows = (
            self._conn()
            .execute(
                "SELECT DISTINCT user_id FROM outbox_turns WHERE scope=? AND flushed < delivered",
                (scope,),
            )
            .fetchall()
        )
        return [UUID(r["user_id"]) for r in rows]

    def users_with_undelivered(self, scope: str) -> list[UUID]:
        rows = (
            self._conn()
            .execute(
                "SELECT user_id, MIN(seq) AS first FROM outbox_turns WHERE scope=? "
                "AND state='pending' GROUP BY user_id ORDER BY first",
                (scope,),
            )
            .fetchall()
        )
        return [UUID(r["user_id"]) for r in rows]

    # -- progress ---------------------------------------------------------------------------
    def blob_delivered(self, seq: int, index: int, blob_id: UUID, tokens: int) -> None:
        """Record that blob ``index`` of a row is on the server (progress survives a crash)."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT scope, user_id, blob_ids, n_blobs FROM outbox_turns WHERE seq=?", (seq,)
            ).fetchone()
            if row is None:  # the user was deleted meanwhile
                return
            ids: list[str] = [*json.loads(row["blob_ids"])[:index], str(blob_id)]
            done = index + 1 >= int(row["n_blobs"])
            conn.execute(
                "UPDATE outbox_turns SET blob_ids=?, delivered=?, buffered_tokens="
                "buffered_tokens+?, uncertain=NULL, attempts=0, last_error=NULL, "
                "next_attempt_at=0, state=?, updated_at=? WHERE seq=?",
                (json.dumps(ids), index + 1, tokens, "delivered" if done else "pending", now, seq),
            )
            _touch_user(conn, row["scope"], row["user_id"])
            conn.execute(
                "UPDATE outbox_users SET last_delivery_at=? WHERE scope=? AND user_id=?",
                (now, row["scope"], row["user_id"]),
            )

    def row_failed(
        self,
        seq: int,
        error: str,
        *,
        uncertain: int | None,
        parked: bool,
        next_attempt_at: float,
    ) -> int:
        """Count a failed attempt; returns the attempts made so far."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox_turns SET attempts=attempts+1, last_error=?, uncertain=?, "
                "state=?, next_attempt_at=?, updated_at=? WHERE seq=? AND state='pending'",
                (
                    error,
                    uncertain,
                    "failed" if parked else "pending",
                    next_attempt_at,
                    time.time(),
                    seq,
                ),
            )
            row = conn.execute("SELECT attempts FROM outbox_turns WHERE seq=?", (seq,)).fetchone()
            return int(row["attempts"]) if row else 0

    def flush_succeeded(self, scope: str, user_id: UUID) -> None:
        """Everything delivered so far is processed: erase content, keep the turn ids a while."""
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox_turns SET flushed=delivered, buffered_tokens=0, "
                "blobs=CASE WHEN state='delivered' THEN '[]' ELSE blobs END, "
                "state=CASE WHEN state='delivered' THEN 'done' ELSE state END, updated_at=? "
                "WHERE scope=? AND user_id=? AND flushed < delivered",
                (now, scope, str(user_id)),
            )
            _touch_user(conn, scope, str(user_id))
            conn.execute(
                "UPDATE outbox_users SET last_flush_at=?, flush_error=NULL, flush_attempts=0, "
                "next_flush_at=0, rebuffer_ids='[]' WHERE scope=? AND user_id=?",
                (now, scope, str(user_id)),
            )
            conn.execute(
                "DELETE FROM outbox_turns WHERE scope=? AND state='done' AND updated_at < ?",
                (scope, now - _KEEP_DONE_SECONDS),
            )

    def flush_failed(
        self, scope: str, user_id: UUID, error: str, *, rebuffer: bool, next_flush_at: float
    ) -> None:
        """Count a failed flush. ``rebuffer``: the server marked the buffer failed, so every
        blob delivered so far must be given to it again (see :meth:`DeliveryWorker._rebuffer`)."""
        with self._tx() as conn:
            _touch_user(conn, scope, str(user_id))
            row = conn.execute(
                "SELECT rebuffer_ids FROM outbox_users WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            ).fetchone()
            ids: set[str] = set(json.loads(row["rebuffer_ids"]))
            if rebuffer:
                for r in conn.execute(
                    "SELECT blob_ids, flushed, delivered FROM outbox_turns WHERE scope=? AND "
                    "user_id=? AND flushed < delivered",
                    (scope, str(user_id)),
                ):
                    ids.update(json.loads(r["blob_ids"])[r["flushed"] : r["delivered"]])
            conn.execute(
                "UPDATE outbox_users SET flush_error=?, flush_attempts=flush_attempts+1, "
                "next_flush_at=?, rebuffer_ids=? WHERE scope=? AND user_id=?",
                (error, next_flush_at, json.dumps(sorted(ids)), scope, str(user_id)),
            )

    def rebuffer_done(
        self,
        scope: str,
        user_id: UUID,
        old: str,
        seq: int | None = None,
        index: int | None = None,
        new: UUID | None = None,
    ) -> None:
        """One blob of a failed buffer is handled: replaced by ``new`` (or already gone)."""
        with self._tx() as conn:
            if seq is not None and index is not None and new is not None:
                row = conn.execute(
                    "SELECT blob_ids FROM outbox_turns WHERE seq=?", (seq,)
                ).fetchone()
                if row is not None:
                    ids: list[str] = json.loads(row["blob_ids"])
                    ids[index] = str(new)
                    conn.execute(
                        "UPDATE outbox_turns SET blob_ids=?, uncertain=NULL, updated_at=? "
                        "WHERE seq=?",
                        (json.dumps(ids), time.time(), seq),
                    )
            row = conn.execute(
                "SELECT rebuffer_ids FROM outbox_users WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            ).fetchone()
            if row is not None:
                remaining = [i for i in json.loads(row["rebuffer_ids"]) if i != old]
                conn.execute(
                    "UPDATE outbox_users SET rebuffer_ids=? WHERE scope=? AND user_id=?",
                    (json.dumps(remaining), scope, str(user_id)),
                )

    def rebuffer_finished(self, scope: str, user_id: UUID) -> None:
        """Every blob of the failed buffer was handled (or no longer exists here)."""
        self._conn().execute(
            "UPDATE outbox_users SET rebuffer_ids='[]' WHERE scope=? AND user_id=?",
            (scope, str(user_id)),
        )

    def set_uncertain(self, seq: int, index: int | None) -> None:
        self._conn().execute("UPDATE outbox_turns SET uncertain=? WHERE seq=?", (index, seq))

    # -- leases -----------------------------------------------------------------------------
    def claim(self, scope: str, user_id: UUID, owner: str, seconds: float) -> bool:
        """Take (or renew) the user's lease unless another live owner holds it.

        A lease expires after ``seconds``; one held by a process of this machine that no
        longer exists is taken over at once, so a restart after a crash does not wait.
        """
        now = time.time()
        with self._tx() as conn:
            _touch_user(conn, scope, str(user_id))
            row = conn.execute(
                "SELECT lease_owner, lease_until FROM outbox_users WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            ).fetchone()
            holder = row["lease_owner"]
            if holder and holder != owner and row["lease_until"] >= now and _owner_alive(holder):
                return False
            conn.execute(
                "UPDATE outbox_users SET lease_owner=?, lease_until=? WHERE scope=? AND user_id=?",
                (owner, now + seconds, scope, str(user_id)),
            )
            return True

    def release(self, scope: str, user_id: UUID, owner: str) -> None:
        self._conn().execute(
            "UPDATE outbox_users SET lease_owner=NULL, lease_until=0 WHERE scope=? AND "
            "user_id=? AND lease_owner=?",
            (scope, str(user_id), owner),
        )

    # -- operations -------------------------------------------------------------------------
    def delete_user(self, scope: str, user_id: UUID) -> int:
        """Forget every row of a user (used by ``delete_user``); returns undelivered turns."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT COUNT(*) AS n FROM outbox_turns WHERE scope=? AND user_id=? AND "
                "state IN ('pending', 'failed')",
                (scope, str(user_id)),
            ).fetchone()
            conn.execute(
                "DELETE FROM outbox_turns WHERE scope=? AND user_id=?", (scope, str(user_id))
            )
            conn.execute(
                "UPDATE outbox_users SET last_delivery_at=NULL, last_flush_at=NULL, "
                "flush_error=NULL, flush_attempts=0, next_flush_at=0, rebuffer_ids='[]' "
                "WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            return int(row["n"])

    def undelivered(self, scope: str, user_id: UUID) -> list[UndeliveredTurn]:
        rows = (
            self._conn()
            .execute(
                "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND "
                "state IN ('pending', 'failed') ORDER BY seq",
                (scope, str(user_id)),
            )
            .fetchall()
        )
        return [
            UndeliveredTurn(
                turn_id=r["turn_id"],
                recorded_at=float(r["created_at"]),
                blobs=json.loads(r["blobs"]),
                delivered_blobs=int(r["delivered"]),
                state=r["state"],
                last_error=r["last_error"],
            )
            for r in rows
        ]

    def failures(self, scope: str, user_id: UUID | None = None) -> list[OutboxFailure]:
        sql = (
            "SELECT * FROM outbox_turns WHERE scope=? AND state IN ('pending', 'failed') "
            "AND last_error IS NOT NULL"
        )
        args: list[Any] = [scope]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(str(user_id))
        rows = self._conn().execute(sql + " ORDER BY seq", args).fetchall()
        return [
            OutboxFailure(
                user_id=UUID(r["user_id"]),
                turn_id=r["turn_id"],
                attempts=int(r["attempts"]),
                error=r["last_error"],
                parked=r["state"] == "failed",
                next_attempt_at=None if r["state"] == "failed" else float(r["next_attempt_at"]),
            )
            for r in rows
        ]

    def retry_failed(self, scope: str, user_id: UUID | None = None) -> int:
        """Make every failed row (parked or waiting out a backoff) due now."""
        sql = (
            "UPDATE outbox_turns SET state='pending', attempts=0, next_attempt_at=0, "
            "updated_at=? WHERE scope=? AND state IN ('pending', 'failed') "
            "AND last_error IS NOT NULL"
        )
        user_sql = "UPDATE outbox_users SET next_flush_at=0, flush_attempts=0 WHERE scope=?"
        args: list[Any] = [time.time(), scope]
        user_args: list[Any] = [scope]
        if user_id is not None:
            sql += " AND user_id=?"
            user_sql += " AND user_id=?"
            args.append(str(user_id))
            user_args.append(str(user_id))
        with self._tx() as conn:
            n = conn.execute(sql, args).rowcount
            conn.execute(user_sql, user_args)
            return n

    def discard_failed(self, scope: str, user_id: UUID | None = None) -> int:
        """Delete every undelivered row whose last attempt failed; returns how many."""
        sql = (
            "DELETE FROM outbox_turns WHERE scope=? AND state IN ('pending', 'failed') "
            "AND last_error IS NOT NULL"
        )
        args: list[Any] = [scope]
        if user_id is not None:
            sql += " AND user_id=?"
            args.append(str(user_id))
        with self._tx() as conn:
            return conn.execute(sql, args).rowcount

    def status(self, scope: str, user_id: UUID | None = None) -> MemoryStatus:
        conn = self._conn()
        sql = (
            "SELECT t.user_id, "
            "SUM(CASE WHEN t.state IN ('pending','failed') THEN 1 ELSE 0 END) AS pending, "
            "SUM(CASE WHEN t.state IN ('pending','failed') AND t.last_error IS NOT NULL "
            "THEN 1 ELSE 0 END) AS failed, "
            "SUM(t.buffered_tokens) AS tokens, "
            "MAX(CASE WHEN t.last_error IS NOT NULL AND t.state IN ('pending','failed') "
            "THEN t.updated_at END) AS err_at "
            "FROM outbox_turns t WHERE t.scope=?"
        )
        args: list[Any] = [scope]
        if user_id is not None:
            sql += " AND t.user_id=?"
            args.append(str(user_id))
        per_user = {r["user_id"]: r for r in conn.execute(sql + " GROUP BY t.user_id", args)}
        user_sql = "SELECT * FROM outbox_users WHERE scope=?"
        user_args: list[Any] = [scope]
        if user_id is not None:
            user_sql += " AND user_id=?"
            user_args.append(str(user_id))
        states = {r["user_id"]: r for r in conn.execute(user_sql, user_args)}
        users: list[UserStatus] = []
        for uid in sorted(set(per_user) | set(states) | ({str(user_id)} if user_id else set())):
            t = per_user.get(uid)
            u = states.get(uid)
            pending = int(t["pending"] or 0) if t else 0
            failed = int(t["failed"] or 0) if t else 0
            tokens = int(t["tokens"] or 0) if t else 0
            flush_error = u["flush_error"] if u else None
            last_error = _latest_error(conn, scope, uid) if failed else None
            if flush_error:
                last_error = f"flush: {flush_error}" if last_error is None else last_error
            if user_id is None and not (pending or tokens or last_error):
                continue
            last_flush = u["last_flush_at"] if u else None
            users.append(
                UserStatus(
                    user_id=UUID(uid),
                    pending_turns=pending,
                    buffered_tokens=tokens,
                    failed=failed,
                    last_flush_at=_datetime(last_flush),
                    last_error=last_error,
                )
            )
        return MemoryStatus(
            backend="remote",
            pending_turns=sum(u.pending_turns for u in users),
            buffered_tokens=sum(u.buffered_tokens for u in users),
            failed=sum(u.failed for u in users),
            users=tuple(users),
        )


def _latest_error(conn: sqlite3.Connection, scope: str, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT last_error FROM outbox_turns WHERE scope=? AND user_id=? AND last_error IS NOT "
        "NULL AND state IN ('pending','failed') ORDER BY updated_at DESC LIMIT 1",
        (scope, user_id),
    ).fetchone()
    return str(row["last_error"]) if row else None


@overload
def _datetime(ts: float) -> datetime: ...
@overload
def _datetime(ts: None) -> None: ...
def _datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


_HOST = socket.gethostname()


def lease_owner_id() -> str:
    """``host:pid:random``: unique per backend, and tells whether its process still runs."""
    return f"{_HOST}:{os.getpid()}:{uuid4().hex[:12]}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return True  # another machine (a shared network file): trust the expiry
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _touch_user(conn: sqlite3.Connection, scope: str, user_id: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO outbox_users (scope, user_id) VALUES (?, ?)", (scope, user_id)
    )


def _to_row(r: sqlite3.Row) -> _Row:
    return _Row(
        seq=int(r["seq"]),
        user_id=UUID(r["user_id"]),
        turn_id=r["turn_id"],
        blobs=json.loads(r["blobs"]),
        delivered=int(r["delivered"]),
        flushed=int(r["flushed"]),
        blob_ids=json.loads(r["blob_ids"]),
        attempts=int(r["attempts"]),
        uncertain=r["uncertain"],
        state=r["state"],
    )


# -- per-user mutual exclusion ---------------------------------------------------------------


class UserGuards:
    """One lock per user inside the process plus a lease row across processes.

    Delivery, flush and delete of one user never run at the same time: the server processes
    a buffer twice under parallel flushes, and a delivery racing a delete would resurrect
    the user.
    """

    def __init__(self, scope: str, owner: str, lease_seconds: float) -> None:
        self.scope = scope
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.store: OutboxStore | None = None
        self._locks: dict[UUID, threading.Lock] = {}
        self._lock = threading.Lock()

    def _user_lock(self, user_id: UUID) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(user_id, threading.Lock())

    def try_lease(self, user_id: UUID) -> bool:
        store = self.store
        return store is None or store.claim(self.scope, user_id, self.owner, self.lease_seconds)

    def renew(self, user_id: UUID) -> None:
        self.try_lease(user_id)

    def _release_lease(self, user_id: UUID) -> None:
        if self.store is not None:
            with contextlib.suppress(sqlite3.Error, errors.MemobaseError):
                self.store.release(self.scope, user_id, self.owner)

    @contextlib.contextmanager
    def try_hold(self, user_id: UUID) -> Iterator[bool]:
        """Hold the user if it is free right now (the worker skips busy users)."""
        lock = self._user_lock(user_id)
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            if not self.try_lease(user_id):
                yield False
                return
            try:
                yield True
            finally:
                self._release_lease(user_id)
        finally:
            lock.release()

    @contextlib.contextmanager
    def hold(self, user_id: UUID, wait_seconds: float = 60.0) -> Iterator[None]:
        """Hold the user, waiting for the local lock and (bounded) for another process."""
        lock = self._user_lock(user_id)
        lock.acquire()
        try:
            deadline = time.monotonic() + wait_seconds
            while not self.try_lease(user_id) and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                yield
            finally:
                self._release_lease(user_id)
        finally:
            lock.release()

    @contextlib.asynccontextmanager
    async def ahold(self, user_id: UUID, wait_seconds: float = 60.0) -> AsyncIterator[None]:
        """:meth:`hold` without blocking the event loop (polls; cancellation-safe)."""
        lock = self._user_lock(user_id)
        while not lock.acquire(blocking=False):
            await asyncio.sleep(0.005)
        try:
            deadline = time.monotonic() + wait_seconds
            while (
                self.store is not None
                and not await asyncio.to_thread(self.try_lease, user_id)
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.02)
            try:
                yield
            finally:
                if self.store is not None:
                    await asyncio.to_thread(self._release_lease, user_id)
        finally:
            lock.release()


# -- the worker ------------------------------------------------------------------------------


class DeliveryClient(Protocol):
    """The network operations the worker needs (implemented by the remote backend)."""

    def insert_body(self, user_id: UUID, body: dict[str, Any]) -> UUID: ...
    def blob_ids(self, user_id: UUID) -> list[UUID]: ...
    def blob_fields(self, user_id: UUID, blob_id: UUID) -> dict[str, Any] | None: ...
    def delete_blob(self, user_id: UUID, blob_id: UUID) -> None: ...
    def flush_now(self, user_id: UUID) -> list[ChatModalResponse]: ...
    def notify_processed(self, user_id: UUID, results: Sequence[ChatModalResponse]) -> None: ...


class _Stop(Exception):
    """Raised inside a user's pass when the drain deadline passed."""


def body_tokens(body: dict[str, Any]) -> int:
    """Tokens Memobase will count for a blob body (its rendered text, o200k)."""
    try:
        blob = BlobData.model_validate(body).to_blob()
    except ValueError:
        return 0
    if isinstance(blob, ChatBlob | SummaryBlob):
        return count_tokens(render_blob(blob))
    return 0


class DeliveryWorker:
    """The background thread that empties the outbox. See the module docstring."""

    def __init__(
        self,
        store: OutboxStore,
        scope: str,
        client: DeliveryClient,
        policy: FlushPolicy,
        guards: UserGuards,
    ) -> None:
        self.store = store
        self.scope = scope
        self.client = client
        self.policy = policy
        self.guards = guards
        self._wake = threading.Event()
        self._jobs: queue.SimpleQueue[tuple[UUID, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._drain_deadline: float | None = None
        self._stopped = threading.Event()
        self._last_error: dict[UUID, errors.MemobaseError] = {}
        self._drain_skip: set[UUID] = set()

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="memobase-outbox", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def request_delivery(self, user_id: UUID) -> Future[None]:
        """Deliver this user's rows now (ignoring backoff); the future fails with the last
        error if some row could not be delivered."""
        fut: Future[None] = Future()
        if self._stopped.is_set() or self._drain_deadline is not None:
            fut.set_exception(
                errors.MemobaseError("The Memobase client is closing; no delivery was attempted.")
            )
            return fut
        self._jobs.put((user_id, fut))
        if threading.current_thread() is self._thread:
            self._run_jobs()  # called from a listener on the worker itself: run it inline
            return fut
        self.start()
        self._wake.set()
        return fut

    def drain_and_stop(self, timeout: float) -> None:
        """Deliver what can be delivered (and flush) within ``timeout`` seconds, then stop."""
        with self._start_lock:
            thread = self._thread
            if thread is None:
                self._stopped.set()
                return
            self._drain_deadline = time.monotonic() + timeout
        self._wake.set()
        thread.join(timeout + 0.5)
        self._stopped.set()
        if thread.is_alive():
            log.warning(
                "The Memobase outbox did not finish within %.1fs; undelivered turns stay in %s "
                "and are sent at the next start.",
                timeout,
                self.store.path,
            )

    # -- loop -------------------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return self._drain_deadline is not None and time.monotonic() >= self._drain_deadline

    def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._run_jobs()
                if self._drain_deadline is not None:
                    self._drain()
                    return
                busy = self._background_pass()
            except Exception:  # never let the thread die: a bug here must not lose turns
                log.exception("The Memobase outbox worker hit an unexpected error; continuing.")
                busy = False
            if not busy:
                self._wake.wait(self.policy.worker_poll_seconds)

    def _run_jobs(self) -> None:
        while True:
            try:
                user_id, fut = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                with self.guards.hold(user_id):
                    self._work_user(user_id, force=True, flush=False)
                if self.store.has_undelivered(self.scope, user_id):
                    raise self._last_error.get(user_id) or errors.MemobaseError(
                        "Some recorded turns could not be delivered; see status()."
                    )
                fut.set_result(None)
            except BaseException as exc:
                fut.set_exception(exc)

    def _background_pass(self) -> bool:
        now = time.time()
        worked = False
        for user_id in self.store.users_with_work(self.scope, now, self.policy):
            with self.guards.try_hold(user_id) as held:
                if held:
                    self._work_user(user_id, force=False, flush=True)
                    worked = True
            if not self._jobs.empty() or self._drain_deadline is not None:
                break
        return worked and self.store.has_any_work(self.scope) and self._any_due()

    def _any_due(self) -> bool:
        return bool(self.store.users_with_work(self.scope, time.time(), self.policy))

    def _drain(self) -> None:
        """Close: one forced attempt per user with undelivered rows, then flush everyone."""
        try:
            while not self._past_deadline():
                todo = [
                    u
                    for u in self.store.users_with_undelivered(self.scope)
                    if u not in self._drain_skip
                ]
                if not todo:
                    break
                for user_id in todo:
                    if self._past_deadline():
                        raise _Stop
                    with self.guards.hold(user_id, wait_seconds=0.5):
                        self._work_user(user_id, force=True, flush=False)
                    if self.store.has_undelivered(self.scope, user_id):
                        self._drain_skip.add(user_id)
            if self.policy.flush_on_close:
                for user_id in self.store.users_to_flush(self.scope):
                    if self._past_deadline():
                        raise _Stop
                    with self.guards.hold(user_id, wait_seconds=0.5):
                        self._flush(user_id)
        except _Stop:
            pass
        except Exception:
            log.exception("The Memobase outbox worker failed while draining.")

    # -- one user ---------------------------------------------------------------------------
    def _work_user(self, user_id: UUID, *, force: bool, flush: bool) -> None:
        now = time.time()
        state = self.store.user_state(self.scope, user_id)
        if state.needs_rebuffer and (force or state.next_flush_at <= now):
            if not self._rebuffer(user_id):
                return
            if flush and not self._flush(user_id):
                return
        for row in self.store.pending_rows(self.scope, user_id):
            if self._past_deadline():
                raise _Stop
            if not force and self.store.next_attempt_at(row.seq) > now:
                break  # keep the user's turns in order: wait for the head row
            if not self._deliver_row(row, force=force):
                return
        if flush and self._flush_due(user_id, time.time()):
            self._flush(user_id)

    def _flush_due(self, user_id: UUID, now: float) -> bool:
        if not self.store.unflushed_rows(self.scope, user_id):
            return False
        state = self.store.user_state(self.scope, user_id)
        if state.next_flush_at > now:
            return False
        if self.store.buffered_tokens(self.scope, user_id) > self.policy.buffer_token_threshold:
            return True
        idle = self.policy.idle_flush_seconds
        return idle is not None and now - (state.last_delivery_at or 0.0) >= idle

    def _backoff(self, attempts: int) -> float:
        base = self.policy.retry_base_seconds * (2.0 ** min(max(0, attempts - 1), 30))
        return min(self.policy.retry_max_seconds, base) * random.uniform(0.5, 1.0)

    def _deliver_row(self, row: _Row, *, force: bool) -> bool:
        user_id = row.user_id
        threshold = self.policy.buffer_token_threshold
        for index in range(row.delivered, len(row.blobs)):
            body = row.blobs[index]
            tokens = body_tokens(body)
            buffered = self.store.buffered_tokens(self.scope, user_id)
            if buffered > 0 and buffered + tokens > threshold:
                # Flush first so the server's buffer never overflows on its own: an
                # overflowing insert makes the server process in the background, out of
                # our sight (no results for the listeners, and a race with our flushes).
                state = self.store.user_state(self.scope, user_id)
                if not force and state.next_flush_at > time.time():
                    return False
                if not self._flush(user_id):
                    return False
            searching = row.uncertain == index
            try:
                self.guards.renew(user_id)
                blob_id = self._find_blob(user_id, row.turn_id, index) if searching else None
                searching = False
                if blob_id is None:
                    # Marked in flight first: if the process dies before the answer is
                    # committed, the next start asks the server instead of sending again.
                    self.store.set_uncertain(row.seq, index)
                    blob_id = self.client.insert_body(user_id, body)
            except errors.MemobaseError as exc:
                self._row_failed(row, index, exc, searching=searching)
                return False
            self.store.blob_delivered(row.seq, index, blob_id, tokens)
            row.uncertain = None
            self._last_error.pop(user_id, None)
            if self.store.buffered_tokens(self.scope, user_id) > threshold and not self._flush(
                user_id
            ):
                return index + 1 >= len(row.blobs)
        return True

    def _row_failed(
        self, row: _Row, index: int, exc: errors.MemobaseError, *, searching: bool
    ) -> None:
        outcome = send_outcome(exc)
        uncertain = index if searching or outcome is SendOutcome.UNKNOWN else None
        permanent = outcome is SendOutcome.ANSWERED and isinstance(exc, errors.ValidationError)
        attempts = row.attempts + 1
        limit = self.policy.max_attempts
        parked = permanent or (limit is not None and attempts >= limit)
        self._last_error[row.user_id] = exc
        self.store.row_failed(
            row.seq,
            exc.message,
            uncertain=uncertain,
            parked=parked,
            next_attempt_at=time.time() + self._backoff(attempts),
        )
        # The first failure, a parked turn and every tenth attempt are worth a warning; the
        # rest of a long outage would only flood the log.
        level = logging.WARNING if parked or attempts % 10 == 1 else logging.DEBUG
        log.log(
            level,
            "Memobase outbox: turn %s of user %s not delivered (attempt %d%s): %s",
            row.turn_id,
            row.user_id,
            attempts,
            ", parked" if parked else "",
            exc.message,
        )

    def _find_blob(
        self, user_id: UUID, turn_id: str, index: int, exclude: frozenset[str] = frozenset()
    ) -> UUID | None:
        """The id of a stored blob of ``(turn_id, index)`` (the answer to a lost send)."""
        known = self.store.known_blob_ids(self.scope, user_id) | exclude
        for blob_id in reversed(self.client.blob_ids(user_id)):
            if str(blob_id) in known:
                continue
            fields = self.client.blob_fields(user_id, blob_id)
            if fields and fields.get("turn_id") == turn_id and fields.get("blob_index") == index:
                log.info(
                    "Memobase outbox: turn %s blob %d was already stored (answer lost); not "
                    "sending it again.",
                    turn_id,
                    index,
                )
                return blob_id
        return None

    def _flush(self, user_id: UUID) -> bool:
        self.guards.renew(user_id)
        try:
            results = self.client.flush_now(user_id)
        except errors.MemobaseError as exc:
            # The server answered: it ran the processing and it failed, so the buffer is now
            # ``failed`` on the server and must be re-buffered. A lost answer is not: the
            # processing may have succeeded.
            rebuffer = send_outcome(exc) is SendOutcome.ANSWERED and isinstance(
                exc, errors.ServerError
            )
            self._last_error[user_id] = exc
            attempts = self.store.user_state(self.scope, user_id).flush_attempts + 1
            self.store.flush_failed(
                self.scope,
                user_id,
                exc.message,
                rebuffer=rebuffer,
                next_flush_at=time.time() + self._backoff(attempts),
            )
            log.warning("Memobase outbox: flush of user %s failed: %s", user_id, exc.message)
            return False
        self.store.flush_succeeded(self.scope, user_id)
        self.client.notify_processed(user_id, results)
        return True

    def _rebuffer(self, user_id: UUID) -> bool:
        """Give the server fresh copies of the blobs stuck in a failed buffer.

        For each blob of the failed buffer that is still stored: insert a copy (new idle
        buffer row), record the copy's id, then delete the failed copy. The order makes a crash
        cost at worst a duplicate copy, never a lost turn; a copy whose answer was lost is
        found again by its ``(turn_id, blob_index)`` fields.
        """
        pending = self.store.user_state(self.scope, user_id).rebuffer_ids
        for row in self.store.unflushed_rows(self.scope, user_id):
            for index in range(row.flushed, row.delivered):
                old = row.blob_ids[index]
                if old not in pending:
                    continue
                stage = "check"
                try:
                    self.guards.renew(user_id)
                    if self.client.blob_fields(user_id, UUID(old)) is None:
                        # processed (the server deletes chat blobs) or deleted by someone
                        self.store.rebuffer_done(self.scope, user_id, old)
                        continue
                    new = None
                    if row.uncertain == index:
                        stage = "search"
                        new = self._find_blob(user_id, row.turn_id, index, frozenset({old}))
                    if new is None:
                        stage = "insert"
                        self.store.set_uncertain(row.seq, index)
                        new = self.client.insert_body(user_id, row.blobs[index])
                except errors.MemobaseError as exc:
                    if stage == "insert" and send_outcome(exc) is not SendOutcome.UNKNOWN:
                        self.store.set_uncertain(row.seq, None)
                    self._last_error[user_id] = exc
                    attempts = self.store.user_state(self.scope, user_id).flush_attempts + 1
                    self.store.flush_failed(
                        self.scope,
                        user_id,
                        f"re-buffering after a failed flush: {exc.message}",
                        rebuffer=False,
                        next_flush_at=time.time() + self._backoff(attempts),
                    )
                    return False
                self.store.rebuffer_done(self.scope, user_id, old, row.seq, index, new)
                try:
                    self.client.delete_blob(user_id, UUID(old))
                except errors.MemobaseError as exc:
                    # The failed copy sits in a failed buffer, which the server never
                    # processes again: leaving it costs storage, not correctness.
                    log.info("Memobase outbox: could not delete blob %s: %s", old, exc.message)
        self.store.rebuffer_finished(self.scope, user_id)
        return True
