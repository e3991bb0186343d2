"""Optional agent tools over one user's Memobase memory.

Each tool is bound to one user when it is built, so the LLM can never choose (or be tricked
into choosing) whose memory it reads. Memobase errors become a short text answer instead of
an exception, so an outage costs the agent one tool result, not the run.
"""

from __future__ import annotations

from llama_index.core.tools import FunctionTool

from memobase_integrations import (
    MemobaseError,
    Message,
    UnsupportedError,
    UserEvent,
    UserMemory,
    is_empty_context,
)

from ._failures import logger

__all__ = ["memobase_tools"]

NOTHING_REMEMBERED = "Nothing is remembered about this user yet."


def _format_events(events: list[UserEvent]) -> str:
    lines = []
    for event in events:
        tip = (event.event_data.event_tip or "").strip()
        if not tip:
            continue
        when = event.created_at.date().isoformat() if event.created_at else "unknown date"
        lines.append(f"- [{when}] {tip}")
    return "\n".join(lines)


def _unavailable(action: str, exc: MemobaseError) -> str:
    logger.warning("Memobase tool could not %s: %s", action, exc)
    return f"The user's memory is unavailable right now ({type(exc).__name__}): {exc.message}"


def memobase_tools(
    user: UserMemory,
    *,
    max_token_size: int = 1000,
    search_topk: int = 5,
) -> list[FunctionTool]:
    """``recall_user_memory`` and ``search_user_events`` tools for one user.

    Pass the user's :class:`UserMemory`: ``memobase.user("alice")`` or
    ``MemobaseMemory.user`` (``MemobaseMemory.tools()`` does exactly that).
    """

    async def arecall(query: str = "") -> str:
        chats = [Message.of("user", query)] if query.strip() else None
        try:
            text = await user.acontext(max_token_size, chats=chats)
        except MemobaseError as exc:
            return _unavailable("recall memory", exc)
        return NOTHING_REMEMBERED if is_empty_context(text) else text.strip()

    def recall(query: str = "") -> str:
        chats = [Message.of("user", query)] if query.strip() else None
        try:
            text = user.context(max_token_size, chats=chats)
        except MemobaseError as exc:
            return _unavailable("recall memory", exc)
        return NOTHING_REMEMBERED if is_empty_context(text) else text.strip()

    async def asearch(query: str, topk: int = search_topk) -> str:
        try:
            try:
                events = await user.asearch_events(query, topk)
            except UnsupportedError:  # no embeddings configured: newest events instead
                events = await user.aevents(topk)
        except MemobaseError as exc:
            return _unavailable("search events", exc)
        return _format_events(events) or "No matching events."

    def search(query: str, topk: int = search_topk) -> str:
        try:
            try:
                events = user.search_events(query, topk)
            except UnsupportedError:
                events = user.events(topk)
        except MemobaseError as exc:
            return _unavailable("search events", exc)
        return _format_events(events) or "No matching events."

    recall_description = (
        "Recall what is known about the current user (profile and past events). "
        "Optionally pass the topic of the question as `query` to favour related events."
    )
    search_description = (
        "Search the current user's past events (things they did, said or planned) for "
        "`query`; returns up to `topk` dated events."
    )
    return [
        FunctionTool.from_defaults(
            fn=recall, async_fn=arecall, name="recall_user_memory", description=recall_description
        ),
        FunctionTool.from_defaults(
            fn=search, async_fn=asearch, name="search_user_events", description=search_description
        ),
    ]
