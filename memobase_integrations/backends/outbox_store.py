"""The outbox's queue: rows of recorded turns and per-user delivery state.

Pure storage for :mod:`.outbox` (the worker and the guarantee it gives live there), on the
file of :mod:`.outbox_file` (schema version, connections, fingerprint). Row states:
``pending`` (some blob not delivered yet), ``failed`` (parked, see :mod:`..queue.parking`),
``delivered`` (all blobs on the server, waiting for a flush), ``done`` (processed; content
erased, the turn id kept a while for de-duplication).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any
from uuid import UUID

from ..queue.lease import lease_owner_id, owner_alive
from ..queue.status import memory_status
from ..settings import FlushPolicy
from ..values import FailedTurn, MemoryStatus, UserStatus
from .outbox_file import (
    DEFAULT_OUTBOX_PATH,
    SCHEMA_VERSION,
    OutboxFailure,
    OutboxFile,
    OutboxVersionError,
    TurnRow,
    UndeliveredTurn,
    UserState,
    _datetime,
    default_outbox_path,
)

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "SCHEMA_VERSION",
    "OutboxFailure",
    "OutboxStore",
    "OutboxVersionError",
    "TurnRow",
    "UndeliveredTurn",
    "default_outbox_path",
    "lease_owner_id",
]

# Delivered-and-processed rows are kept (without their content) this long, so a turn id that
# is recorded again shortly after is recognised as a duplicate instead of being sent again.
_KEEP_DONE_SECONDS = 7 * 24 * 3600


class OutboxStore(OutboxFile):
    """The queue operations on the outbox file; every method is one short transaction."""

    # -- recording --------------------------------------------------------------------------
    def add(self, scope: str, user_id: UUID, turn_id: str, blobs: list[dict[str, Any]]) -> bool:
        """Store a turn; ``False`` if this turn id was already recorded for the user."""
        now = time.time()
        changed = self._write(
            "INSERT OR IGNORE INTO outbox_turns (scope, user_id, turn_id, blobs, n_blobs, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scope, str(user_id), turn_id, json.dumps(blobs), len(blobs), now, now),
        )
        return changed == 1

    # -- reading ----------------------------------------------------------------------------
    def has_undelivered(self, scope: str, user_id: UUID) -> bool:
        row = self._one(
            "SELECT 1 FROM outbox_turns WHERE scope=? AND user_id=? AND state='pending' LIMIT 1",
            (scope, str(user_id)),
        )
        return row is not None

    def needs_delivery(self, scope: str, user_id: UUID) -> bool:
        """Work the worker must finish before the user's buffer may be flushed: undelivered
        turns, or blobs of a failed server-side flush still to re-buffer."""
        if self.has_undelivered(scope, user_id):
            return True
        return self.user_state(scope, user_id).needs_rebuffer

    def has_uncertain(self, scope: str, user_id: UUID) -> bool:
        """A send of this user whose answer was lost and is not resolved yet: the server may
        hold a copy the outbox does not know about, so the user must not be flushed (the
        flush would process that copy, and the resend would be processed again)."""
        row = self._one(
            "SELECT 1 FROM outbox_turns WHERE scope=? AND user_id=? AND uncertain IS NOT NULL "
            "AND state IN ('pending', 'delivered', 'failed') LIMIT 1",
            (scope, str(user_id)),
        )
        return row is not None

    def mark_unconfirmed(self, scope: str, user_id: UUID, blob_id: UUID) -> None:
        """A blob adopted without seeing its insert answer (found by a search after a lost
        answer): it may be stored without a buffer row, so its processing must be checked."""
        self._write(
            "INSERT OR IGNORE INTO outbox_unconfirmed (scope, user_id, blob_id) VALUES (?, ?, ?)",
            (scope, str(user_id), str(blob_id)),
        )

    def unconfirmed(self, scope: str, user_id: UUID) -> set[str]:
        rows = self._all(
            "SELECT blob_id FROM outbox_unconfirmed WHERE scope=? AND user_id=?",
            (scope, str(user_id)),
        )
        return {r["blob_id"] for r in rows}

    def unflushed_blob_ids(self, scope: str, user_id: UUID) -> set[str]:
        """Ids of the user's blobs that are on the server and not yet known processed."""
        ids: set[str] = set()
        for r in self._all(
            "SELECT blob_ids, flushed, delivered FROM outbox_turns WHERE scope=? AND user_id=? "
            "AND flushed < delivered",
            (scope, str(user_id)),
        ):
            ids.update(json.loads(r["blob_ids"])[r["flushed"] : r["delivered"]])
        return ids

    def has_any_work(self, scope: str) -> bool:
        row = self._one(
            "SELECT 1 FROM outbox_turns WHERE scope=? AND (state='pending' OR "
            "(state='delivered' AND flushed < delivered)) LIMIT 1",
            (scope,),
        )
        return row is not None

    def pending_rows(self, scope: str, user_id: UUID) -> list[TurnRow]:
        rows = self._all(
            "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND state='pending' "
            "ORDER BY seq",
            (scope, str(user_id)),
        )
        return [_to_row(r) for r in rows]

    def next_attempt_at(self, seq: int) -> float:
        row = self._one("SELECT next_attempt_at FROM outbox_turns WHERE seq=?", (seq,))
        return float(row["next_attempt_at"]) if row else 0.0

    def unflushed_rows(self, scope: str, user_id: UUID) -> list[TurnRow]:
        rows = self._all(
            "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND flushed < delivered "
            "AND state IN ('pending', 'delivered', 'failed') ORDER BY seq",
            (scope, str(user_id)),
        )
        return [_to_row(r) for r in rows]

    def known_blob_ids(self, scope: str, user_id: UUID) -> set[str]:
        rows = self._all(
            "SELECT blob_ids FROM outbox_turns WHERE scope=? AND user_id=?",
            (scope, str(user_id)),
        )
        known: set[str] = set()
        for r in rows:
            known.update(json.loads(r["blob_ids"]))
        return known

    def buffered_tokens(self, scope: str, user_id: UUID) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(buffered_tokens), 0) AS t FROM outbox_turns "
            "WHERE scope=? AND user_id=?",
            (scope, str(user_id)),
        )
        return int(row["t"]) if row else 0

    def user_state(self, scope: str, user_id: UUID) -> UserState:
        row = self._one(
            "SELECT * FROM outbox_users WHERE scope=? AND user_id=?", (scope, str(user_id))
        )
        if row is None:
            return UserState(None, None, None, 0, 0.0, frozenset())
        return UserState(
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
        rows = self._all(
            "SELECT DISTINCT user_id FROM outbox_turns WHERE scope=? AND flushed < delivered",
            (scope,),
        )
        return [UUID(r["user_id"]) for r in rows]

    def users_with_undelivered(self, scope: str) -> list[UUID]:
        rows = self._all(
            "SELECT user_id, MIN(seq) AS first FROM outbox_turns WHERE scope=? "
            "AND state='pending' GROUP BY user_id ORDER BY first",
            (scope,),
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

    def flush_succeeded(
        self, scope: str, user_id: UUID, orphans: frozenset[str] = frozenset()
    ) -> None:
        """Everything delivered so far is processed: erase content, keep the turn ids a while.

        ``orphans``: blobs of ours the server still stores after the flush, so it never
        processed them (see :meth:`DeliveryWorker._verify`). Their rows stay unflushed from
        the first orphan on, with their content, and the orphans are queued for
        re-buffering (a fresh copy is inserted, then the orphan deleted).
        """
        now = time.time()
        with self._tx() as conn:
            kept: list[tuple[int, int]] = []
            if orphans:
                for r in conn.execute(
                    "SELECT seq, blob_ids, flushed, delivered FROM outbox_turns WHERE scope=? "
                    "AND user_id=? AND flushed < delivered",
                    (scope, str(user_id)),
                ):
                    ids = json.loads(r["blob_ids"])
                    hits = [i for i in range(r["flushed"], r["delivered"]) if ids[i] in orphans]
                    if hits:
                        kept.append((int(r["seq"]), min(hits)))
            keep_out = "".join(f" AND seq != {int(seq)}" for seq, _ in kept)
            conn.execute(
                "UPDATE outbox_turns SET flushed=delivered, buffered_tokens=0, "
                "blobs=CASE WHEN state='delivered' THEN '[]' ELSE blobs END, "
                "state=CASE WHEN state='delivered' THEN 'done' ELSE state END, updated_at=? "
                "WHERE scope=? AND user_id=? AND flushed < delivered" + keep_out,
                (now, scope, str(user_id)),
            )
            for seq, first in kept:
                conn.execute(
                    "UPDATE outbox_turns SET flushed=?, updated_at=? WHERE seq=?",
                    (first, now, seq),
                )
            _touch_user(conn, scope, str(user_id))
            conn.execute(
                "UPDATE outbox_users SET last_flush_at=?, flush_error=NULL, flush_attempts=0, "
                "next_flush_at=0, rebuffer_ids=? WHERE scope=? AND user_id=?",
                (now, json.dumps(sorted(orphans)), scope, str(user_id)),
            )
            # checked: processed, or an orphan now queued for re-buffering
            conn.execute(
                "DELETE FROM outbox_unconfirmed WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            conn.execute(
                "DELETE FROM outbox_turns WHERE scope=? AND state='done' AND updated_at < ?",
                (scope, now - _KEEP_DONE_SECONDS),
            )

    def flush_unverified(self, scope: str, user_id: UUID, error: str, next_flush_at: float) -> None:
        """The server answered the flush, but whether it processed every blob of ours is not
        proven yet (the check failed, or a processing of the user was still running). The
        rows stay unflushed; the next flush (which finds nothing idle) checks again."""
        with self._tx() as conn:
            _touch_user(conn, scope, str(user_id))
            conn.execute(
                "UPDATE outbox_users SET last_flush_at=?, flush_error=?, "
                "flush_attempts=flush_attempts+1, next_flush_at=? WHERE scope=? AND user_id=?",
                (time.time(), error, next_flush_at, scope, str(user_id)),
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
        self._write(
            "UPDATE outbox_users SET rebuffer_ids='[]' WHERE scope=? AND user_id=?",
            (scope, str(user_id)),
        )

    def set_uncertain(self, seq: int, index: int | None) -> None:
        self._write("UPDATE outbox_turns SET uncertain=? WHERE seq=?", (index, seq))

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
            if holder and holder != owner and row["lease_until"] >= now and owner_alive(holder):
                return False
            conn.execute(
                "UPDATE outbox_users SET lease_owner=?, lease_until=? WHERE scope=? AND user_id=?",
                (owner, now + seconds, scope, str(user_id)),
            )
            return True

    def release(self, scope: str, user_id: UUID, owner: str) -> None:
        self._write(
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
                "DELETE FROM outbox_unconfirmed WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            conn.execute(
                "UPDATE outbox_users SET last_delivery_at=NULL, last_flush_at=NULL, "
                "flush_error=NULL, flush_attempts=0, next_flush_at=0, rebuffer_ids='[]' "
                "WHERE scope=? AND user_id=?",
                (scope, str(user_id)),
            )
            return int(row["n"])

    def undelivered(self, scope: str, user_id: UUID) -> list[UndeliveredTurn]:
        rows = self._all(
            "SELECT * FROM outbox_turns WHERE scope=? AND user_id=? AND "
            "state IN ('pending', 'failed') ORDER BY seq",
            (scope, str(user_id)),
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

    def failures(self, scope: str, user_id: UUID | None = None) -> list[FailedTurn]:
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
            FailedTurn(
                user_id=UUID(r["user_id"]),
                turn_id=r["turn_id"],
                attempts=int(r["attempts"]),
                error=r["last_error"],
                parked=r["state"] == "failed",
                next_attempt_at=(
                    None if r["state"] == "failed" else _datetime(float(r["next_attempt_at"]))
                ),
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
        for uid in set(per_user) | set(states):
            t = per_user.get(uid)
            u = states.get(uid)
            failed = int(t["failed"] or 0) if t else 0
            flush_error = u["flush_error"] if u else None
            last_error = _latest_error(conn, scope, uid) if failed else None
            if flush_error:
                last_error = f"flush: {flush_error}" if last_error is None else last_error
            users.append(
                UserStatus(
                    user_id=UUID(uid),
                    pending_turns=int(t["pending"] or 0) if t else 0,
                    buffered_tokens=int(t["tokens"] or 0) if t else 0,
                    failed=failed,
                    last_flush_at=_datetime(u["last_flush_at"] if u else None),
                    last_error=last_error,
                )
            )
        return memory_status("remote", users, asked=user_id)


def _latest_error(conn: sqlite3.Connection, scope: str, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT last_error FROM outbox_turns WHERE scope=? AND user_id=? AND last_error IS NOT "
        "NULL AND state IN ('pending','failed') ORDER BY updated_at DESC LIMIT 1",
        (scope, user_id),
    ).fetchone()
    return str(row["last_error"]) if row else None


def _touch_user(conn: sqlite3.Connection, scope: str, user_id: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO outbox_users (scope, user_id) VALUES (?, ?)", (scope, user_id)
    )


def _to_row(r: sqlite3.Row) -> TurnRow:
    return TurnRow(
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
