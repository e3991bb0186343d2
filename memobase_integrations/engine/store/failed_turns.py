"""Failed turns: listing them, making them eligible again, discarding them.

A flush that fails leaves its rows ``failed`` (see :mod:`.leases`); the worker retries them
when their backoff elapses, or never when they are parked. These are the calls a person (or
the app) uses on them: ``failures``, ``retry_failed`` and ``discard_failed``. A turn cut
into several blobs fails as a whole, so everything here counts turns, not rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ...values import FailedTurn
from .. import schema as t
from . import clock
from .opening import StoreSetup
from .rows import FAILED, IDLE

__all__ = ["FailedTurns"]


class FailedTurns(StoreSetup):
    """The failed turns of the buffer (part of :class:`~.Store`)."""

    def _failed_rows(self, conn: sa.Connection, user_id: uuid.UUID | None) -> list[sa.Row[Any]]:
        b = t.buffer.c
        stmt = (
            sa.select(
                b.seq, b.user_id, b.blob_id, b.turn_id, b.attempts, b.last_error, b.next_attempt_at
            )
            .where(b.status == FAILED)
            .order_by(b.seq)
        )
        if user_id is not None:
            stmt = stmt.where(b.user_id == user_id)
        return list(conn.execute(stmt))

    def failures(self, user_id: uuid.UUID | None = None) -> list[FailedTurn]:
        """One entry per failed turn (a blob from ``insert`` is a turn of its own), oldest
        first. A turn cut into several blobs fails as a whole (its rows are one batch)."""
        with self.guard("reading failed turns"), self._read() as conn:
            rows = self._failed_rows(conn, user_id)
        turns: dict[tuple[uuid.UUID, str], list[sa.Row[Any]]] = {}
        for r in rows:
            turns.setdefault((r.user_id, r.turn_id or f"blob:{r.blob_id}"), []).append(r)
        found = []
        for group in turns.values():
            parked = any(r.next_attempt_at is None for r in group)
            found.append(
                FailedTurn(
                    user_id=group[0].user_id,
                    turn_id=group[0].turn_id,
                    attempts=max(int(r.attempts) for r in group),
                    error=next((r.last_error for r in group if r.last_error), "failed"),
                    parked=parked,
                    next_attempt_at=None if parked else max(r.next_attempt_at for r in group),
                )
            )
        return found

    @staticmethod
    def _turns_in(rows: Sequence[sa.Row[Any]]) -> int:
        return len({(r.user_id, r.turn_id or f"blob:{r.blob_id}") for r in rows})

    def retry_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Make failed rows eligible now (also parked ones), one user's or all. Returns the
        number of turns."""
        b = t.buffer.c
        with self.guard("retrying failed turns"), self._write() as conn:
            rows = self._failed_rows(conn, user_id)
            if rows:
                conn.execute(
                    sa.update(t.buffer)
                    .where(b.seq.in_([r.seq for r in rows]), b.status == FAILED)
                    .values(status=IDLE, next_attempt_at=None, updated_at=clock.utcnow())
                )
            return self._turns_in(rows)

    def discard_failed(self, user_id: uuid.UUID | None = None) -> int:
        """Delete failed blobs (and their buffer rows), one user's or all. Returns the number
        of turns."""
        with self.guard("discarding failed turns"), self._write() as conn:
            rows = self._failed_rows(conn, user_id)
            if rows:
                conn.execute(sa.delete(t.blobs).where(t.blobs.c.id.in_([r.blob_id for r in rows])))
            return self._turns_in(rows)
