"""``MemobaseMiddleware``: long-term user memory for ``langchain.agents.create_agent``.

Per agent invocation (one user message in, one answer out) it does exactly three things:

1. ``before_agent``: resolve the user and read their memory context **once**;
2. ``wrap_model_call``: append that context to the existing system message of **every** model
   call of the invocation (tool loops included), for that request only. The request it hands
   on keeps the memory when middleware listed after this one replaces the system message
   (``@dynamic_prompt``), so memory survives any middleware order;
3. ``after_agent``: record the finished turn **once**, read from the final state so it holds
   what the model was allowed to see (e.g. ``PIIMiddleware``'s redaction, in either order).
   What a turn is (all the user messages since the last turn, the final answer, a
   ``ToolStrategy`` or ``return_direct`` answer, never framework text) and its id (derived
   from the messages: a replay is a no-op, an edited message a new turn) are the core
   policy of :mod:`memobase_integrations.turns`.

Why these hooks and not others (see ``shared/docs/langchain-notes.md``): ``before_model``
writes into the graph state and re-runs on every tool loop, ``after_model`` would record the
intermediate tool-call messages, and a second ``SystemMessage`` breaks some providers. The
context is held in this middleware, keyed by (user, id of the invocation's user message), not
in the graph state: nothing of the memory text is ever checkpointed or recorded back, so it
cannot feed on itself.

Every hook has a native async twin: under ``ainvoke`` no blocking call runs on the event loop.
Memory is fail-open by default: a slow or failing backend is logged and the agent answers
without memory; ``strict=True`` makes it raise instead. A missing user id always raises
:class:`~langchain_memobase.errors.MissingUserIdError`: there is no shared default user.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest
    from langchain.agents.middleware.types import ModelResponse
    from langgraph.config import get_config
    from langgraph.runtime import Runtime
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the module
    raise ImportError(
        "MemobaseMiddleware needs the `langchain` package (langchain.agents). Install it with "
        '`pip install "memobase-integrations[langchain]"`.'
    ) from exc

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage

from memobase_integrations import (
    ConfigurationError,
    FailurePolicy,
    Memobase,
    Message,
    UserMemory,
    current_turn,
    is_empty_context,
    structured_text,
    turn_id,
)

from .errors import MissingUserIdError
from .messages import (
    last_user_message,
    message_text,
    to_memobase_message,
    to_memobase_messages,
    to_said,
)

__all__ = ["MemobaseMiddleware", "UserIdResolver", "default_user_id"]

logger = logging.getLogger(__name__)

#: Maps the agent's runtime to the app's user id (``None`` when it cannot tell).
UserIdResolver = Callable[[Runtime[Any]], "str | uuid.UUID | None"]

_CONTEXT_PLACEHOLDER = "{context}"
_SEPARATOR = "\n\n"
_TURN_SOURCE = "langchain"


def default_user_id(runtime: Runtime[Any]) -> str | uuid.UUID | None:
    """The conventional places a LangChain 1.x app puts the user id, in order.

    1. the runtime context: ``agent.invoke(..., context=Ctx(user_id=...))`` (attribute or key);
    2. ``config["configurable"]["user_id"]`` (older LangGraph docs, langmem);
    3. the authenticated user of LangGraph Server (``runtime.server_info.user.identity``).
    """
    context = runtime.context
    if context is not None:
        value = (
            context.get("user_id")
            if isinstance(context, Mapping)
            else getattr(context, "user_id", None)
        )
        if value:
            return _as_user_id(value)
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # outside a runnable context (e.g. a hook called directly in a test)
        configurable = {}
    value = configurable.get("user_id")
    if value:
        return _as_user_id(value)
    server_user = getattr(runtime.server_info, "user", None)
    identity = getattr(server_user, "identity", None)
    if identity:
        return _as_user_id(identity)
    return None


def _as_user_id(value: object) -> str | uuid.UUID:
    return value if isinstance(value, uuid.UUID) else str(value)


@dataclass(slots=True)
class _Turn:
    """What one invocation needs between its hooks: never stored in the graph state.

    ``seen_users`` are the turn's user messages as the first model call of the invocation
    received them (after every other middleware's input edits, e.g. PII redaction); they
    are recorded only when the user messages left the state mid-run (summarisation).
    ``structured`` is the structured answer a model call produced (``ToolStrategy``).
    """

    user: UserMemory
    anchor_id: str | None
    started_at: datetime
    context: str
    seen_users: list[BaseMessage] | None = None
    structured: Any = None


class _TurnTable:
    """Per-invocation turns keyed by (user, id of the invocation's user message).

    Bounded, because an invocation that errors or is interrupted never reaches
    ``after_agent`` to remove its entry. A secondary index by (user, thread id) finds the turn
    when the user message left the state mid-run (``SummarizationMiddleware``); LangGraph runs
    one invocation per thread at a time, so that index is unambiguous.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._lock = threading.Lock()
        self._turns: OrderedDict[tuple[uuid.UUID, str], _Turn] = OrderedDict()
        self._by_thread: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, str]] = {}
        self._max = max_entries

    def put(self, turn: _Turn, thread_id: str | None) -> None:
        if turn.anchor_id is None:
            return
        key = (turn.user.id, turn.anchor_id)
        with self._lock:
            self._turns[key] = turn
            self._turns.move_to_end(key)
            if thread_id is not None:
                self._by_thread[(turn.user.id, thread_id)] = key
            while len(self._turns) > self._max:
                self._turns.popitem(last=False)
            if len(self._by_thread) > self._max:
                live = set(self._turns)
                self._by_thread = {k: v for k, v in self._by_thread.items() if v in live}

    def find(
        self, user_id: uuid.UUID, messages: Sequence[BaseMessage], thread_id: str | None
    ) -> _Turn | None:
        anchor = last_user_message(messages)
        with self._lock:
            if anchor is not None and anchor.id is not None:
                turn = self._turns.get((user_id, anchor.id))
                if turn is not None:
                    return turn
            if thread_id is not None:
                key = self._by_thread.get((user_id, thread_id))
                if key is not None:
                    return self._turns.get(key)
        return None

    def discard(self, turn: _Turn) -> None:
        if turn.anchor_id is None:
            return
        key = (turn.user.id, turn.anchor_id)
        with self._lock:
            self._turns.pop(key, None)
            self._by_thread = {k: v for k, v in self._by_thread.items() if v != key}

    def __len__(self) -> int:
        with self._lock:
            return len(self._turns)


class MemobaseMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """Inject a user's Memobase memory into an agent's system prompt and record each turn.

    Args:
        memobase: the :class:`~memobase_integrations.Memobase` facade (embedded or remote).
        user_id: a fixed user for this middleware (e.g. one agent per user session).
        user_id_from: resolver ``runtime -> user id`` for shared agents, e.g.
            ``lambda rt: rt.context.user_id``. Defaults to :func:`default_user_id` when no
            ``user_id`` is given. Never both.
        max_token_size: token budget of the injected context.
        prefer_topics / only_topics: profile topic filters for the context.
        context_options: further ``UserMemory.context`` options (``profile_event_ratio``,
            ``customize_context_prompt``...).
        recent_chats: pass the last N user/assistant messages as ``chats`` so relevant past
            events are searched (by words, and by meaning with embeddings; 0 keeps the
            context cacheable).
        template: text around the context; must contain ``{context}``. The result is appended
            to the existing system message after a blank line.
        record: record finished turns (turn it off for read-only agents).
        flush_after_turn: ask the backend to process the user's buffer after each turn
            (without waiting). Off by default: Memobase batches turns on purpose.
        timeout: seconds allowed for each memory call (``None``: no limit).
        strict: raise the :class:`~memobase_integrations.errors.MemobaseError` on memory
            errors or timeouts. Off by default (fail-open): log and answer without memory.
        name: middleware name; set it to stack two Memobase middlewares in one agent.
    """

    def __init__(
        self,
        memobase: Memobase,
        *,
        user_id: str | uuid.UUID | None = None,
        user_id_from: UserIdResolver | None = None,
        max_token_size: int = 500,
        prefer_topics: Sequence[str] | None = None,
        only_topics: Sequence[str] | None = None,
        context_options: Mapping[str, Any] | None = None,
        recent_chats: int = 0,
        template: str = _CONTEXT_PLACEHOLDER,
        record: bool = True,
        flush_after_turn: bool = False,
        timeout: float | None = 5.0,
        strict: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(memobase, Memobase):
            raise ConfigurationError(
                f"MemobaseMiddleware needs a Memobase instance, got {type(memobase).__name__}. "
                "Build one with Memobase.embedded(...), Memobase.remote(...) or "
                "Memobase.from_env()."
            )
        if user_id is not None and user_id_from is not None:
            raise ConfigurationError(
                "Pass either user_id= (one fixed user) or user_id_from= (resolved per run), "
                "not both."
            )
        if _CONTEXT_PLACEHOLDER not in template:
            raise ConfigurationError(
                f"template must contain {_CONTEXT_PLACEHOLDER!r} where the memory goes, "
                f"got {template!r}."
            )
        if max_token_size < 1:
            raise ConfigurationError(f"max_token_size must be positive, got {max_token_size}.")
        if recent_chats < 0:
            raise ConfigurationError(f"recent_chats must be >= 0, got {recent_chats}.")
        self.memobase = memobase
        self._fixed_user = memobase.user(user_id) if user_id is not None else None
        self._resolver: UserIdResolver = user_id_from or default_user_id
        self.max_token_size = max_token_size
        self.context_options: dict[str, Any] = dict(context_options or {})
        if prefer_topics is not None:
            self.context_options["prefer_topics"] = list(prefer_topics)
        if only_topics is not None:
            self.context_options["only_topics"] = list(only_topics)
        self.recent_chats = recent_chats
        self.template = template
        self.record = record
        self.flush_after_turn = flush_after_turn
        self._guard = FailurePolicy(strict=strict, timeout=timeout, logger=logger)
        self._name = name
        self._turns = _TurnTable()
        self.tools = []

    @property
    def name(self) -> str:
        return self._name or type(self).__name__

    @property
    def strict(self) -> bool:
        return not self._guard.fail_open

    @property
    def timeout(self) -> float | None:
        return self._guard.timeout

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, max_token_size={self.max_token_size}, "
            f"strict={self.strict}, record={self.record})"
        )

    # -- pieces shared by the sync and async hooks (pure, no I/O) -------------------------
    def _user(self, runtime: Runtime[Any]) -> UserMemory:
        if self._fixed_user is not None:
            return self._fixed_user
        user_id = self._resolver(runtime)
        if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
            raise MissingUserIdError(
                "MemobaseMiddleware could not tell whose memory to use for this run. Pass "
                "the user id in the runtime context (create_agent(..., context_schema=Ctx) "
                "and agent.invoke(..., context=Ctx(user_id=...))), or in "
                'config={"configurable": {"user_id": ...}}, or build the middleware with '
                "user_id=... or user_id_from=lambda runtime: .... There is deliberately no "
                "default user: it would mix everyone's memory."
            )
        return self.memobase.user(user_id)

    @staticmethod
    def _thread_id(runtime: Runtime[Any] | None) -> str | None:
        info = getattr(runtime, "execution_info", None)
        thread_id = getattr(info, "thread_id", None)
        return str(thread_id) if thread_id is not None else None

    def _context_kwargs(self, messages: Sequence[BaseMessage]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_token_size": self.max_token_size, **self.context_options}
        if self.recent_chats:
            kwargs["chats"] = to_memobase_messages(messages)[-self.recent_chats :]
        return kwargs

    def _start(self, user: UserMemory, messages: Sequence[BaseMessage]) -> _Turn:
        anchor = last_user_message(messages)
        return _Turn(
            user=user,
            anchor_id=anchor.id if anchor else None,
            started_at=datetime.now(UTC),
            context="",
        )

    def _inject(self, system_message: SystemMessage | None, context: str) -> SystemMessage:
        """Append the memory block to the system message (or make it the system message).

        Idempotent: a system message that already holds the block is returned unchanged, so
        re-applying it after another middleware rebuilt the prompt from ours never doubles it.
        """
        block = self.template.replace(_CONTEXT_PLACEHOLDER, context)
        if system_message is None:
            return SystemMessage(content=block)
        if block in system_message.text:
            return system_message
        content = system_message.content
        if isinstance(content, str):
            joined = f"{content}{_SEPARATOR}{block}" if content.strip() else block
            return system_message.model_copy(update={"content": joined})
        extra = {"type": "text", "text": f"{_SEPARATOR}{block}"}
        return system_message.model_copy(update={"content": [*content, extra]})

    def _to_record(
        self, turn: _Turn | None, state: Mapping[str, Any]
    ) -> tuple[list[Message], str | None]:
        """The finished turn as the core policy defines it, and its deterministic id.

        Read from the final state, so the user's text is what the model was allowed to see
        (input edits such as ``PIIMiddleware``'s redaction are in the state by now, whatever
        the middleware order). When the turn's user message left the state mid-run
        (summarisation), the copy the first model call received stands in for it.
        """
        messages: list[BaseMessage] = list(state.get("messages") or [])
        if (
            turn is not None
            and turn.seen_users
            and turn.anchor_id is not None
            and all(m.id != turn.anchor_id for m in messages)
        ):
            messages = [*turn.seen_users, *messages]
        said = [to_said(m) for m in messages]
        span = current_turn(said, tool_result_answers=True)
        if span is None:
            return [], None
        started = turn.started_at if turn is not None else datetime.now(UTC)
        users = [messages[i] for i in span.users]
        record = to_memobase_messages(users, default_created_at=started)
        answer = messages[span.answer] if span.answer is not None else None
        structured = turn.structured if turn is not None else state.get("structured_response")
        answer_message: Message | None = None
        now = datetime.now(UTC)
        if structured is not None and (answer is None or not isinstance(answer, AIMessage)):
            # ToolStrategy: the run ends on the structured-output tool's result; the user got
            # the structured answer, recorded as its JSON.
            answer_message = Message.of("assistant", structured_text(structured), created_at=now)
        elif isinstance(answer, AIMessage):
            answer_message = to_memobase_message(answer, default_created_at=now)
        elif answer is not None:  # a tool result returned directly to the user
            answer_message = Message.of("assistant", message_text(answer), created_at=now)
        if answer_message is not None:
            record.append(answer_message)
        if not record:
            return [], None
        answer_text = answer_message.content if answer_message is not None else None
        return record, turn_id(_TURN_SOURCE, [said[i] for i in span.users], answer_text)

    def _request_with_memory(self, request: ModelRequest[Any], turn: _Turn) -> ModelRequest[Any]:
        """The request with memory, as a request that keeps it through later overrides.

        Middleware listed after this one runs inside this call and may replace the system
        message (``@dynamic_prompt`` does); :class:`_MemoryRequest` re-applies the memory
        whenever that happens, so memory survives any middleware order.
        """
        if turn.seen_users is None:
            pending = current_turn([to_said(m) for m in request.messages])
            turn.seen_users = [request.messages[i] for i in pending.users] if pending else []
        if is_empty_context(turn.context):  # a new user: no empty "# Memory" scaffold
            return request
        context = turn.context

        def inject(system_message: SystemMessage | None) -> SystemMessage:
            return self._inject(system_message, context)

        return _MemoryRequest.wrap(request, inject)

    @staticmethod
    def _note_response(turn: _Turn, response: object) -> None:
        """Keep the structured answer of a model call (``ToolStrategy``) for the record."""
        inner = getattr(response, "model_response", response)  # ExtendedModelResponse
        structured = getattr(inner, "structured_response", None)
        if structured is not None:
            turn.structured = structured

    def _found_turn(self, request: ModelRequest[Any], user: UserMemory) -> _Turn | None:
        return self._turns.find(user.id, request.messages, self._thread_id(request.runtime))

    # -- before_agent: read the context once per invocation --------------------------------
    def before_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Resolve the user and fetch their context once for the whole invocation."""
        messages = state["messages"]
        turn = self._start(self._user(runtime), messages)
        kwargs = self._context_kwargs(messages)
        cached = turn.user.cached_context(**kwargs)  # warm: no I/O, no timeout thread
        turn.context = (
            cached
            if cached is not None
            else self._guard.call("read the context", lambda: turn.user.context(**kwargs), "")
        )
        self._turns.put(turn, self._thread_id(runtime))
        return None

    async def abefore_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`before_agent` (awaits the backend's native coroutine)."""
        messages = state["messages"]
        turn = self._start(self._user(runtime), messages)
        kwargs = self._context_kwargs(messages)
        turn.context = await self._guard.acall(
            "read the context", lambda: turn.user.acontext(**kwargs), ""
        )
        self._turns.put(turn, self._thread_id(runtime))
        return None

    # -- wrap_model_call: inject into every model call, no I/O in the common case ----------
    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage:
        """Append the invocation's context to the system message of this model call."""
        user = self._user(request.runtime)
        turn = self._found_turn(request, user)
        if turn is None:
            # before_agent did not run in this process for this turn (resumed after an
            # interrupt elsewhere) or its user message left the state: read once now.
            turn = self._start(user, request.messages)
            kwargs = self._context_kwargs(request.messages)
            turn.context = self._guard.call("read the context", lambda: user.context(**kwargs), "")
            self._turns.put(turn, self._thread_id(request.runtime))
        response = handler(self._request_with_memory(request, turn))
        self._note_response(turn, response)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        """Async twin of :meth:`wrap_model_call`."""
        user = self._user(request.runtime)
        turn = self._found_turn(request, user)
        if turn is None:
            turn = self._start(user, request.messages)
            kwargs = self._context_kwargs(request.messages)
            turn.context = await self._guard.acall(
                "read the context", lambda: user.acontext(**kwargs), ""
            )
            self._turns.put(turn, self._thread_id(request.runtime))
        response = await handler(self._request_with_memory(request, turn))
        self._note_response(turn, response)
        return response

    # -- after_agent: record the finished turn once ----------------------------------------
    def after_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Record the user's message and the final answer of this invocation."""
        user = self._user(runtime)
        messages = state["messages"]
        turn = self._turns.find(user.id, messages, self._thread_id(runtime))
        if turn is not None:
            self._turns.discard(turn)
        if not self.record:
            return None
        to_record, tid = self._to_record(turn, state)
        if not to_record:
            return None
        self._guard.call_local(
            "record the turn",
            lambda: user.record(to_record, turn_id=tid),
            None,
        )
        if self.flush_after_turn:
            self._guard.call("flush the user's memory", lambda: user.flush(wait=False), None)
        return None

    async def aafter_agent(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`after_agent`."""
        user = self._user(runtime)
        messages = state["messages"]
        turn = self._turns.find(user.id, messages, self._thread_id(runtime))
        if turn is not None:
            self._turns.discard(turn)
        if not self.record:
            return None
        to_record, tid = self._to_record(turn, state)
        if not to_record:
            return None
        await self._guard.acall(
            "record the turn",
            lambda: user.arecord(to_record, turn_id=tid),
            None,
        )
        if self.flush_after_turn:
            await self._guard.acall(
                "flush the user's memory", lambda: user.aflush(wait=False), None
            )
        return None


class _MemoryRequest(ModelRequest[Any]):
    """A ``ModelRequest`` that carries the memory and re-applies it to any new system message.

    ``ModelRequest.override`` builds the next request with ``dataclasses.replace``, which keeps
    this class, so every request derived from ours (by middleware running inside our
    ``wrap_model_call``) keeps the memory, even when it replaces the system message outright.
    """

    _memobase_inject: Callable[[SystemMessage | None], SystemMessage]

    @classmethod
    def wrap(
        cls,
        request: ModelRequest[Any],
        inject: Callable[[SystemMessage | None], SystemMessage],
    ) -> _MemoryRequest:
        fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.init}
        fields["system_message"] = inject(request.system_message)
        new = cls(**fields)
        object.__setattr__(new, "_memobase_inject", inject)
        return new

    def override(self, **overrides: Any) -> ModelRequest[Any]:
        replaces_system = "system_message" in overrides or "system_prompt" in overrides
        new = super().override(**overrides)
        object.__setattr__(new, "_memobase_inject", self._memobase_inject)
        if replaces_system:
            object.__setattr__(new, "system_message", self._memobase_inject(new.system_message))
        return new
