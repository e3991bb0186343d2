"""The memory itself: profile rows, events and their gists, the project's profile config,
and the reads a context and a search make of them. Every query is scoped by ``user_id`` in
SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import NotFoundError
from ...models import EventData, EventGist, EventGistData, UserEvent
from .. import fts
from .. import schema as t
from ..plan import StoredProfile
from . import clock
from .opening import StoreSetup
from .rows import (
    NO_CONFIG_ROW,
    ConfigState,
    ContextRows,
    StoredEmbedded,
    event_model,
    gist_model,
    new_row_id,
)

__all__ = ["MemoryRows"]


class MemoryRows(StoreSetup):
    """Profiles, events, gists and the project config (part of :class:`~.Store`)."""

    # -- profiles -------------------------------------------------------------------------------
    def list_profiles(self, user_id: uuid.UUID) -> list[StoredProfile]:
        """The user's profile rows, most recently updated first (Memobase's order); rows of
        one flush in the order it wrote them (time-ordered ids, see :func:`new_row_id`)."""
        with self.guard("reading profiles"), self._read() as conn:
            return self._profiles(conn, user_id)

    def _profiles(self, conn: Connection, user_id: uuid.UUID) -> list[StoredProfile]:
        rows = conn.execute(self._q_profiles, {"uid": user_id}).all()
        return [
            StoredProfile(
                id=r.id,
                topic=r.topic,
                sub_topic=r.sub_topic,
                content=r.content,
                update_hits=int(r.update_hits),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    def context_rows(
        self, user_id: uuid.UUID, *, since: datetime, limit: int, config_stamp: object
    ) -> ContextRows:
        """What ``context()`` reads, in one read transaction, one query per table: the
        project config's version (its ``updated_at``; the text only when that differs from
        ``config_stamp``, the version the caller has resolved), the user's profile rows
        (:meth:`list_profiles`' order) and the newest ``limit`` gists since ``since``."""
        if self._sqlite_reader is not None:
            with self.guard("reading the context"):
                state, profile_rows, gist_rows = self._sqlite_reader.read(
                    user_id, since, limit, config_stamp, NO_CONFIG_ROW
                )
            return ContextRows(
                config=None if state is None else ConfigState(stamp=state[0], text=state[1]),
                profiles=[StoredProfile(*r) for r in profile_rows],
                gists=[
                    EventGist(
                        id=r[0],
                        gist_data=EventGistData(content=r[1]),
                        created_at=r[2],
                        updated_at=r[3],
                    )
                    for r in gist_rows
                ],
            )
        with self.guard("reading the context"), self._read() as conn:
            config = self._config_if_changed(conn, config_stamp)
            profiles = self._profiles(conn, user_id)
            rows = conn.execute(self._q_gists, {"uid": user_id, "since": since, "limit": limit})
            gists = [gist_model(r) for r in rows]
        return ContextRows(config=config, profiles=profiles, gists=gists)

    def profile_config_if_changed(self, config_stamp: object) -> ConfigState | None:
        """The project config's ``(version, text)`` when its version is not ``config_stamp``;
        ``None`` when it is (a primary-key read of one timestamp: the cheap check that lets
        every process cache its resolved config and still see another process's change)."""
        with self.guard("reading the profile config"), self._read() as conn:
            return self._config_if_changed(conn, config_stamp)

    def _config_if_changed(self, conn: Connection, config_stamp: object) -> ConfigState | None:
        stamp = conn.execute(self._q_config_stamp).scalar_one_or_none()
        if (NO_CONFIG_ROW if stamp is None else stamp) == config_stamp:
            return None
        row = None if stamp is None else conn.execute(self._q_config).first()
        if row is None:
            return ConfigState(stamp=NO_CONFIG_ROW, text=None)
        return ConfigState(stamp=row.updated_at, text=row.profile_config)

    def add_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        now = clock.utcnow()
        pid = new_row_id()
        with self.guard("adding a profile"), self._write() as conn:
            self._ensure_user(conn, self._insert_ignore(t.users), user_id, now)
            conn.execute(
                sa.insert(t.profiles).values(
                    id=pid,
                    user_id=user_id,
                    topic=topic,
                    sub_topic=sub_topic,
                    content=content,
                    update_hits=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        return pid

    def update_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None,
        sub_topic: str | None,
    ) -> None:
        values: dict[str, Any] = {"content": content, "updated_at": clock.utcnow()}
        if topic is not None:
            values["topic"] = topic
        if sub_topic is not None:
            values["sub_topic"] = sub_topic
        p = t.profiles.c
        with self.guard("updating a profile"), self._write() as conn:
            changed = conn.execute(
                sa.update(t.profiles).where(p.user_id == user_id, p.id == profile_id).values(values)
            ).rowcount
        if not changed:
            raise NotFoundError(f"Profile {profile_id} of user {user_id} does not exist.")

    def _delete_owned(
        self, table: sa.Table, what: str, user_id: uuid.UUID, row_id: uuid.UUID
    ) -> None:
        """Delete one row of ``user_id`` by id (scoped in SQL); NotFoundError if none."""
        c = table.c
        with self.guard(f"deleting the {what}"), self._write() as conn:
            gone = conn.execute(
                sa.delete(table).where(c.user_id == user_id, c.id == row_id)
            ).rowcount
        if not gone:
            raise NotFoundError(f"{what.capitalize()} {row_id} of user {user_id} does not exist.")

    def delete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        self._delete_owned(t.profiles, "profile", user_id, profile_id)

    # -- events and gists -----------------------------------------------------------------------
    def list_events(
        self, user_id: uuid.UUID, *, limit: int | None, since: datetime | None = None
    ) -> list[UserEvent]:
        """The newest events first (ties: in the order they were written)."""
        e = t.events.c
        stmt = sa.select(t.events).where(e.user_id == user_id)
        if since is not None:
            stmt = stmt.where(e.created_at >= since)
        stmt = stmt.order_by(e.created_at.desc(), e.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.guard("reading events"), self._read() as conn:
            rows = conn.execute(stmt).all()
        return [event_model(r) for r in rows]

    def events_by_ids(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[UserEvent]:
        if not ids:
            return []
        e = t.events.c
        with self.guard("reading events"), self._read() as conn:
            rows = conn.execute(
                sa.select(t.events).where(e.user_id == user_id, e.id.in_(list(ids)))
            ).all()
        return [event_model(r) for r in rows]

    def event_embeddings(self, user_id: uuid.UUID, since: datetime) -> list[StoredEmbedded]:
        e = t.events.c
        with self.guard("reading event embeddings"), self._read() as conn:
            rows = conn.execute(
                sa.select(e.id, e.embedding, e.created_at)
                .where(e.user_id == user_id, e.created_at >= since, e.embedding.is_not(None))
                # A fixed order: the ranking's sort is stable, so equal scores keep it.
                .order_by(e.created_at.desc(), e.id)
            ).all()
        return [StoredEmbedded(r.id, r.embedding, r.created_at) for r in rows]

    def delete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        # Its gists go with it (ON DELETE CASCADE).
        self._delete_owned(t.events, "event", user_id, event_id)

    def list_gists(
        self, user_id: uuid.UUID, *, since: datetime | None, limit: int | None
    ) -> list[EventGist]:
        """The newest gists first; the gists of one event in the order of its memo lines."""
        g = t.gists.c
        if since is not None and limit is not None:
            stmt: Any = self._q_gists
            params = {"uid": user_id, "since": since, "limit": limit}
        else:
            stmt = sa.select(g.id, g.content, g.created_at, g.updated_at).where(
                g.user_id == user_id
            )
            if since is not None:
                stmt = stmt.where(g.created_at >= since)
            stmt = stmt.order_by(g.created_at.desc(), g.id)
            if limit is not None:
                stmt = stmt.limit(limit)
            params = {}
        with self.guard("reading gists"), self._read() as conn:
            rows = conn.execute(stmt, params).all()
        return [gist_model(r) for r in rows]

    def gist_embeddings(self, user_id: uuid.UUID, since: datetime) -> list[StoredEmbedded]:
        g = t.gists.c
        with self.guard("reading gist embeddings"), self._read() as conn:
            rows = conn.execute(
                sa.select(g.id, g.embedding, g.created_at)
                .where(g.user_id == user_id, g.created_at >= since, g.embedding.is_not(None))
                # A fixed order: the ranking's sort is stable, so equal scores keep it.
                .order_by(g.created_at.desc(), g.id)
            ).all()
        return [StoredEmbedded(r.id, r.embedding, r.created_at) for r in rows]

    def gists_by_ids(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[EventGist]:
        if not ids:
            return []
        g = t.gists.c
        with self.guard("reading gists"), self._read() as conn:
            rows = conn.execute(
                sa.select(g.id, g.content, g.created_at, g.updated_at).where(
                    g.user_id == user_id, g.id.in_(list(ids))
                )
            ).all()
        return [gist_model(r) for r in rows]

    def lexical_corpus(
        self, user_id: uuid.UUID, kind: fts.Kind, terms: Sequence[str], since: datetime
    ) -> fts.Corpus:
        """The user's events or gists since ``since`` sharing a term with the query, and the
        statistics to rank them (:func:`.search.bm25`), read in one transaction."""
        with self.guard("searching"), self._read() as conn:
            mode = self._detect_search_mode(conn)
            return fts.candidates(conn, mode, user_id, kind, terms, since)

    # -- project config -------------------------------------------------------------------------
    def get_profile_config(self) -> str | None:
        with self.guard("reading the profile config"), self._read() as conn:
            return conn.execute(
                sa.select(t.project.c.profile_config).where(t.project.c.id == 1)
            ).scalar_one_or_none()

    def set_profile_config(self, text: str | None) -> None:
        now = clock.utcnow()
        with self.guard("saving the profile config"), self._write() as conn:
            conn.execute(
                self._insert_ignore(t.project)
                .values(id=1, profile_config=None, updated_at=now)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            conn.execute(
                sa.update(t.project)
                .where(t.project.c.id == 1)
                .values(profile_config=text, updated_at=now)
            )

    # -- events by tag and event edits (issue 16.5) ---------------------------------------------
    def events_with_tags(
        self,
        user_id: uuid.UUID,
        tags: Sequence[str],
        tag_values: Mapping[str, str],
        limit: int,
    ) -> list[UserEvent]:
        """The newest events carrying every tag in ``tags`` (any value) and exactly the values
        of ``tag_values``. Filtered in Python over the user's events, newest first: JSON
        containment is not portable between SQLite and PostgreSQL, and one user's timeline is
        small."""
        e = t.events.c
        found: list[UserEvent] = []
        batch, offset = 200, 0
        while len(found) < limit:
            with self.guard("searching events by tag"), self._read() as conn:
                rows = conn.execute(
                    sa.select(t.events)
                    .where(e.user_id == user_id)
                    .order_by(e.created_at.desc(), e.id)
                    .offset(offset)
                    .limit(batch)
                ).all()
            for r in rows:
                event = event_model(r)
                present = {tag.tag: tag.value for tag in event.event_data.event_tags or ()}
                if all(name in present for name in tags) and all(
                    present.get(name) == value for name, value in tag_values.items()
                ):
                    found.append(event)
                    if len(found) >= limit:
                        break
            if len(rows) < batch:
                break
            offset += batch
        return found

    def update_event_data(
        self, user_id: uuid.UUID, event_id: uuid.UUID, patch: Mapping[str, Any]
    ) -> None:
        """Merge ``patch`` (keys of :class:`EventData`) into the event's data, in one
        transaction. Raises :class:`NotFoundError` when the event is not the user's."""
        e = t.events.c
        with self.guard("updating an event"), self._write() as conn:
            current = conn.execute(
                sa.select(e.event_data).where(e.user_id == user_id, e.id == event_id)
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError(f"Event {event_id} of user {user_id} does not exist.")
            merged = EventData.model_validate({**dict(current), **patch})
            conn.execute(
                sa.update(t.events)
                .where(e.user_id == user_id, e.id == event_id)
                .values(event_data=merged.model_dump(mode="json"), updated_at=clock.utcnow())
            )
            fts.reindex_event(conn, user_id, event_id, merged)  # its gists keep their text
