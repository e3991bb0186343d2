"""Users and their stored blobs outside the flush: create, read, update, list (Memobase's
``/users`` surface) and the blob and buffer listings of ``/users/blobs`` and
``/users/buffer/capacity``.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from ...models import BlobType
from .. import schema as t
from . import clock
from .opening import StoreSetup
from .rows import StoredUser, escape_like

__all__ = ["UserRows"]


class UserRows(StoreSetup):
    """The users table and the per-user blob listings (part of :class:`~.Store`)."""

    # -- users ----------------------------------------------------------------------------------
    def ensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        now = clock.utcnow()
        with self.guard("creating a user"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            if data is not None:
                conn.execute(
                    sa.update(t.users)
                    .where(t.users.c.id == user_id)
                    .values(data=data, updated_at=now)
                )

    def delete_user(self, user_id: uuid.UUID) -> bool:
        """Delete the user and (by cascade) every row about them. True if they existed."""
        self._known_users.discard(user_id)
        with self.guard("deleting a user"), self._write() as conn:
            return bool(conn.execute(sa.delete(t.users).where(t.users.c.id == user_id)).rowcount)

    # -- Memobase's user, blob and buffer listings ----------------------------------------------
    # (issue 16.5; what ``GET/PUT /users``, ``/users/blobs`` and ``/users/buffer/capacity``
    # need)
    def create_user(self, user_id: uuid.UUID, data: dict[str, Any] | None) -> bool:
        """Create the user; False (nothing written) when the id exists already."""
        now = clock.utcnow()
        ins = (
            self._insert_ignore(t.users)
            .values(id=user_id, data=data, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(t.users.c.id)
        )
        with self.guard("creating a user"), self._write() as conn:
            return conn.execute(ins).first() is not None

    def get_user(self, user_id: uuid.UUID) -> StoredUser | None:
        u = t.users.c
        with self.guard("reading a user"), self._read() as conn:
            row = conn.execute(
                sa.select(u.id, u.data, u.created_at, u.updated_at).where(u.id == user_id)
            ).first()
        if row is None:
            return None
        return StoredUser(row.id, row.data, row.created_at, row.updated_at)

    def set_user_data(self, user_id: uuid.UUID, data: dict[str, Any] | None) -> bool:
        """Replace the user's data as a whole; False when the user does not exist."""
        with self.guard("updating a user"), self._write() as conn:
            return bool(
                conn.execute(
                    sa.update(t.users)
                    .where(t.users.c.id == user_id)
                    .values(data=data, updated_at=clock.utcnow())
                ).rowcount
            )

    def list_users(
        self,
        *,
        search: str,
        order_by: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[StoredUser], int]:
        """One page of users with their profile and event counts, and how many match.

        ``search`` is a case-insensitive substring of the user id (with or without hyphens)
        or of the user's data as JSON text.
        """
        u = t.users.c
        profile_count = (
            sa.select(sa.func.count())
            .where(t.profiles.c.user_id == u.id)
            .scalar_subquery()
            .label("profile_count")
        )
        event_count = (
            sa.select(sa.func.count())
            .where(t.events.c.user_id == u.id)
            .scalar_subquery()
            .label("event_count")
        )
        where: list[Any] = []
        needle = search.strip()
        if needle:
            id_text = sa.cast(u.id, sa.String)
            pattern = f"%{escape_like(needle)}%"
            bare = f"%{escape_like(needle.replace('-', ''))}%"
            where.append(
                sa.or_(
                    id_text.ilike(pattern, escape="\\"),
                    id_text.ilike(bare, escape="\\"),
                    sa.cast(u.data, sa.Text).ilike(pattern, escape="\\"),
                )
            )
        keys = {
            "updated_at": u.updated_at,
            "profile_count": profile_count,
            "event_count": event_count,
        }
        key = keys.get(order_by)
        if key is None:
            raise ValueError(f"order_by must be one of {sorted(keys)}, got {order_by!r}")
        ordering = [key.desc() if descending else key.asc(), u.id]
        stmt = (
            sa.select(u.id, u.data, u.created_at, u.updated_at, profile_count, event_count)
            .where(*where)
            .order_by(*ordering)
            .limit(limit)
            .offset(offset)
        )
        with self.guard("listing users"), self._read() as conn:
            rows = conn.execute(stmt).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(t.users).where(*where))
            count = int(total.scalar_one())
        users = [
            StoredUser(
                r.id,
                r.data,
                r.created_at,
                r.updated_at,
                profile_count=int(r.profile_count),
                event_count=int(r.event_count),
            )
            for r in rows
        ]
        return users, count

    def list_blob_ids(
        self, user_id: uuid.UUID, blob_type: BlobType, *, offset: int, limit: int
    ) -> list[uuid.UUID]:
        """The user's stored blob ids of one type, oldest first."""
        b = t.blobs.c
        with self.guard("listing blobs"), self._read() as conn:
            return list(
                conn.execute(
                    sa.select(b.id)
                    .where(b.user_id == user_id, b.blob_type == str(blob_type))
                    .order_by(b.created_at, b.turn_id, b.part, b.id)
                    .offset(offset)
                    .limit(limit)
                ).scalars()
            )

    def delete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> bool:
        """Delete one blob (its buffer row goes by cascade). True if it existed.

        A flush holding that blob's row finds its lease short of one row at commit and writes
        nothing; its other rows are taken over once the lease expires.
        """
        b = t.blobs.c
        with self.guard("deleting a blob"), self._write() as conn:
            return bool(
                conn.execute(
                    sa.delete(t.blobs).where(b.user_id == user_id, b.id == blob_id)
                ).rowcount
            )

    def buffer_blob_ids(
        self, user_id: uuid.UUID, blob_type: BlobType, status: str
    ) -> list[uuid.UUID]:
        """Blob ids of the user's buffer rows in ``status``, in buffer order."""
        b = t.buffer.c
        with self.guard("reading the buffer"), self._read() as conn:
            return list(
                conn.execute(
                    sa.select(b.blob_id)
                    .where(b.user_id == user_id, b.blob_type == str(blob_type), b.status == status)
                    .order_by(b.seq)
                ).scalars()
            )
