"""The embedded backend's direct edits and listings of the store: users (ensure, delete,
create, read, replace their data, the project's user list), profile and event edits, a
user's export, stored blobs and buffer listings (issue 16.5's ``/users``, ``/users/blobs``,
``/users/buffer/capacity`` and ``PUT /users/event``).

A mixin of :class:`~.embedded.EmbeddedBackend`, with each method's async twin next to it:
these calls only validate their arguments and go to the store - no LLM, no flush - so they
need nothing of the backend but its :class:`~..engine.store.Store`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ..engine.store import Store
from ..errors import NotFoundError, ValidationError
from ..models import BlobData, BlobType, EventData, UserData
from ..values import BufferStatus, UserOrder
from .remote_models import ProjectUser, ProjectUsers

__all__ = ["EmbeddedAdmin"]


class EmbeddedAdmin:
    """Users, profile and event edits, export, blob and buffer listings (part of
    ``EmbeddedBackend``)."""

    store: Store

    # -- users, a stored blob, export -------------------------------------------------------
    def ensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        self.store.ensure_user(user_id, data)

    async def aensure_user(self, user_id: uuid.UUID, data: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(self.ensure_user, user_id, data)

    def delete_user(self, user_id: uuid.UUID) -> bool:
        """Forget the user: profile, events, gists, blobs, buffered turns, the turn ledger.
        Returns ``False`` when the store had nothing about the user.

        A flush of this user that is running right now writes nothing when it finishes (its
        lease check fails because its rows are gone).
        """
        return self.store.delete_user(user_id)

    async def adelete_user(self, user_id: uuid.UUID) -> bool:
        return await asyncio.to_thread(self.delete_user, user_id)

    def get_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        return self.store.get_blob(user_id, blob_id)

    async def aget_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> BlobData:
        return await asyncio.to_thread(self.get_blob, user_id, blob_id)

    def export_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        """Everything about the user as JSON-ready data: profiles, events, gists, the blobs
        still stored (buffered ones with their status and last error) and the flush log."""
        return self.store.export_user(user_id)

    async def aexport_user(self, user_id: uuid.UUID) -> dict[str, Any]:
        return await asyncio.to_thread(self.export_user, user_id)

    # -- profile and event edits ------------------------------------------------------------
    def add_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        if not topic.strip() or not sub_topic.strip():
            raise ValidationError(
                "A profile needs a non-empty topic and sub_topic, e.g. topic='work', "
                "sub_topic='title'."
            )
        return self.store.add_profile(user_id, content, topic, sub_topic)

    async def aadd_profile(
        self, user_id: uuid.UUID, content: str, topic: str, sub_topic: str
    ) -> uuid.UUID:
        return await asyncio.to_thread(self.add_profile, user_id, content, topic, sub_topic)

    def update_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        self.store.update_profile(user_id, profile_id, content, topic, sub_topic)

    async def aupdate_profile(
        self,
        user_id: uuid.UUID,
        profile_id: uuid.UUID,
        content: str,
        topic: str | None = None,
        sub_topic: str | None = None,
    ) -> None:
        await asyncio.to_thread(self.update_profile, user_id, profile_id, content, topic, sub_topic)

    def delete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        self.store.delete_profile(user_id, profile_id)

    async def adelete_profile(self, user_id: uuid.UUID, profile_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_profile, user_id, profile_id)

    def delete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        self.store.delete_event(user_id, event_id)

    async def adelete_event(self, user_id: uuid.UUID, event_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_event, user_id, event_id)

    # -- the rest of Memobase's surface (issue 16.5) -----------------------------------------
    def create_user(
        self, user_id: uuid.UUID | None = None, data: dict[str, Any] | None = None
    ) -> uuid.UUID:
        """Create a user (a new uuid4 when ``user_id`` is None) with ``data``. Raises
        :class:`ValidationError` (errno 409) when the id exists already."""
        new_id = user_id or uuid.uuid4()
        if not self.store.create_user(new_id, data):
            raise ValidationError(
                f"User {new_id} already exists. Read it with get_user, or replace its data "
                "with update_user.",
                errno=409,
            )
        return new_id

    async def acreate_user(
        self, user_id: uuid.UUID | None = None, data: dict[str, Any] | None = None
    ) -> uuid.UUID:
        return await asyncio.to_thread(self.create_user, user_id, data)

    def get_user(self, user_id: uuid.UUID) -> UserData:
        """The user's data and timestamps; :class:`NotFoundError` for an unknown user."""
        row = self.store.get_user(user_id)
        if row is None:
            raise NotFoundError(
                f"User {user_id} not found. Users are created by their first recorded turn, "
                "insert or profile write, or explicitly with add_user.",
                errno=404,
            )
        return UserData(
            data=row.data, id=row.id, created_at=row.created_at, updated_at=row.updated_at
        )

    async def aget_user(self, user_id: uuid.UUID) -> UserData:
        return await asyncio.to_thread(self.get_user, user_id)

    def update_user(self, user_id: uuid.UUID, data: dict[str, Any]) -> uuid.UUID:
        """Replace the user's data as a whole; :class:`NotFoundError` for an unknown user."""
        if not self.store.set_user_data(user_id, data):
            raise NotFoundError(f"User {user_id} not found; create it first (add_user).", errno=404)
        return user_id

    async def aupdate_user(self, user_id: uuid.UUID, data: dict[str, Any]) -> uuid.UUID:
        return await asyncio.to_thread(self.update_user, user_id, data)

    def project_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        """The users with their profile and event counts (``count``: all that match)."""
        limit = 10 if limit is None else limit
        offset = 0 if offset is None else offset
        if limit < 0 or offset < 0:
            raise ValidationError(
                f"limit and offset must be >= 0 (got limit={limit}, offset={offset})."
            )
        rows, count = self.store.list_users(
            search=search or "",
            order_by=order_by or "updated_at",
            descending=True if order_desc is None else order_desc,
            limit=limit,
            offset=offset,
        )
        users = [
            ProjectUser(
                id=r.id,
                additional_fields=r.data,
                project_id="__root__",
                created_at=r.created_at,
                updated_at=r.updated_at,
                profile_count=r.profile_count,
                event_count=r.event_count,
            )
            for r in rows
        ]
        return ProjectUsers(users=users, count=count)

    async def aproject_users(
        self,
        search: str | None = None,
        order_by: UserOrder | None = None,
        order_desc: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> ProjectUsers:
        return await asyncio.to_thread(
            self.project_users, search, order_by, order_desc, limit, offset
        )

    def list_blobs(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[uuid.UUID]:
        """Ids of the user's stored blobs of a type, oldest first (processed chat blobs are
        deleted, so for chat this is what is still buffered)."""
        if page < 0 or page_size < 1:
            raise ValidationError(
                f"page must be >= 0 and page_size >= 1 (got page={page}, page_size={page_size})."
            )
        return self.store.list_blob_ids(
            user_id, blob_type, offset=page * page_size, limit=page_size
        )

    async def alist_blobs(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        *,
        page: int = 0,
        page_size: int = 10,
    ) -> list[uuid.UUID]:
        return await asyncio.to_thread(
            functools.partial(self.list_blobs, page=page, page_size=page_size),
            user_id,
            blob_type,
        )

    def delete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> None:
        """Delete a stored blob (and its buffered turn); a missing blob is not an error."""
        self.store.delete_blob(user_id, blob_id)

    async def adelete_blob(self, user_id: uuid.UUID, blob_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.delete_blob, user_id, blob_id)

    def buffer_capacity(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[uuid.UUID]:
        """The user's buffered turns in a status, as blob ids (one buffer row per blob here;
        the server answers ids of its buffer rows). ``None`` means ``processing``, the
        server's default. ``failed`` includes turns waiting for a retry."""
        return self.store.buffer_blob_ids(user_id, blob_type, status or "processing")

    async def abuffer_capacity(
        self,
        user_id: uuid.UUID,
        blob_type: BlobType = BlobType.chat,
        status: BufferStatus | None = "idle",
    ) -> list[uuid.UUID]:
        return await asyncio.to_thread(self.buffer_capacity, user_id, blob_type, status)

    def update_event(
        self, user_id: uuid.UUID, event_id: uuid.UUID, data: EventData | dict[str, Any]
    ) -> None:
        """Merge the given (non-null) keys into the event's data, as the server does: the
        event's embedding and gists are not recomputed. :class:`NotFoundError` if missing."""
        patch = _event_patch(data)
        self.store.update_event_data(user_id, event_id, patch)

    async def aupdate_event(
        self, user_id: uuid.UUID, event_id: uuid.UUID, data: EventData | dict[str, Any]
    ) -> None:
        await asyncio.to_thread(self.update_event, user_id, event_id, data)


def _event_patch(data: EventData | dict[str, Any]) -> dict[str, Any]:
    """The keys to merge into an event: validated as :class:`EventData`, nulls dropped."""
    if isinstance(data, EventData):
        checked = data
    else:
        try:
            checked = EventData.model_validate(data)
        except PydanticValidationError as exc:
            raise ValidationError(
                f"Invalid event data: {exc.errors(include_url=False, include_input=False)}. "
                "Pass profile_delta (a list of {content, attributes}), event_tip (text) "
                "and/or event_tags (a list of {tag, value})."
            ) from exc
    return {
        k: v
        for k, v in checked.model_dump(
            mode="json", exclude_unset=not isinstance(data, EventData)
        ).items()
        if v is not None
    }
