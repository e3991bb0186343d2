"""What the store reports about itself: the status of the buffer (pending, processing and
failed turns), a user's export and flush log, and the daily usage counters.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ...queue.status import memory_status
from ...values import MemoryStatus, UserStatus
from .. import schema as t
from .opening import StoreSetup
from .rows import FAILED, OPEN_STATES, PROCESSING, iso_or_none

__all__ = ["Reports"]


class Reports(StoreSetup):
    """Status, export, flush log and usage (part of :class:`~.Store`)."""

    # -- status ---------------------------------------------------------------------------------
    def status(self, user_id: uuid.UUID | None, backend: str = "embedded") -> MemoryStatus:
        """Pending/processing/failed work per user, counted in turns (a blob from ``insert``
        counts as one turn), plus buffered tokens, last flush time and the last error."""
        b = t.buffer.c

        def turns(state: str | None = None) -> Any:
            # A claim stops at max_tokens, so one turn's rows can be in several states at
            # once (part processing, part idle): count distinct turns per user, never per
            # (user, state), or that turn is pending twice. A blob without a turn id (from
            # ``insert``) is a turn of its own.
            in_state = sa.true() if state is None else b.status == state
            return sa.func.count(sa.distinct(sa.case((in_state, b.turn_id)))) + sa.func.sum(
                sa.case((in_state & b.turn_id.is_(None), 1), else_=0)
            )

        stmt = (
            sa.select(
                b.user_id,
                turns().label("turns"),
                turns(PROCESSING).label("processing"),
                turns(FAILED).label("failed"),
                sa.func.sum(b.token_size).label("tokens"),
            )
            .where(b.status.in_(OPEN_STATES))
            .group_by(b.user_id)
        )
        if user_id is not None:
            stmt = stmt.where(b.user_id == user_id)
        with self.guard("reading the status"), self._read() as conn:
            rows = conn.execute(stmt).all()
            user_ids = {r.user_id for r in rows}
            if user_id is not None:
                user_ids.add(user_id)
            per_user: dict[uuid.UUID, dict[str, Any]] = {
                u: {"pending": 0, "tokens": 0, "processing": 0, "failed": 0} for u in user_ids
            }
            for r in rows:
                per_user[r.user_id] = {
                    "pending": int(r.turns or 0),
                    "tokens": int(r.tokens or 0),
                    "processing": int(r.processing or 0),
                    "failed": int(r.failed or 0),
                }
            last_flush: dict[uuid.UUID, datetime | None] = {}
            errors: dict[uuid.UUID, str | None] = {}
            ids = list(user_ids)
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                for u in conn.execute(
                    sa.select(t.users.c.id, t.users.c.last_flush_at).where(t.users.c.id.in_(chunk))
                ):
                    last_flush[u.id] = u.last_flush_at
                failed_users = [u for u in chunk if per_user[u]["failed"]]
                if failed_users:
                    for e in conn.execute(
                        sa.select(b.user_id, b.last_error)
                        .where(b.user_id.in_(failed_users), b.status == FAILED)
                        .order_by(b.updated_at.desc(), b.seq.desc())
                    ):
                        errors.setdefault(e.user_id, e.last_error)
        statuses = [
            UserStatus(
                user_id=u,
                pending_turns=v["pending"],
                buffered_tokens=v["tokens"],
                processing=v["processing"],
                failed=v["failed"],
                last_flush_at=last_flush.get(u),
                last_error=errors.get(u),
            )
            for u, v in per_user.items()
        ]
        return memory_status(backend, statuses, asked=user_id)

    # -- export and flush log -------------------------------------------------------------------
    def flush_log(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        """The user's committed flushes, oldest first (turn ids in processing order)."""
        f = t.flushes.c
        with self.guard("reading the flush log"), self._read() as conn:
            rows = conn.execute(
                sa.select(t.flushes).where(f.user_id == user_id).order_by(f.seq)
            ).all()
        return [
            {
                "id": str(r.id),
                "blob_type": r.blob_type,
                "turn_ids": list(r.turn_ids),
                "blob_ids": list(r.blob_ids),
                "token_size": int(r.token_size),
                "event_id": str(r.event_id) if r.event_id else None,
                "result": r.result,
                "owner": r.owner,
                "started_at": iso_or_none(r.started_at),
                "created_at": iso_or_none(r.created_at),
            }
            for r in rows
        ]

    def export_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        """Everything stored about the user, as JSON-ready data (ISO dates, string ids)."""
        with self.guard("exporting a user"), self._read() as conn:
            user = conn.execute(sa.select(t.users).where(t.users.c.id == user_id)).first()
            profile_rows = conn.execute(
                sa.select(t.profiles)
                .where(t.profiles.c.user_id == user_id)
                .order_by(t.profiles.c.topic, t.profiles.c.sub_topic, t.profiles.c.id)
            ).all()
            event_rows = conn.execute(
                sa.select(t.events)
                .where(t.events.c.user_id == user_id)
                .order_by(t.events.c.created_at, t.events.c.id)
            ).all()
            gist_rows = conn.execute(
                sa.select(t.gists)
                .where(t.gists.c.user_id == user_id)
                .order_by(t.gists.c.created_at, t.gists.c.id)
            ).all()
            blob_rows = conn.execute(
                sa.select(t.blobs, t.buffer.c.status, t.buffer.c.attempts, t.buffer.c.last_error)
                .select_from(t.blobs.outerjoin(t.buffer, t.buffer.c.blob_id == t.blobs.c.id))
                .where(t.blobs.c.user_id == user_id)
                .order_by(t.blobs.c.created_at, t.blobs.c.turn_id, t.blobs.c.part)
            ).all()
        return {
            "user_id": str(user_id),
            "exists": user is not None,
            "data": user.data if user is not None else None,
            "created_at": iso_or_none(user.created_at) if user is not None else None,
            "last_flush_at": iso_or_none(user.last_flush_at) if user is not None else None,
            "profiles": [
                {
                    "id": str(r.id),
                    "topic": r.topic,
                    "sub_topic": r.sub_topic,
                    "content": r.content,
                    "update_hits": int(r.update_hits),
                    "created_at": iso_or_none(r.created_at),
                    "updated_at": iso_or_none(r.updated_at),
                }
                for r in profile_rows
            ],
            "events": [
                {
                    "id": str(r.id),
                    "event_data": r.event_data,
                    "has_embedding": r.embedding is not None,
                    "created_at": iso_or_none(r.created_at),
                    "updated_at": iso_or_none(r.updated_at),
                }
                for r in event_rows
            ],
            "gists": [
                {
                    "id": str(r.id),
                    "event_id": str(r.event_id),
                    "content": r.content,
                    "created_at": iso_or_none(r.created_at),
                }
                for r in gist_rows
            ],
            "blobs": [
                {
                    "id": str(r.id),
                    "turn_id": r.turn_id,
                    "part": int(r.part),
                    "blob_type": r.blob_type,
                    "blob_data": r.blob_data,
                    "fields": r.fields,
                    "status": r.status,
                    "attempts": int(r.attempts) if r.attempts is not None else None,
                    "last_error": r.last_error,
                    "created_at": iso_or_none(r.created_at),
                }
                for r in blob_rows
            ],
            "flushes": self.flush_log(user_id),
        }

    # -- usage (``/project/billing``, ``/project/usage``) ---------------------------------------
    def add_usage(
        self,
        day: str,
        *,
        inserts: int = 0,
        successes: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        """Add to the day's usage counters (created on first use), atomically."""
        u = t.usage
        values = {
            "total_insert": inserts,
            "total_success_insert": successes,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        ins = self._insert_ignore(u).values(day=day, **values)
        upsert = ins.on_conflict_do_update(
            index_elements=["day"],
            set_={name: u.c[name] + ins.excluded[name] for name in values},
        )
        with self.guard("counting usage"), self._write() as conn:
            conn.execute(upsert)

    def usage_since(self, day: str) -> dict[str, tuple[int, int, int, int]]:
        """Usage per day from ``day`` (inclusive) on: (inserts, successful inserts, input
        tokens, output tokens)."""
        u = t.usage.c
        with self.guard("reading usage"), self._read() as conn:
            rows = conn.execute(sa.select(t.usage).where(u.day >= day)).all()
        return {
            r.day: (
                int(r.total_insert),
                int(r.total_success_insert),
                int(r.input_tokens),
                int(r.output_tokens),
            )
            for r in rows
        }
