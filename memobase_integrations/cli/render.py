"""Rich renderables and JSON shapes for what the CLI and the demo show.

Everything here is pure (data in, renderable or JSON-ready data out) so the CLI commands
and the demo print memory the same way. User data always goes in as :class:`rich.text.Text`,
never as markup: memos contain brackets (``[mention 2025/01/14]``) that rich would eat.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..models import ChatModalResponse, EventGist, Profile, UserEvent
from ..tools import event_summary, mention_dates, plain_memo
from ..values import MemoryStatus

__all__ = [
    "chat_results_table",
    "events_json",
    "events_timeline",
    "profile_json",
    "profile_table",
    "search_json",
    "search_table",
    "status_json",
    "status_table",
    "timestamp",
]


def timestamp(value: datetime | None) -> str:
    """``2025-01-14 09:30`` (UTC when the value carries a zone); ``-`` when unknown."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M")


def _day(value: str) -> str:
    """``2026/12/06`` (Memobase's stamp) as ``2026-12-06``."""
    return value.replace("/", "-")


def profile_table(profiles: Sequence[Profile], *, title: str | None = None) -> Table:
    """The profile as Memobase structures it: one row per ``topic / sub_topic`` memo. The
    ``[mention 2026/12/06]`` stamps Memobase keeps inside memos get their own column (inline
    they wrap badly and push the memo text around)."""
    table = Table(title=title, box=box.ROUNDED, show_lines=False, expand=False)
    table.add_column("topic", style="bold cyan", overflow="fold")
    table.add_column("sub_topic", style="cyan", overflow="fold")
    table.add_column("memo", overflow="fold", ratio=1)
    table.add_column("mentioned", style="dim", no_wrap=True, min_width=10)
    table.add_column("updated", style="dim", no_wrap=True, min_width=10)
    for row in sorted(profiles, key=lambda p: (p.topic, p.sub_topic)):
        mentioned = dict.fromkeys(_day(d) for d in mention_dates(row.content))
        updated = row.updated_at or row.created_at
        table.add_row(
            Text(row.topic),
            Text(row.sub_topic),
            Text(plain_memo(row.content)),
            Text("\n".join(mentioned) or "-"),
            Text(updated.date().isoformat() if updated else "-"),
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


def _user_cell(user_id: uuid.UUID, names: Mapping[uuid.UUID, str]) -> Text:
    """The app's id (when known) above the UUID the store files the user under."""
    name = names.get(user_id)
    if name is None or name == str(user_id):
        return Text(str(user_id))
    return Text.assemble(name, "\n", (str(user_id), "dim"))


def status_table(
    status: MemoryStatus, *, names: Mapping[uuid.UUID, str] | None = None
) -> RenderableType:
    """Work outstanding: one row per user with something pending, totals in the caption, and
    each user's last error under the table (errors are sentences; a column would crush them).

    ``names`` maps UUIDs to the app's user ids where the caller knows them (the store keeps
    only UUIDs). Fits 80 columns: the user column folds before any header is cut. With
    nothing pending it says so instead of drawing an empty table.
    """
    totals = (
        f"pending turns: {status.pending_turns} · buffered tokens: "
        f"{status.buffered_tokens} · failures: {status.failed}"
    )
    if not status.users:
        return Text(
            f"Nothing pending ({status.backend}): every recorded turn has been processed. "
            f"({totals})"
        )
    known = names or {}
    table = Table(
        title=f"memory status ({status.backend})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        padding=(0, 0, 0, 1),  # with the box's blank divider: two spaces between columns
        caption=totals,
    )
    running = any(user.processing for user in status.users)
    table.add_column("user", overflow="fold", min_width=36)
    headers = ["pending", "tokens", *(["running"] if running else []), "failed"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    table.add_column("last flush", no_wrap=True, min_width=len("last flush"))
    errors: list[RenderableType] = []
    for user in status.users:
        cells: list[RenderableType] = [
            _user_cell(user.user_id, known),
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
            who = known.get(user.user_id, str(user.user_id))
            errors.append(Text.assemble((f"{who} last error: ", "red"), user.last_error))
    return Group(table, *errors)


def search_table(
    hits: Sequence[UserEvent] | Sequence[EventGist], *, title: str | None = None
) -> Table:
    """Search hits, best first: date, score, and the text without Memobase's stamps."""
    table = Table(title=title, box=box.ROUNDED, expand=False)
    table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    table.add_column("event" if hits and isinstance(hits[0], UserEvent) else "gist", ratio=1)
    for hit in hits:
        if isinstance(hit, UserEvent):
            text = plain_memo(event_summary(hit))
        else:
            text = plain_memo(hit.gist_data.content)
        score = "-" if hit.similarity is None else f"{hit.similarity:.2f}"
        table.add_row(
            Text(hit.created_at.date().isoformat() if hit.created_at else "-"),
            Text(score),
            Text(text),
        )
    return table


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
    """Flat rows, easy for ``jq``: id, topic, sub_topic, content, created_at, updated_at
    (``content`` as in the Python API and in events; it keeps Memobase's stamps)."""
    return [
        {
            "id": str(p.id),
            "topic": p.topic,
            "sub_topic": p.sub_topic,
            "content": p.content,
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


def search_json(hits: Sequence[UserEvent] | Sequence[EventGist]) -> list[dict[str, Any]]:
    """Search hits as the Memobase API returns them, best first, with their ``similarity``."""
    return [h.model_dump(mode="json", exclude_none=True) for h in hits]


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
