"""Write the notebooks of this folder from the cell sources below (outputs stripped).

The ``.ipynb`` files are generated, so they stay reviewable in git (no outputs, stable cell ids)
and cannot drift from this source: ``tests/notebooks`` checks that the committed files equal
what this script writes, then executes each one. After editing a cell here, run::

    python notebooks/build_notebooks.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

Cell = tuple[str, str]  # ("md" | "code", source)


def md(text: str) -> Cell:
    return ("md", text.strip("\n"))


def code(text: str) -> Cell:
    return ("code", text.strip("\n"))


OFFLINE_NOTE = md(
    """
> **Runs offline.** Memory extraction uses the project's *offline stand-in LLM*
> (`memobase_integrations.testing.StandInLLM`: deterministic rules, **not a real model**) through
> the real `openai` client code path, and the chat model is the framework's own fake model.
> To use real models, build the memory with `Memobase.from_env()` after setting
> `OPENAI_API_KEY` (or `OPENAI_BASE_URL` for Ollama and other OpenAI-compatible servers), and
> swap in your chat model.
"""
)

# -- 01: LangChain ---------------------------------------------------------------------------
LANGCHAIN: list[Cell] = [
    md(
        """
# Long-term user memory for a LangChain agent

`MemobaseMiddleware` gives a `create_agent` agent a memory of each user that outlives the
conversation:

1. before the agent runs, it reads the user's memory (a short *context*: profile + past events);
2. on every model call, it appends that context to the agent's system prompt (never a second
   system message, never stored in the transcript);
