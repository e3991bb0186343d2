"""Rich renderables and JSON shapes for what the CLI and the demo show.

Everything here is pure (data in, renderable or JSON-ready data out) so the CLI commands
and the demo print memory the same way. User data always goes in as :class:`rich.text.Text`,
never as markup: memos contain brackets (``[mention 2025/01/14]``) that rich would eat.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..models import ChatModalResponse, Profile, UserEvent
from ..values import MemoryStatus

__all__ = [
    "chat_results_table",
    "events_json",
    "events_timeline",
    "profile_json",
    "profile_table",
    "status_json",
    "status_table",
    "timestamp",
]


def timestamp(value: datetime | None) -> str:
    """``2025-01-14 09:30`` (UTC when the value carries a zone); ``-`` when unknown."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M")


def profile_table(profiles: Sequence[Profile], *, title: str | None = None) -> Table:
    """The profile as Memobase structures it: one row per ``topic / sub_topic`` memo."""
    table = Table(title=title, box=box.ROUNDED, show_lines=False, expand=False)
    table.add_column("topic", style="bold cyan", no_wrap=True)
    table.add_column("sub_topic", style="cyan", no_wrap=True)
    table.add_column("memo", overflow="fold")
    table.add_column("updated", style="dim", no_wrap=True)
    for row in sorted(profiles, key=lambda p: (p.topic, p.sub_topic)):
        table.add_row(
            Text(row.topic),
            Text(row.sub_topic),
            Text(row.content),
            Text(timestamp(row.updated_at or row.created_at)),
        )
    return table


def _event_body(event: UserEvent) -> Group:
    parts: list[RenderableType] = []
    tip = (event.event_data.event_tip or "").strip()
    if tip:
        parts.append(Text(tip))
    for tag in event.event_data.event_tags or []:
        parts.append(Text.assemble(("#", "magenta"), (f"{tag.tag}: ", "magenta"), tag.value))
    for delta in event.event_data.profile_delta or []:
        topic = str(delta.attributes.get("topic", "?"))
        sub_topic = str(delta.attributes.get("sub_topic", "?"))
        parts.append(
            Text.assemble(("Δ ", "green"), (f"{topic} / {sub_topic}: ", "green"), delta.content)
        )
    if not parts:
        parts.append(Text("(nothing worth keeping in this exchange)", style="dim"))
    return Group(*parts)


def events_timeline(events: Sequence[UserEvent], *, title: str | None = None) -> Group:
    """The event timeline, newest first: each event's tip lines, tags and profile deltas."""
    ordered = sorted(
        events,
        key=lambda e: e.created_at.timestamp() if e.created_at else 0.0,
        reverse=True,
    )
    panels: list[RenderableType] = []
    if title:
        panels.append(Text(title, style="bold"))
    for event in ordered:
        panels.append(
            Panel(
                _event_body(event),
                title=Text(timestamp(event.created_at)),
                title_align="left",
                subtitle=Text(f"event {event.id}", style="dim"),
                subtitle_align="right",
                box=box.ROUNDED,
            )
        )
    return Group(*panels)


def status_table(status: MemoryStatus) -> Group:
    """Work outstanding: one row per user with something pending, totals in the caption, and
    each user's last error under the table (errors are sentences; a column would crush them).
    """
    table = Table(
        title=f"memory status ({status.backend})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=(
            f"pending turns: {status.pending_turns} · buffered tokens: "
            f"{status.buffered_tokens} · failures: {status.failed}"
        ),
    )
    # Fits 80 columns: "running" only appears while a flush is in progress.
    running = any(user.processing for user in status.users)
    table.add_column("user", no_wrap=True, min_width=36)
    table.add_column("pending", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    if running:
        table.add_column("running", justify="right", no_wrap=True)
    table.add_column("failed", justify="right", no_wrap=True)
    table.add_column("last flush", no_wrap=True)
    errors: list[RenderableType] = []
    for user in status.users:
        cells: list[RenderableType] = [
            Text(str(user.user_id)),
            str(user.pending_turns),
            str(user.buffered_tokens),
        ]
        if running:
            cells.append(str(user.processing))
        cells += [
            Text(str(user.failed), style="red" if user.failed else ""),
            Text(timestamp(user.last_flush_at)),
        ]
        table.add_row(*cells)
        if user.last_error:
            errors.append(Text.assemble((f"{user.user_id} last error: ", "red"), user.last_error))
    return Group(table, *errors)


def chat_results_table(
    results: Sequence[ChatModalResponse],
    profiles: Iterable[Profile] = (),
    *,
    title: str | None = None,
) -> Table:
    """What each processing run did; profile ids are named when the rows are known."""
    names = {p.id: f"{p.topic}/{p.sub_topic}" for p in profiles}

    def label(ids: Sequence[uuid.UUID]) -> Text:
        if not ids:
            return Text("-", style="dim")
        return Text(", ".join(names.get(i, str(i)[:8]) for i in ids))

    table = Table(title=title, box=box.ROUNDED)
    table.add_column("event", no_wrap=True)
    table.add_column("added", style="green")
    table.add_column("updated", style="yellow")
    table.add_column("deleted", style="red")
    for result in results:
        table.add_row(
            Text(str(result.event_id)[:8] if result.event_id else "-"),
            label(result.add_profiles),
            label(result.update_profiles),
            label(result.delete_profiles),
        )
    return table


# -- JSON ------------------------------------------------------------------------------------
def profile_json(profiles: Sequence[Profile]) -> list[dict[str, Any]]:
    """Flat rows, easy for ``jq``: id, topic, sub_topic, memo, created_at, updated_at."""
    return [
        {
            "id": str(p.id),
            "topic": p.topic,
            "sub_topic": p.sub_topic,
            "memo": p.content,
            "created_at": p.created_at.isoformat() if p.created_at else None,
            "updated_at": p.updated_at.isoformat() if p.updated_at else None,
        }
        for p in profiles
    ]


def events_json(events: Sequence[UserEvent]) -> list[dict[str, Any]]:
    """The events as the Memobase API returns them (``UserEvent``), newest first."""
    ordered = sorted(
        events, key=lambda e: e.created_at.timestamp() if e.created_at else 0.0, reverse=True
    )
    return [e.model_dump(mode="json", exclude_none=True) for e in ordered]


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def status_json(status: MemoryStatus) -> dict[str, Any]:
    """``MemoryStatus`` as plain JSON (UUIDs and datetimes as strings)."""
    data: dict[str, Any] = _jsonable(dataclasses.asdict(status))
    return data
