"""LlamaIndex integration for Memobase long-term user memory.

Quick start
-----------
::

    from llama_index.core.chat_engine import SimpleChatEngine
    from llamaindex_memobase import MemobaseMemory
    from memobase_integrations import Memobase

    mb = Memobase.from_env()          # one per process, shared by all users
    memory = MemobaseMemory.from_defaults("alice@example.com", mb, session_id="chat-1")
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    engine.chat("Hi, I'm Alice and I work as a nurse.")

    # agents take memory per run (FunctionAgent(memory=...) is silently ignored by LlamaIndex)
    await agent.run(user_msg="...", memory=memory)

``MemobaseMemory`` is a ``llama_index.core.memory.Memory``: short-term history, ``session_id``,
``token_limit``, ``insert_method``, extra ``memory_blocks`` and the SQL chat store work as
usual. Pass ``async_database_uri="sqlite+aiosqlite:///chat.db"`` (or ``chat_store=``) to keep the
short-term history across restarts under the same ``session_id``.

What is recorded
----------------
Every completed turn, exactly once, as soon as the assistant's answer is stored: the user's
text and the final assistant text. Tool calls, tool results, system/developer messages,
thinking blocks, images and ReAct reasoning (``Thought:/Action:/Observation:``; only the text
after the final ``Answer:`` is kept) are dropped. A user message that never got an answer is
carried into the next turn. ``set()``/``chat_history=`` seed history without recording it.
``record`` is a local durable write (no network, no LLM on the request path); Memobase then
processes the user's buffer in the background. (A plain ``Memory`` with a block would only
hand messages to the block once ~21k tokens of history overflow, and would lose them if the
block failed; that is why turns are tracked here instead.)

What is injected
----------------
The user's Memobase context (profile lines + past events) as the first memory block,
rendered by LlamaIndex as ``<memory><memobase>...</memobase></memory>`` and prepended to the
system message (default ``InsertMethod.SYSTEM``) or to the latest user message
(``InsertMethod.USER``). It is read through the facade, so it is cached per user until that
user's next processing finishes: an agent run that reads memory three times costs one
backend read. Nothing is injected while the user has no memory yet. The text reaches the
LLM unchanged, even if it contains ``{query_str}``: the context chat engines format chat
history as a prompt template, so the memory is handed over in a ``LiteralTextBlock`` that
templates do not format. Under token pressure (``token_limit``) events are dropped first,
then the least relevant profile lines.

Where LlamaIndex needs a setting
--------------------------------
* ``SimpleChatEngine``, ``ContextChatEngine``, ``CondensePlusContextChatEngine`` (``chat``,
  ``achat``, ``stream_chat``, ``astream_chat``): works with the defaults. The context engines
  read memory before the new user message is stored, so keep ``InsertMethod.SYSTEM`` with
  them (with ``USER`` the memory lands on the *previous* user message). The LLM receives
  the engine's system prompt and the memory as two system messages (LlamaIndex keeps the
  engine prompt outside memory, so the two cannot be merged from here).
  ``CondensePlusContextChatEngine`` condenses the question whenever the history is not
  empty, and injected memory counts as history: once a user has memory, turn 1 also makes
  the (small) condense call, and the condense prompt sees the memory text.
* ``FunctionAgent`` / ``AgentWorkflow``: pass ``memory=`` to ``run()``.
* ``ReActAgent``: it throws away the first system message of its input (it substitutes its
  own ReAct header). Without an agent ``system_prompt`` that first system message *is* the
  memory, and the LLM never sees the profile. Use
  ``MemobaseMemory.from_defaults(..., insert_method=InsertMethod.USER)`` (recommended) or
  give the agent a ``system_prompt``. Both are covered by tests, and so is the losing case.

Failures
--------
Memobase is an enhancement, so by default a failing context read gives "no memory" and a
failing record is skipped; both are logged (logger ``llamaindex_memobase``) and passed to
``on_error(exc, action)``. With ``strict=True`` the error propagates and fails the turn.
(One policy for every adapter: :mod:`memobase_integrations.failure_policy`.)

History vs. long-term memory
----------------------------
``reset()`` (and ``engine.reset()``) clears this session's short-term history only. Deleting
what Memobase knows about the user is explicit: ``memory.forget()`` / ``await
memory.aforget()`` (which also clears the session's history unless ``keep_history=True``).
``memory.flush()`` processes the user's buffered turns now; ``memory.context()``,
``memory.profile()`` and ``memory.user`` (the facade's ``UserMemory``) are there for reads.

Other pieces
------------
* :class:`MemobaseMemoryBlock` for composing your own ``Memory`` (one block per user, never
  shared between users; it records only what ``Memory`` hands it, i.e. overflow batches).
* :func:`memobase_tools` (or ``memory.tools()``): ``search_memory`` and ``read_profile``
  ``FunctionTool`` s (``manage_memory`` with ``allow_writes=True``), the same tools as
  ``langchain_memobase.memobase_tools``; bound to one user, or resolved per run from the
  agent's workflow ``Context`` (``await ctx.store.set("user_id", ...)``) or ``user_id_from=``.
* :func:`to_memobase_messages`: the public ``ChatMessage`` -> neutral ``Message`` conversion.

Event loops: nothing here holds loop-bound state. The remote backend keeps one async HTTP
client per event loop, so sync ``chat()`` (which LlamaIndex runs on a fresh loop in a worker
thread), streaming writers and successive ``asyncio.run()`` calls all work.
"""

from .block import MemobaseMemoryBlock
from .memory import LiteralTextBlock, MemobaseMemory
from .messages import to_memobase_message, to_memobase_messages
from .tools import memobase_tools

__all__ = [
    "LiteralTextBlock",
    "MemobaseMemory",
    "MemobaseMemoryBlock",
    "memobase_tools",
    "to_memobase_message",
    "to_memobase_messages",
]