3. after the agent answered, it records the turn (the user's message and the final answer).

Recorded turns are processed later into a structured **profile** (`topic / sub_topic / memo`)
and an **event timeline**. That is why a fact appears in the prompt only *after processing*.
"""
    ),
    OFFLINE_NOTE,
    code(
        """
from pathlib import Path

from memobase_integrations import Memobase
from memobase_integrations.testing import LABEL, StandInLLM

DB = Path("memobase-notebook-langchain.db")
DB.unlink(missing_ok=True)  # start fresh each run

mb = Memobase.embedded(f"sqlite:///{DB}", llm=StandInLLM().settings())
# With a real LLM instead: mb = Memobase.from_env()
print("memory extraction runs on:", LABEL)
"""
    ),
    md(
        """
## A chat model

LangChain's `GenericFakeChatModel` replays canned answers. `create_agent` asks the model to
`bind_tools`, which the fake does not implement, so we make it a no-op. A callback handler
keeps the exact messages of the last model call, so we can look at the system prompt the
model received. In your app, use any chat model, e.g. `init_chat_model("openai:gpt-4o-mini")`.
"""
    ),
    code(
        """
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel


class FakeChatModel(GenericFakeChatModel):
    def bind_tools(self, tools, **kwargs):
        return self


class LastPrompt(BaseCallbackHandler):
    \"\"\"Keeps the messages of the last chat-model call.\"\"\"

    messages: list = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.messages = messages[0]

    @property
    def system(self) -> str:
        return self.messages[0].content if self.messages else ""


model = FakeChatModel(
    messages=iter(
        [
            "Nice to meet you, Alice!",
            "Lisbon has great trails.",
            "How about a hike along the coast this weekend?",
            "Hi Bob, nice to meet you!",
        ]
    )
)
last_prompt = LastPrompt()
"""
    ),
    md(
        """
## The agent

One agent serves every user. The middleware finds the user in the runtime context
(`context=Ctx(user_id=...)`); it could also be fixed (`MemobaseMiddleware(mb, user_id=...)`)
or come from `config["configurable"]["user_id"]`. There is deliberately no default user.
"""
    ),
    code(
        """
from dataclasses import dataclass

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from langchain_memobase import MemobaseMiddleware


@dataclass
class Ctx:
    user_id: str


agent = create_agent(
    model,
    tools=[],
    system_prompt="You are a helpful travel assistant.",
    middleware=[MemobaseMiddleware(mb)],
    context_schema=Ctx,
    checkpointer=InMemorySaver(),  # short-term memory: the conversation (thread)
)


def chat(user_id: str, thread_id: str, text: str) -> str:
    result = agent.invoke(
        {"messages": [{"role": "user", "content": text}]},
        config={"configurable": {"thread_id": thread_id}, "callbacks": [last_prompt]},
        context=Ctx(user_id=user_id),
    )
    return result["messages"][-1].content
"""
    ),
    md("## Session 1: Alice introduces herself"),
    code(
        """
print(chat("alice", "thread-1", "Hi, my name is Alice and I work as a nurse."))
print(chat("alice", "thread-1", "I live in Lisbon and I love hiking."))
"""
    ),
    md(
        """
Both turns are **recorded** (durably, without any LLM call) and wait in Alice's buffer. They
become memory when the buffer is **processed**: automatically once it holds 1024 tokens,
after an idle period, when the app closes, or now with `flush()`.
"""
    ),
    code(
        """
alice = mb.user("alice")
status = alice.status()
print("turns waiting:", status.pending_turns, "| buffered tokens:", status.buffered_tokens)

results = alice.flush()  # runs the pipeline: summary -> extraction -> merge -> event
for r in results:
    print(f"event {r.event_id}: {len(r.add_profiles)} added, {len(r.update_profiles)} updated")
"""
    ),
    code(
        """
for row in alice.profile():
    print(f"{row.topic:14} {row.sub_topic:10} {row.content}")
"""
    ),
    md(
        """
## Session 2: a new conversation

A new thread has no short-term history; only long-term memory connects it to session 1.
Here is the exact system prompt the model received:
"""
    ),
    code(
        """
print(chat("alice", "thread-2", "Any plans you would suggest for my weekend?"))
print()
print(last_prompt.system)
assert "Alice" in last_prompt.system and "nurse" in last_prompt.system
"""
    ),
    md(
        """
## Isolation

Each user has their own memory: Bob's prompt contains nothing about Alice.
"""
    ),
    code(
        """
print(chat("bob", "thread-3", "Hello there!"))
assert "Alice" not in last_prompt.system
print(last_prompt.system)
"""
    ),
    md(
        """
## Memory tools

`memobase_tools(mb, user_id)` gives an agent the memory tools, bound to **one** user (the model
can never choose whose memory it reads): `search_memory` (past events) and `read_profile`;
`allow_writes=True` adds `manage_memory` ("remember this", through the normal pipeline).
`memobase_tools(mb)` without a user resolves it per run, like the middleware does, so one
compiled agent can serve many users. The same tools, with the same words, exist in
`llamaindex_memobase`.
"""
    ),
    code(
        """
from langchain_memobase import memobase_tools

for tool in memobase_tools(mb, "alice"):
    print(f"{tool.name}: {tool.description[:70]}...")
print()
tools = {tool.name: tool for tool in memobase_tools(mb, "alice")}
print(tools["read_profile"].invoke({}))
"""
    ),
    md(
        """
## Look inside with the CLI

The same store can be inspected from a terminal:

```bash
memobase-integrations profile alice --database-url sqlite:///memobase-notebook-langchain.db
memobase-integrations events alice  --database-url sqlite:///memobase-notebook-langchain.db
```
"""
    ),
    code(
        """
import os
import subprocess
import sys

out = subprocess.run(
    [sys.executable, "-m", "memobase_integrations", "profile", "alice",
     "--database-url", f"sqlite:///{DB}"],
    capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"},
)
print(out.stdout or out.stderr)
"""
    ),
    code(
        """
mb.close()  # processes what is still buffered, then stops the background worker
"""
    ),
]

# -- 02: LlamaIndex --------------------------------------------------------------------------
LLAMAINDEX: list[Cell] = [
    md(
        """
# Long-term user memory for LlamaIndex chat engines and agents

`MemobaseMemory` is a drop-in `memory=` for chat engines and agents. It is a regular
LlamaIndex `Memory` (short-term history, `session_id`, `token_limit`...) that also:

* records every finished turn (the user's text and the final answer, nothing else), and
* injects the user's Memobase memory (profile + past events) as a memory block.
"""
    ),
    OFFLINE_NOTE,
    code(
        """
from pathlib import Path

from memobase_integrations import Memobase
from memobase_integrations.testing import LABEL, StandInLLM

DB = Path("memobase-notebook-llamaindex.db")
DB.unlink(missing_ok=True)

mb = Memobase.embedded(f"sqlite:///{DB}", llm=StandInLLM().settings())
print("memory extraction runs on:", LABEL)
"""
    ),
    md(
        """
## A chat engine

LlamaIndex's `MockFunctionCallingLLMWithChatMemoryOfLastCall` is a fake LLM that remembers
the messages of its last call (`last_chat_messages`); a small function writes its answers.
"""
    ),
    code(
        """
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.llms.mock import MockFunctionCallingLLMWithChatMemoryOfLastCall

from llamaindex_memobase import MemobaseMemory


def polite_answer(messages, **kwargs):
    return ChatMessage(role=MessageRole.ASSISTANT, content="Noted, thank you!")


llm = MockFunctionCallingLLMWithChatMemoryOfLastCall(
    response_generator=polite_answer, is_chat_model=True
)

memory = MemobaseMemory.from_defaults("carol", mb, session_id="chat-1")
engine = SimpleChatEngine.from_defaults(
    llm=llm, memory=memory, system_prompt="You are a cooking assistant."
)
print(engine.chat("Hi! I'm Carol and I work as a chef in Paris."))
print(engine.chat("I love Japanese food."))
"""
    ),
    code(
        """
print("turns waiting:", memory.user.status().pending_turns)
memory.flush()  # process the buffered turns now (normally done in the background)
for row in memory.profile():
    print(row.describe())
"""
    ),
    md(
        """
## A new session sees the memory

A new `MemobaseMemory` (new `session_id`: empty short-term history) for the same user.
The LLM receives the engine's system prompt and the memory block:
"""
    ),
    code(
        """
engine = SimpleChatEngine.from_defaults(
    llm=llm,
    memory=MemobaseMemory.from_defaults("carol", mb, session_id="chat-2"),
    system_prompt="You are a cooking assistant.",
)
engine.chat("What should I cook tonight?")
for message in llm.last_chat_messages:
    print(f"--- {message.role.value}\\n{message.content}")
assert any("Carol" in (m.content or "") for m in llm.last_chat_messages)
"""
    ),
    md(
        """
## An agent with memory tools

Agents take the memory **per run**: `agent.run(user_msg=..., memory=memory)`
(`FunctionAgent(memory=...)` is silently ignored by LlamaIndex). `memory.tools()` gives
`search_memory` and `read_profile` (the same tools as `langchain_memobase.memobase_tools`),
bound to this user.

The fake LLM below first calls `search_memory`, then answers with what the tool found.
"""
    ),
    code(
        """
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ToolCallBlock


def agent_brain(messages, **kwargs):
    tool_results = [m for m in messages if m.role == MessageRole.TOOL]
    if not tool_results:
        call = ToolCallBlock(
            tool_call_id="call-1", tool_name="search_memory", tool_kwargs={"query": "food"}
        )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
    found = [line for line in tool_results[-1].content.splitlines() if "food" in line]
    return ChatMessage(role=MessageRole.ASSISTANT, content="From your past: " + " ".join(found))


agent_llm = MockFunctionCallingLLMWithChatMemoryOfLastCall(
    response_generator=agent_brain, is_chat_model=True
)
agent_memory = MemobaseMemory.from_defaults("carol", mb, session_id="agent-1")
agent = FunctionAgent(
    tools=agent_memory.tools(), llm=agent_llm, system_prompt="You are a cooking assistant."
)
answer = await agent.run(user_msg="What food do I like?", memory=agent_memory)
print(answer)
"""
    ),
    md(
        """
Only the user's question and the final answer were recorded: the tool call and the tool
result are not the user's words and never reach the memory.
"""
    ),
    code(
        """
blobs = agent_memory.user.export()["blobs"]  # what is stored and not processed yet
turn = next(b for b in blobs if b["blob_data"]["messages"][0]["content"] == "What food do I like?")
for message in turn["blob_data"]["messages"]:
    print(f"recorded {message['role']:9} | {message['content']}")
assert [m["role"] for m in turn["blob_data"]["messages"]] == ["user", "assistant"]
"""
    ),
    md(
        """
## Forgetting

`memory.reset()` clears the session's short-term history only. Deleting what Memobase knows
is explicit: `memory.forget()` (or `mb.user("carol").delete()`, or the CLI's
`memobase-integrations forget carol`).
"""
    ),
    code(
        """
agent_memory.forget()
print(mb.user("carol").profile())
mb.close()
"""
    ),
]

# -- 03: custom profile config ---------------------------------------------------------------
PROFILE_CONFIG: list[Cell] = [
    md(
        """
# A custom profile: a tutoring app

By default Memobase fills a general profile (basic info, work, interests, ...). A *profile
config* (YAML, Memobase's format) describes the profile **your** app needs. Here: a tutoring
app that only keeps what helps teaching, in **strict mode** (nothing outside the configured
slots is kept in the profile), with **event tags** to find sessions later.
"""
    ),
    OFFLINE_NOTE,
    md("The config ships next to this notebook as `tutor-profile.yaml`:"),
    code(
        """
from pathlib import Path

TUTOR_YAML = Path("tutor-profile.yaml").read_text()
print(TUTOR_YAML)
"""
    ),
    md(
        """
## Validate it first

`ProfileConfig` parses and validates the YAML (the CLI's `config validate` / `config set`
do the same before anything is stored). Mistakes come back as one message naming the
field and the fix:
"""
    ),
    code(
        """
from memobase_integrations.engine.config import ProfileConfig
from memobase_integrations.errors import ValidationError

config = ProfileConfig.from_yaml(TUTOR_YAML)
print("allowed slots:", sorted(config.resolve().allowed_pairs))

try:
    ProfileConfig.from_yaml("language: klingon")
except ValidationError as exc:
    print("refused:", exc)
"""
    ),
    code(
        """
import subprocess
import sys

out = subprocess.run(
    [sys.executable, "-m", "memobase_integrations", "config", "validate", "tutor-profile.yaml"],
    capture_output=True, text=True,
)
print(out.returncode, out.stderr.strip())
"""
    ),
    md("## Use it"),
    code(
        """
from memobase_integrations import Memobase
from memobase_integrations.testing import LABEL, StandInLLM

DB = Path("memobase-notebook-tutor.db")
DB.unlink(missing_ok=True)
mb = Memobase.embedded(f"sqlite:///{DB}", llm=StandInLLM().settings(), profile_config=TUTOR_YAML)
print("memory extraction runs on:", LABEL)

sam = mb.user("sam")
sam.record([
    {"role": "user", "content": "Hi, my name is Sam, I am 16 years old and I live in Madrid."},
    {"role": "assistant", "content": "Hi Sam! What are we studying today?"},
])
sam.record([
    {"role": "user", "content": "I study physics at Lincoln High. I want to pass my physics "
                                "exam next month. I'm nervous about it. I love football."},
    {"role": "assistant", "content": "Let's prepare step by step."},
])
results = sam.flush()
"""
    ),
    md(
        """
The profile holds only the configured slots: Sam's city and football were said, but they are
not part of a tutoring profile, so strict mode left them out.
"""
    ),
    code(
        """
for row in sam.profile():
    print(f"{row.topic:14} {row.sub_topic:8} {row.content}")
slots = {(row.topic, row.sub_topic) for row in sam.profile()}
assert slots <= config.resolve().allowed_pairs
assert not any("Madrid" in row.content for row in sam.profile())
"""
    ),
    md("The event timeline still has the whole session, tagged:"),
    code(
        """
for event in sam.events():
    print(event.event_data.event_tip)
    for tag in event.event_data.event_tags or []:
        print(f"  #{tag.tag}: {tag.value}")
"""
    ),
    md(
        """
## Where the config lives

The embedded store keeps the config in its database (every process sharing the store uses
it); a Memobase server keeps it per project. Read or change it from code or from the CLI:

```bash
memobase-integrations config show --database-url sqlite:///memobase-notebook-tutor.db
memobase-integrations config set tutor-profile.yaml --database-url sqlite:///app.db
memobase-integrations config set tutor-profile.yaml --project-url https://api.memobase.dev
```
"""
    ),
    code(
        """
print(mb.get_profile_config())
mb.close()
"""
    ),
]

# -- 04: Memobase server ---------------------------------------------------------------------
SERVER: list[Cell] = [
    md(
        """
# Talking to a Memobase server (Memobase Cloud or self-hosted)

The same API works against a Memobase server: `Memobase.remote(project_url, api_key)`, or
`Memobase.from_env()` with `MEMOBASE_PROJECT_URL` and `MEMOBASE_API_KEY` set.

> **Runs offline, on recorded answers.** No server is reachable here, so `recorded_server.py`
> plugs an `httpx.MockTransport` into the client that answers with **exchanges recorded from a
> real Memobase server** (`data/memobase-server/`, see `data/README.md` for provenance: the
> open-source server, run locally with a scripted stub as its LLM). The client code that runs
> is the production one; only the network is replaced. Against a real server, drop
> `transport=` and use your URL and key.
"""
    ),
    code(
        """
import tempfile
import uuid
from pathlib import Path

from recorded_server import RecordedServer

from memobase_integrations import Memobase

server = RecordedServer(
    "01_healthcheck_and_users.json", "02_insert_async_flush_sync_then_read.json"
)

mb = Memobase.remote(
    "http://localhost:8019",  # Memobase Cloud: https://api.memobase.dev
    "secret",  # the server's ACCESS_TOKEN; on Memobase Cloud your sk-proj-... key
    transport=server.transport(),  # <- replays recordings; remove it for a real server
    outbox_path=Path(tempfile.mkdtemp()) / "outbox.db",
    auto_create_users=False,  # the recording creates its user explicitly (next cell)
)
mb.backend.healthcheck()
print(mb)
"""
    ),
    md(
        """
## Users

Memobase identifies users by UUID. Any string id (`"alice@example.com"`) is mapped to a
UUID exactly like the official SDK does; a UUID passes through. The recording used a fixed
UUID, so we use it here. (With the default `auto_create_users=True` the client creates
users on first use.)
"""
    ),
    code(
        """
ALICE = uuid.UUID("2b8f5f7e-1c4d-4e8a-9b6f-0d2c3a4b5c60")
print(mb.backend.create_user(ALICE, data={"scenario": "02"}))
alice = mb.user(ALICE)
"""
    ),
    md(
        """
## Recording turns

`record()` is what the LangChain and LlamaIndex adapters call after each turn. With a server,
it writes the turn to a local **outbox** (a SQLite file) and returns at once; a background
thread delivers it. Nothing is lost if the server is down: the turn waits in the outbox.
"""
    ),
    code(
        """
receipt = alice.record([
    {"role": "user",
     "content": "Hi! My name is Alice Chen and I'm a software engineer at Acme Corp."},
    {"role": "assistant",
     "content": "Nice to meet you, Alice! What do you like to do outside of work?"},
    {"role": "user",
     "content": "I love hiking in the mountains on weekends. I live in Berlin."},
    {"role": "assistant",
     "content": "Berlin is a great base for weekend trips to the Alps."},
])
print("recorded turn", receipt.turn_id, "| waiting in the outbox:", mb.status().pending_turns)
"""
    ),
    md(
        """
## Eventual consistency

The server buffers turns and processes them later (when its buffer passes 1024 tokens, or on
`flush`). Until then the profile does not show the new facts:
"""
    ),
    code(
        """
print("profile before processing:", alice.profile())
results = alice.flush()  # deliver the outbox, then ask the server to process the buffer now
print(f"processed: event {results[0].event_id}, {len(results[0].add_profiles)} profile rows added")
"""
    ),
    code(
        """
for row in alice.profile():
    print(f"{row.topic:14} {row.sub_topic:8} {row.content}")
for event in alice.events():
    print(event.event_data.event_tip)
"""
    ),
    code(
        """
context = alice.context()
print(context)
assert "Alice Chen" in context
"""
    ),
    md("Every answer above came from a recorded exchange:"),
    code(
        """
print(server.served)
assert not any(name.startswith("(no recording)") for name in server.served)
"""
    ),
    md(
        """
## Errors say what to do

Only `memobase_integrations.errors` types escape, and their messages name the call, keep the
server's words and say what to do (never the key). A wrong key (the server's recorded 401):
"""
    ),
    code(
        """
from memobase_integrations import errors

wrong = Memobase.remote(
    "http://localhost:8019", "sk-proj-unknown-abc123",
    transport=server.transport(), outbox_path=Path(tempfile.mkdtemp()) / "outbox.db",
)
try:
    wrong.user(ALICE).profile()
except errors.AuthenticationError as exc:
    print(type(exc).__name__, "->", exc)
wrong.close()
"""
    ),
    md("A server that is not running (a real, closed local port):"),
    code(
        """
import socket

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]

down = Memobase.remote(
    f"http://127.0.0.1:{closed_port}", "secret",
    outbox_path=Path(tempfile.mkdtemp()) / "outbox.db", max_retries=0,
)
try:
    down.user(ALICE).profile()
except errors.MemobaseConnectionError as exc:
    print(type(exc).__name__, "->", exc)
down.close(timeout=0)
"""
    ),
    md(
        """
## The CLI against a server

```bash
export MEMOBASE_API_KEY=sk-proj-...
memobase-integrations profile alice@example.com --project-url https://api.memobase.dev
memobase-integrations context alice@example.com --project-url http://localhost:8019
```

An unreachable server exits with code 3 and one line on stderr, so scripts can tell it apart
from an unknown user (exit 1).
"""
    ),
    code(
        """
mb.close()
"""
    ),
]

NOTEBOOKS: dict[str, list[Cell]] = {
    "01_langchain_agent_memory.ipynb": LANGCHAIN,
    "02_llamaindex_chat_engine_and_agent.ipynb": LLAMAINDEX,
    "03_custom_profile_config.ipynb": PROFILE_CONFIG,
    "04_memobase_server.ipynb": SERVER,
}


def build(cells: list[Cell], stem: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"{stem[:2]}-{index:02d}"
        nb.cells.append(cell)
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(NOTEBOOKS[name], name), version=4) + "\n"


def main() -> int:
    for name in NOTEBOOKS:
        (HERE / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
