"""Recording: writing a turn's blobs, its buffer rows and its ledger entry in one short
transaction, the hot path every ``record()`` takes.

The turn ledger (``mb_turns``) makes a replayed turn id a no-op; buffer rows start ``idle``
and wait for a flush (:mod:`.leases`). Nothing here waits for an LLM. ``prune_turns``
forgets old ledger entries of turns no longer buffered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ... import tokens
from ...errors import NotFoundError
from ...messages import render_blob
from ...models import PROCESSED_BLOB_TYPES, Blob, BlobData, BlobType, ChatBlob, SummaryBlob
from ...tokens import count_tokens
from ...values import RecordReceipt
from .. import schema as t
from . import clock
from .opening import StoreSetup
from .rows import IDLE, turn_blob_id

__all__ = ["Recording"]


class Recording(StoreSetup):
    """Recording turns and blobs into the buffer (part of :class:`~.Store`)."""

    def record_turn(
        self,
        user_id: uuid.UUID,
        turn_id: str,
        blobs: Sequence[ChatBlob],
        *,
        estimates: list[tuple[uuid.UUID, str]] | None = None,
        estimate_limit: int | None = None,
    ) -> tuple[RecordReceipt, int]:
        """Write a turn's blobs and buffer rows in one transaction; a replay is a no-op.

        Returns the receipt and the tokens the turn added to the buffer (0 for a replay). This
        is the hot path: three prepared statements in one short transaction (four the first
        time a user is seen by this process), no aggregate query.

        Each buffer row's ``token_size`` is its rendered text's exact o200k count, one
        tokenizer pass per blob. With ``estimates`` given, a caller that must not wait for
        the tokenizer to load (:func:`..tokens.preload`) gets the text's UTF-8 length instead,
        an upper bound (every o200k token covers at least one byte), and the ``(blob id,
        rendered text)`` of each such row appended to ``estimates``, to set the exact count
        later with :meth:`set_token_sizes`. An upper bound can make a buffer due early,
        never late: no turn waits longer than the policy says. A bound above
        ``estimate_limit`` (the batch cap, past which a claim would park the blob as too big)
        is not used: that blob is counted exactly, waiting for the encoder if need be.
        """
        if not turn_id or len(turn_id) > 255:
            raise ValueError("turn_id must be a non-empty string of at most 255 characters")
        now = clock.utcnow()
        parts: list[tuple[uuid.UUID, ChatBlob, int]] = []
        estimated: list[tuple[uuid.UUID, str]] = []
        for part, blob in enumerate(blobs):
            blob_id = turn_blob_id(user_id, turn_id, part)
            text = render_blob(blob, blob.created_at or now)
            size = count_tokens(text) if estimates is None else tokens.count_tokens_if_ready(text)
            if size is None:
                size = tokens.token_bound(text)
                if estimate_limit is not None and size > estimate_limit:
                    size = count_tokens(text)
                else:
                    estimated.append((blob_id, text))
            parts.append((blob_id, blob, size))
        with self.guard("recording a turn"):
            try:
                known = self._record(user_id, turn_id, parts, now)
            except sa.exc.IntegrityError:
                # The user row vanished (deleted by another process): create it and retry.
                self._known_users.discard(user_id)
                known = self._record(user_id, turn_id, parts, now)
        if known is not None:
            return RecordReceipt(turn_id=turn_id, blob_ids=known, duplicate=True), 0
        if estimates is not None:
            estimates.extend(estimated)
        receipt = RecordReceipt(turn_id=turn_id, blob_ids=tuple(p[0] for p in parts))
        return receipt, sum(p[2] for p in parts)

    def set_token_sizes(self, sizes: Mapping[uuid.UUID, int]) -> int:
        """Replace the token sizes of these blobs' buffer rows (exact counts for the upper
        bounds ``record_turn(estimates=...)`` wrote). Returns the rows changed."""
        if not sizes:
            return 0
        b = t.buffer.c
        stmt = (
            sa.update(t.buffer)
            .where(b.blob_id == sa.bindparam("b_blob_id"))
            .values(token_size=sa.bindparam("b_size"))
        )
        rows = [{"b_blob_id": k, "b_size": v} for k, v in sizes.items()]
        with self.guard("correcting token counts"), self._write() as conn:
            if self.dialect == "postgresql":
                # Take the users' row locks first, as a claim does: a claim skips buffer rows
                # locked by another transaction (SKIP LOCKED), and skipping a row being
                # corrected here would process a user's turns out of order. This way a
                # claim waits for the correction to commit (and vice versa).
                users = sa.select(b.user_id).where(b.blob_id.in_(list(sizes))).distinct()
                conn.execute(
                    sa.select(t.users.c.id)
                    .where(t.users.c.id.in_(users))
                    .order_by(t.users.c.id)
                    .with_for_update(key_share=True)
                ).all()
            return int(conn.execute(stmt, rows).rowcount or 0)

    def _record(
        self,
        user_id: uuid.UUID,
        turn_id: str,
        parts: list[tuple[uuid.UUID, ChatBlob, int]],
        now: datetime,
    ) -> tuple[uuid.UUID, ...] | None:
        """The record transaction; returns the stored blob ids if the turn was a replay."""
        recorder, lock = self._sqlite_recorder, self._write_lock
        if recorder is not None and lock is not None:  # a SQLite file: never ``_serial``
            with lock:
                stored = recorder.record(
                    user_id, turn_id, parts, now, ensure_user=user_id not in self._known_users
                )
            if stored is not None:
                return stored
        else:
            with self._write() as conn:
                if user_id not in self._known_users:
                    self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
                turn_row = {
                    "user_id": user_id,
                    "turn_id": turn_id,
                    "blob_ids": [str(p[0]) for p in parts],
                    "created_at": now,
                }
                inserted = conn.execute(self._insert_turn, turn_row).first()
                if inserted is None:
                    stored = conn.execute(
                        sa.select(t.turns.c.blob_ids).where(
                            t.turns.c.user_id == user_id, t.turns.c.turn_id == turn_id
                        )
                    ).scalar_one()
                    return tuple(uuid.UUID(x) for x in stored)
                if parts:
                    conn.execute(
                        self._insert_blobs,
                        [
                            self._blob_row(user_id, blob_id, blob, now, turn_id, part)
                            for part, (blob_id, blob, _) in enumerate(parts)
                        ],
                    )
                    conn.execute(
                        self._insert_buffer,
                        [
                            self._buffer_row(user_id, blob_id, blob, now, turn_id, token_size=n)
                            for blob_id, blob, n in parts
                        ],
                    )
        if len(self._known_users) > 100_000:
            self._known_users.clear()
        self._known_users.add(user_id)
        return None

    def insert_blob(self, user_id: uuid.UUID, blob: Blob) -> tuple[uuid.UUID, int]:
        """Store one blob (the seed endpoint). Chat and summary blobs are buffered; the other
        types are stored only (Memobase cannot process them). Returns the id and the user's
        idle tokens of that blob type afterwards."""
        now = clock.utcnow()
        blob_id = uuid.uuid4()
        processed = blob.type in PROCESSED_BLOB_TYPES
        with self.guard("inserting a blob"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            conn.execute(sa.insert(t.blobs), [self._blob_row(user_id, blob_id, blob, now)])
            if not processed:
                return blob_id, 0
            assert isinstance(blob, ChatBlob | SummaryBlob)
            conn.execute(sa.insert(t.buffer), [self._buffer_row(user_id, blob_id, blob, now)])
            idle = self._idle_tokens(conn, user_id, blob.type)
        return blob_id, idle

    @staticmethod
    def _blob_row(
        user_id: uuid.UUID,
        blob_id: uuid.UUID,
        blob: Blob,
        now: datetime,
        turn_id: str | None = None,
        part: int = 0,
    ) -> dict[str, Any]:
        data = blob.model_dump(mode="json", exclude={"type", "fields", "created_at"})
        return {
            "id": blob_id,
            "user_id": user_id,
            "turn_id": turn_id,
            "part": part,
            "blob_type": str(blob.type),
            "blob_data": data,
            "fields": blob.fields,
            # An explicit blob time is honoured (e.g. importing history); Memobase uses insert time.
            "created_at": blob.created_at or now,
            "updated_at": now,
        }

    @staticmethod
    def _buffer_row(
        user_id: uuid.UUID,
        blob_id: uuid.UUID,
        blob: ChatBlob | SummaryBlob,
        now: datetime,
        turn_id: str | None = None,
        *,
        token_size: int | None = None,
    ) -> dict[str, Any]:
        if token_size is None:
            token_size = count_tokens(render_blob(blob, blob.created_at or now))
        return {
            "user_id": user_id,
            "blob_id": blob_id,
            "turn_id": turn_id,
            "blob_type": str(blob.type),
            "token_size": token_size,
            "status": IDLE,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _idle_tokens(conn: Connection, user_id: uuid.UUID, blob_type: BlobType) -> int:
        b = t.buffer.c
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(b.token_size), 0)).where(
                b.user_id == user_id, b.blob_type == str(blob_type), b.status == IDLE
            )
        ).scalar_one()
        return int(total)

    def idle_tokens(self, user_id: uuid.UUID, blob_type: BlobType) -> int:
        with self.guard("reading the buffer"), self._read() as conn:
            return self._idle_tokens(conn, user_id, blob_type)

    def get_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        b = t.blobs.c
        with self.guard("reading a blob"), self._read() as conn:
            row = conn.execute(
                sa.select(b.blob_type, b.blob_data, b.fields, b.created_at, b.updated_at).where(
                    b.user_id == user_id, b.id == blob_id
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"Blob {blob_id} of user {user_id} does not exist. Processed chat blobs are "
                "deleted after their buffer is flushed (as Memobase does)."
            )
        return BlobData(
            blob_type=BlobType(row.blob_type),
            blob_data=row.blob_data,
            fields=row.fields,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- the turn ledger ------------------------------------------------------------------------
    def prune_turns(self, before: datetime, *, limit: int = 5000) -> int:
        """Forget up to ``limit`` ledger entries recorded before ``before`` whose turns are no
        longer buffered. Returns how many went.

        The ledger (``mb_turns``) is what makes a replayed turn id a no-op; kept forever it
        grows by one row per turn. A turn still buffered (pending, processing or failed)
        always keeps its entry, so nothing can be processed twice; a replay of a pruned,
        processed turn is recorded again. Small batches keep each write short.
        """
        turns, b = t.turns, t.buffer.c
        still_buffered = (
            sa.select(b.seq)
            .where(b.user_id == turns.c.user_id, b.turn_id == turns.c.turn_id)
            .exists()
        )
        victims = (
            sa.select(turns.c.user_id, turns.c.turn_id)
            .where(turns.c.created_at < before, ~still_buffered)
            .limit(limit)
        )
        with self.guard("pruning the turn ledger"), self._write() as conn:
            keys = [(r.user_id, r.turn_id) for r in conn.execute(victims)]
            if keys:
                conn.execute(
                    sa.delete(turns).where(sa.tuple_(turns.c.user_id, turns.c.turn_id).in_(keys))
                )
            return len(keys)
