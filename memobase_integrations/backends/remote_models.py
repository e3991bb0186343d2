"""Shapes only the remote backend reads: project billing, usage and the user listing.

They are not part of the memory model (profiles, events, blobs live in ``models.py``), so
they stay next to the HTTP client. Field names follow the recorded server answers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DailyUsage", "ProjectBilling", "ProjectUser", "ProjectUsers"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ProjectBilling(_Model):
    """``GET /project/billing``. ``token_left`` is ``None`` when the project is unlimited."""

    token_left: int | None = None
    next_refill_at: datetime | None = None
    project_token_cost_month: int | None = None


class ProjectUser(_Model):
    """One row of ``GET /project/users``: the stored user plus its counts."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    additional_fields: dict[str, Any] | None = None
    project_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    profile_count: int = 0
    event_count: int = 0


class ProjectUsers(_Model):
    """``count`` is the number of users matching the search, not the page size."""

    users: list[ProjectUser] = Field(default_factory=list)
    count: int = 0


class DailyUsage(_Model):
    """One day of ``GET /project/usage``."""

    date: date
    total_insert: int = 0
    total_success_insert: int = 0
    total_input_token: int = 0
    total_output_token: int = 0
