"""The buffer's state machine: which users are due, claiming a batch under a lease, renewing
it, committing, failing or releasing the flush (the failed turns: :mod:`.failed_turns`).

A buffer row goes ``idle`` -> ``processing`` (claimed, with a lease owner and expiry) ->
``done`` (committed, in the same transaction as the flush's results) or ``failed`` (retried
at ``next_attempt_at``; parked when that is ``None``). A claim first locks the user's row
(PostgreSQL ``FOR NO KEY UPDATE``; on SQLite the ``BEGIN IMMEDIATE`` transaction is
exclusive) and refuses while the user has rows under a live lease, so one flush per user
runs at a time across threads and processes, in the order the turns were recorded. A
commit checks that the lease is still its own, which makes a batch commit at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...models import BlobData, BlobType, ChatBlob, ChatModalResponse, SummaryBlob
from .. import fts
from .. import schema as t
from ..plan import Claim, ClaimedBlob, FlushPlan
from ..search import event_text
from . import clock
from .opening import StoreSetup
from .rows import (
    BUSY,
    DONE,
    FAILED,
    IDLE,
    OPEN_STATES,
    PROCESSED_TYPES,
    PROCESSING,
    DueUser,
    LeaseLostError,
    _Busy,
    as_utc,
    new_row_id,
)

__all__ = ["Leases"]


class Leases(StoreSetup):
    """Due users, claims, leases, commits and failures (part of :class:`~.Store`)."""

    def due_users(
        self,
        *,
        threshold: int,
        idle_seconds: float | None,
        drain: bool = False,
        limit: int = 100,
    ) -> list[DueUser]:
        """Users whose buffer should be flushed now, with the reason.

        Due: idle tokens over ``threshold`` (strict ``>``, as Memobase); newest idle row older
        than ``idle_seconds``; failed rows whose backoff elapsed; rows left ``processing`` under
        an expired lease (a dead process). With ``drain`` any idle row is due (``close()``).
        A user with a live lease is skipped (someone is flushing them), and so is a user whose
        failed rows are still backing off (processing newer turns first would break order).

        Oldest waiting first (the earliest open row), so a backlog longer than ``limit`` is
        worked off in the order the users started waiting and none is passed over for ever;
        the database's own grouping order would prefer the same users pass after pass.
        """
        now = clock.utcnow()
        b = t.buffer.c
        is_idle = b.status == IDLE
        stmt = (
            sa.select(
                b.user_id,
                b.blob_type,
                sa.func.sum(sa.case((is_idle, b.token_size), else_=0)).label("idle_tokens"),
                sa.func.sum(sa.case((is_idle, 1), else_=0)).label("idle_rows"),
                sa.func.max(sa.case((is_idle, b.created_at), else_=None)).label("newest"),
                sa.func.min(b.created_at).label("oldest"),
                sa.func.sum(
                    sa.case(
                        ((b.status == FAILED) & (b.next_attempt_at <= now), 1),
                        else_=0,
                    )
                ).label("retry_due"),
                sa.func.sum(
                    sa.case(((b.status == FAILED) & (b.next_attempt_at > now), 1), else_=0)
                ).label("backing_off"),
                sa.func.sum(
                    sa.case(((b.status == PROCESSING) & (b.lease_expires <= now), 1), else_=0)
                ).label("expired"),
                sa.func.sum(
                    sa.case(((b.status == PROCESSING) & (b.lease_expires > now), 1), else_=0)
                ).label("active"),
            )
            .where(b.status.in_(OPEN_STATES), b.blob_type.in_(PROCESSED_TYPES))
            .group_by(b.user_id, b.blob_type)
        )
        with self.guard("looking for due buffers"), self._read() as conn:
            rows = conn.execute(stmt).all()
        due: list[tuple[datetime, DueUser]] = []
        busy_users = {r.user_id for r in rows if r.active}
        for r in rows:
            if r.user_id in busy_users or r.backing_off:
                continue
            reason = None
            if r.expired:
                reason = "expired lease"
            elif r.retry_due:
                reason = "retry"
            elif int(r.idle_tokens or 0) > threshold:
                reason = "threshold"
            elif r.idle_rows and drain:
                reason = "drain"
            elif r.idle_rows and idle_seconds is not None and r.newest is not None:
                newest = as_utc(r.newest)
                if newest <= now - timedelta(seconds=idle_seconds):
                    reason = "idle"
            if reason:
                due.append((as_utc(r.oldest), DueUser(r.user_id, BlobType(r.blob_type), reason)))
        due.sort(key=lambda pair: pair[0])
        return [user for _, user in due[:limit]]

    def claim(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType,
        owner: str,
        *,
        lease_seconds: float,
        max_tokens: int,
        force: bool,
    ) -> Claim | _Busy | None:
        """Lease the user's next batch (oldest first, at most ``max_tokens``).

        Returns :data:`BUSY` when another flush holds a live lease on this user, ``None``
        when nothing is eligible. ``force`` (explicit flushes) also takes failed rows whose
        backoff has not elapsed. Rows left ``processing`` by a dead owner are taken over.
        A single blob larger than ``max_tokens`` can never be processed: it is parked as
        failed with an explanation (never dropped) and the claim goes on with the next rows.
        """
        now = clock.utcnow()
        b = t.buffer.c
        with self.guard("claiming a buffer"), self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.select(t.users.c.id)
                    .where(t.users.c.id == user_id)
                    .with_for_update(key_share=True)
                )
            active = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.buffer)
                .where(b.user_id == user_id, b.status == PROCESSING, b.lease_expires > now)
            ).scalar_one()
            if active:
                return BUSY
            failed_ok = (b.status == FAILED) & b.next_attempt_at.is_not(None)
            if not force:
                backing_off = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.buffer)
                    .where(
                        b.user_id == user_id,
                        b.blob_type == str(blob_type),
                        b.status == FAILED,
                        b.next_attempt_at > now,
                    )
                ).scalar_one()
                if backing_off:
                    return None
            eligible = sa.or_(
                b.status == IDLE,
                failed_ok,
                (b.status == PROCESSING) & (b.lease_expires <= now),
            )
            stmt = (
                sa.select(b.seq, b.blob_id, b.turn_id, b.token_size, b.attempts)
                .where(b.user_id == user_id, b.blob_type == str(blob_type), eligible)
                .order_by(b.seq)
                .limit(5000)
            )
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            candidates = conn.execute(stmt).all()
            chosen: list[Any] = []
            total = 0
            for row in candidates:
                if row.token_size > max_tokens and not chosen:
                    self._park_oversized(conn, row.seq, row.token_size, max_tokens, now)
                    continue
                if chosen and total + row.token_size > max_tokens:
                    break
                if row.token_size > max_tokens:
                    break
                chosen.append(row)
                total += row.token_size
            if not chosen:
                return None
            seqs = tuple(int(r.seq) for r in chosen)
            conn.execute(
                sa.update(t.buffer)
                .where(b.seq.in_(seqs))
                .values(
                    status=PROCESSING,
                    lease_owner=owner,
                    lease_expires=now + timedelta(seconds=lease_seconds),
                    updated_at=now,
                )
            )
            bl = t.blobs.c
            loaded = {
                r.id: r
                for r in conn.execute(
                    sa.select(bl.id, bl.blob_type, bl.blob_data, bl.fields, bl.created_at).where(
                        bl.user_id == user_id, bl.id.in_([r.blob_id for r in chosen])
                    )
                )
            }
        claimed: list[ClaimedBlob] = []
        for r in chosen:
            data = loaded[r.blob_id]
            blob = BlobData(
                blob_type=BlobType(data.blob_type), blob_data=data.blob_data, fields=data.fields
            ).to_blob()
            assert isinstance(blob, ChatBlob | SummaryBlob)
            claimed.append(ClaimedBlob(r.blob_id, r.turn_id, blob, data.created_at, r.token_size))
        return Claim(
            user_id=user_id,
            blob_type=blob_type,
            owner=owner,
            seqs=seqs,
            blobs=tuple(claimed),
            attempts=max(int(r.attempts) for r in chosen),
            started_at=now,
        )

    @staticmethod
    def _park_oversized(
        conn: Connection, seq: int, tokens: int, max_tokens: int, now: datetime
    ) -> None:
        conn.execute(
            sa.update(t.buffer)
            .where(t.buffer.c.seq == seq)
            .values(
                status=FAILED,
                next_attempt_at=None,
                lease_owner=None,
                lease_expires=None,
                attempts=t.buffer.c.attempts + 1,
                last_error=(
                    f"This blob has {tokens} tokens, more than FlushPolicy.max_process_tokens "
                    f"({max_tokens}); it can never be processed as one batch. Raise "
                    "max_process_tokens and call retry_failed(), or discard_failed()."
                ),
                updated_at=now,
            )
        )

    def renew(self, owners: Sequence[str], lease_seconds: float) -> int:
        """Extend the leases of in-flight flushes (the lease keeper calls this)."""
        if not owners:
            return 0
        b = t.buffer.c
        now = clock.utcnow()
        with self.guard("renewing leases"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(b.lease_owner.in_(list(owners)), b.status == PROCESSING)
                    .values(lease_expires=now + timedelta(seconds=lease_seconds))
                ).rowcount
            )

    def commit_flush(
        self, claim: Claim, plan: FlushPlan, *, keep_blobs: bool = False
    ) -> ChatModalResponse:
        """Write a flush's results and retire its buffer rows in ONE transaction.

        Raises :class:`LeaseLostError` (and writes nothing) if the claim's rows are no longer
        this flush's: another flush took them over after the lease expired, or the user was
        deleted meanwhile. That check is what makes a batch commit at most once.
        """
        now = clock.utcnow()
        b = t.buffer.c
        uid = claim.user_id
        # Ids and search terms are made before the transaction, which stays short.
        event_id = new_row_id()
        gist_rows: list[dict[str, Any]] = []
        search_rows: list[dict[str, Any]] = []
        if plan.event is not None:
            gist_rows = [
                {
                    "id": new_row_id(),
                    "user_id": uid,
                    "event_id": event_id,
                    "content": content,
                    "embedding": embedding,
                    "created_at": now,
                    "updated_at": now,
                }
                for content, embedding in plan.gists
            ]
            search_rows = [
                fts.doc_row(uid, event_id, "event", event_id, event_text(plan.event), now),
                *(
                    fts.doc_row(uid, g["id"], "gist", event_id, g["content"], now)
                    for g in gist_rows
                ),
            ]
        with self.guard("saving a flush"), self._write() as conn:
            owned = conn.execute(
                sa.update(t.buffer)
                .where(
                    b.seq.in_(claim.seqs),
                    b.user_id == uid,
                    b.lease_owner == claim.owner,
                    b.status == PROCESSING,
                )
                .values(
                    status=DONE,
                    lease_owner=None,
                    lease_expires=None,
                    next_attempt_at=None,
                    last_error=None,
                    updated_at=now,
                )
            ).rowcount
            if owned != len(claim.seqs):
                raise LeaseLostError(
                    f"The flush of user {uid} lost its lease before committing; another "
                    "flush owns these turns now, so this one wrote nothing."
                )
            response = ChatModalResponse()
            if plan.event is not None:
                conn.execute(
                    sa.insert(t.events).values(
                        id=event_id,
                        user_id=uid,
                        event_data=plan.event.model_dump(mode="json"),
                        embedding=plan.event_embedding,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if gist_rows:
                    conn.execute(sa.insert(t.gists), gist_rows)
                # The search index, in the same transaction (FTS5 follows by trigger).
                conn.execute(sa.insert(t.search_docs), search_rows)
                response.event_id = event_id
            p = t.profiles.c
            if plan.delete:
                conn.execute(sa.delete(t.profiles).where(p.user_id == uid, p.id.in_(plan.delete)))
                response.delete_profiles = list(plan.delete)
            for upd in plan.update:
                changed = conn.execute(
                    sa.update(t.profiles)
                    .where(p.user_id == uid, p.id == upd.id)
                    .values(content=upd.content, update_hits=upd.update_hits, updated_at=now)
                ).rowcount
                if changed:  # a profile deleted by the app meanwhile is not resurrected
                    response.update_profiles.append(upd.id)
            if plan.add:
                rows: list[dict[str, Any]] = [
                    {
                        "id": new_row_id(),
                        "user_id": uid,
                        "topic": a.topic,
                        "sub_topic": a.sub_topic,
                        "content": a.content,
                        "update_hits": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for a in plan.add
                ]
                conn.execute(sa.insert(t.profiles), rows)
                response.add_profiles = [r["id"] for r in rows]
            conn.execute(
                sa.insert(t.flushes).values(
                    id=uuid.uuid4(),
                    user_id=uid,
                    blob_type=str(claim.blob_type),
                    turn_ids=claim.turn_ids,
                    blob_ids=[str(x.blob_id) for x in claim.blobs],
                    token_size=claim.token_size,
                    event_id=response.event_id,
                    result=response.model_dump(mode="json"),
                    owner=claim.owner,
                    started_at=claim.started_at,
                    created_at=now,
                )
            )
            conn.execute(sa.update(t.users).where(t.users.c.id == uid).values(last_flush_at=now))
            # Processed chat blobs are deleted (their buffer rows go by cascade), as Memobase
            # does; summary blobs are kept with a ``done`` buffer row.
            if claim.blob_type == BlobType.chat and not keep_blobs:
                conn.execute(
                    sa.delete(t.blobs).where(
                        t.blobs.c.user_id == uid,
                        t.blobs.c.id.in_([x.blob_id for x in claim.blobs]),
                    )
                )
        return response

    def fail_flush(self, claim: Claim, error: str, retry_at: datetime | None) -> int:
        """Give the claim's rows back as ``failed`` (retried at ``retry_at``; ``None`` parks
        them until ``retry_failed``). Only rows this flush still owns are touched."""
        b = t.buffer.c
        with self.guard("recording a failed flush"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(
                        b.seq.in_(claim.seqs),
                        b.user_id == claim.user_id,
                        b.lease_owner == claim.owner,
                    )
                    .values(
                        status=FAILED,
                        attempts=b.attempts + 1,
                        last_error=error[:4000],
                        next_attempt_at=retry_at,
                        lease_owner=None,
                        lease_expires=None,
                        updated_at=clock.utcnow(),
                    )
                ).rowcount
            )

    def release(self, claim: Claim) -> int:
        """Give the claim's rows back as ``idle`` without counting an attempt (shutdown)."""
        b = t.buffer.c
        with self.guard("releasing a buffer"), self._write() as conn:
            return int(
                conn.execute(
                    sa.update(t.buffer)
                    .where(
                        b.seq.in_(claim.seqs),
                        b.user_id == claim.user_id,
                        b.lease_owner == claim.owner,
                    )
                    .values(
                        status=IDLE, lease_owner=None, lease_expires=None, updated_at=clock.utcnow()
                    )
                ).rowcount
            )
