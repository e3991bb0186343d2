"""Checks several routes share."""

from __future__ import annotations

from uuid import UUID

from ...errors import NotFoundError
from ...facade import Memobase
from ...models import ErrorCode
from ..envelope import ServerAnswer

__all__ = ["require_user", "user_exists"]


async def user_exists(mb: Memobase, user_id: UUID) -> bool:
    try:
        await mb.user(user_id).ainfo()
    except NotFoundError:
        return False
    return True


async def require_user(mb: Memobase, user_id: UUID, action: str) -> None:
    """Refuse a write for a user that does not exist, as the real server does (its foreign
    key fails: errno 500). The wording keeps ``ForeignKeyViolation``, which clients - this
    project's remote backend among them - read to create the user and try again."""
    if not await user_exists(mb, user_id):
        raise ServerAnswer(
            ErrorCode.INTERNAL_SERVER_ERROR,
            f"{action}: (ForeignKeyViolation) user {user_id} does not exist. Create it "
            f'first: POST /api/v1/users with {{"id": "{user_id}"}}.',
        )
