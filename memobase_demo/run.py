"""``memobase-integrations demo``: a short multi-session conversation with long-term memory.

One user talks to a LangChain agent (``create_agent`` + ``MemobaseMiddleware``) and later to a
LlamaIndex chat engine (``SimpleChatEngine`` + ``MemobaseMemory``), both on the same embedded
store. The demo shows each turn, the ChatBlobs recorded, what each processing run did to the
profile, the profile table, the event timeline, and the exact system prompt the model
received with the memory in it.

Without ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` it says so and runs fully offline: memory
extraction on the stand-in LLM (:mod:`memobase_integrations.testing`, through the real
``openai`` client code path) and chat on the frameworks' fake models. The framework code lives
in ``langchain_app`` / ``llamaindex_app`` and is imported only when the demo runs. This
package sits above the adapters: the core never imports it (the CLI finds ``run_demo``
through the ``memobase_integrations.commands`` entry point), so the core never imports a
framework.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from memobase_integrations import ChatBlob, FlushPolicy, LLMSettings, Memobase
from memobase_integrations.cli import render
from memobase_integrations.cli.exitcodes import CLIError, ExitCode
from memobase_integrations.cli.invocation import command_prefix

from .common import ChatRunner, DemoSetup, Exchange, remembered_facts
from .tap import RecordTap

if TYPE_CHECKING:
    pass

__all__ = ["SESSIONS", "run_demo"]

Framework = Literal["langchain", "llamaindex"]

#: The person talking. Any string works as a user id; Memobase maps it to a UUID.
USER_ID = "gus"

SYSTEM_PROMPT = "You are a friendly assistant. Keep answers short."


@dataclass(frozen=True, slots=True)
class Session:
    framework: Framework
    title: str
    messages: tuple[str, ...]


#: Sessions are separate conversations (new thread / new chat engine): only long-term memory
#: carries what was said before. Statements use phrasings the stand-in LLM recognises.
SESSIONS: tuple[Session, ...] = (
    Session(
        "langchain",
        "Session 1 · LangChain agent · getting to know Gus",
        ("Hi! My name is Gus and I work as a nurse.", "I live in Lisbon and I love hiking."),
    ),
    Session(
        "langchain",
        "Session 2 · LangChain agent · a new conversation",
        ("Any idea for my weekend?",),
    ),
    Session(
        "llamaindex",
        "Session 3 · LlamaIndex chat engine · news",
        ("Big news: I live in Porto now. I love surfing too.",),
    ),
    Session(
        "llamaindex",
        "Session 4 · LlamaIndex chat engine · a new conversation",
        ("What should I do this weekend?",),
    ),
)


# -- setup ---------------------------------------------------------------------------------------
def choose_setup(offline: bool) -> DemoSetup:
    """Real models when an endpoint is configured (and not ``--offline``); else the stand-ins."""
    from memobase_integrations.testing import StandInLLM

    env_llm = LLMSettings.from_env()
    if offline or not env_llm.configured:
        stand_in = StandInLLM()
        return DemoSetup(llm=stand_in.settings(), online=False, chat_model=None, stand_in=stand_in)
    chat_model = os.environ.get("MEMOBASE_DEMO_CHAT_MODEL") or env_llm.best_model
    return DemoSetup(llm=env_llm, online=True, chat_model=chat_model)


def _banner(console: Console, setup: DemoSetup, db_path: Path) -> None:
    from memobase_integrations.testing import LABEL

    if setup.online:
        where = setup.llm.base_url or "OpenAI (api.openai.com)"
        body = Text.assemble(
            ("Using your LLM endpoint. ", "bold green"),
            f"Memory extraction: {setup.llm.best_model} at {where}.\n",
            f"Chat: {setup.chat_model} where the framework's OpenAI package is installed.",
        )
    else:
        body = Text.assemble(
            ("OFFLINE DEMO: no real LLM is used. ", "bold yellow"),
            "Memory extraction runs on the ",
            (LABEL, "bold"),
            " through the real openai client code path; the chat answers come from the "
            "frameworks' fake chat models. ",
        )
        if LLMSettings.from_env().configured:  # --offline although an endpoint is set
            body.append(
                "Your configured LLM endpoint is not used (--offline); run without it to use it."
            )
        else:
            body.append(
                "Set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server such as Ollama) "
                "to run on real models."
            )
    body.append(f"\nStore: sqlite:///{db_path} (embedded engine, kept after the run).")
    console.print(Panel(body, title="memobase-integrations demo", box=box.DOUBLE))


def _prepare_db(db_path: Path, keep: bool) -> str:
    if db_path.exists() and not keep:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(
            f"Cannot create the demo store's directory {str(db_path.parent)!r}: "
            f"{exc.strerror or exc}. Pass --db with a writable path.",
            ExitCode.CONFIG,
        ) from None
    return f"sqlite:///{db_path}"


# -- the run -------------------------------------------------------------------------------------
class _Recorded:
    """Collects the ChatBlobs the adapters recorded during one turn."""

    def __init__(self) -> None:
        self.blobs: list[ChatBlob] = []

    def __call__(self, user_id: UUID, blobs: Sequence[ChatBlob], receipt: object) -> None:
        self.blobs.extend(blobs)


def _recorded_table(blobs: Sequence[ChatBlob]) -> Table:
    table = Table(
        box=box.SIMPLE, show_header=True, title="recorded (ChatBlob)", title_justify="left"
    )
    table.add_column("role", style="dim", no_wrap=True)
    table.add_column("content", overflow="fold")
    for blob in blobs:
        for message in blob.messages:
            table.add_row(message.role, Text(message.content))
    return table


def _show_system_prompt(console: Console, exchange: Exchange, framework: str) -> None:
    console.print(Rule(f"the exact system prompt the {framework} model received", style="magenta"))
    for index, prompt in enumerate(exchange.system_prompts, start=1):
        if len(exchange.system_prompts) > 1:
            console.print(
                Text(f"[system message {index} of {len(exchange.system_prompts)}]", style="dim")
            )
        console.print(Text(prompt), soft_wrap=True)
    console.print(Rule(style="magenta"))


def _build_runner(
    framework: Framework, mb: Memobase, setup: DemoSetup, notes: list[str]
) -> ChatRunner:
    if framework == "langchain":
        from .langchain_app import LangChainRunner

        return LangChainRunner(mb, USER_ID, setup, notes, SYSTEM_PROMPT)
    from .llamaindex_app import LlamaIndexRunner

    return LlamaIndexRunner(mb, USER_ID, setup, notes, SYSTEM_PROMPT)


_EXTRAS: dict[Framework, str] = {"langchain": "langchain", "llamaindex": "llamaindex"}


def _missing_framework(framework: Framework, exc: ImportError) -> Text:
    return Text(
        f"note: skipping the {framework} sessions: {exc.name or exc} is not installed "
        f"(pip install 'memobase-integrations[{_EXTRAS[framework]}]').",
        style="yellow",
    )


def _frameworks(choice: str) -> tuple[Framework, ...]:
    normalized = choice.strip().lower().replace("-", "").replace("_", "")
    if normalized == "both":
        return ("langchain", "llamaindex")
    if normalized in {"langchain", "llamaindex"}:
        return (normalized,)  # type: ignore[return-value]
    raise CLIError(
        f"Unknown --framework {choice!r}: use langchain, llamaindex or both.", ExitCode.USAGE
    )


def run_demo(
    *,
    db_path: Path,
    keep: bool = False,
    offline: bool = False,
    framework: str = "both",
    console: Console | None = None,
) -> None:
    """Run the scripted sessions and print every step (see the module docstring)."""
    frameworks = _frameworks(framework)
    console = console or Console(highlight=False)
    started = time.perf_counter()
    setup = choose_setup(offline)
    db_path = db_path.expanduser().resolve()
    _banner(console, setup, db_path)
    url = _prepare_db(db_path, keep)

    from memobase_integrations.backends.embedded import EmbeddedBackend

    recorded = _Recorded()
    with console.status("opening the embedded store …"):
        inner = EmbeddedBackend(
            database_url=url,
            llm=setup.llm,
            # Processing happens when a session ends (below), so every step is visible.
            policy=FlushPolicy(idle_flush_seconds=None, flush_on_close=True),
        )
    mb = Memobase(RecordTap(inner, recorded).as_backend())
    user = mb.user(USER_ID)
    runners: dict[Framework, ChatRunner] = {}
    missing: set[Framework] = set()
    try:
        for session in SESSIONS:
            if session.framework not in frameworks or session.framework in missing:
                continue
            runner = runners.get(session.framework)
            if runner is None:
                runner = _load_runner(console, session.framework, mb, setup)
                if runner is None:
                    missing.add(session.framework)
                    continue
                runners[session.framework] = runner
            _run_session(console, runner, session, recorded)
            _process(console, mb, user.external_id)
        if missing == set(frameworks):
            raise CLIError(
                "The demo needs LangChain or LlamaIndex: pip install "
                "'memobase-integrations[langchain,llamaindex]'.",
                ExitCode.CONFIG,
            )
        _finale(console, mb, setup)
    finally:
        for runner in runners.values():
            runner.close()
        with console.status("closing the store …"):
            mb.close(timeout=30.0)
    console.print(
        Text(
            f"Done in {time.perf_counter() - started:.1f}s. Explore the store yourself:",
            style="bold",
        )
    )
    prefix = command_prefix()  # runs from here even when the venv is not activated
    for command in (f"profile {USER_ID}", f"events {USER_ID}", f"context {USER_ID}", "status"):
        console.print(Text(f"  {prefix} {command} --database-url {url}"), soft_wrap=True)


def _load_runner(
    console: Console, framework: Framework, mb: Memobase, setup: DemoSetup
) -> ChatRunner | None:
    """The framework's chat app, or ``None`` (with a note) when it is not installed."""
    notes: list[str] = []
    try:
        with console.status(f"loading {framework} …"):
            runner = _build_runner(framework, mb, setup, notes)
    except ImportError as exc:
        console.print(_missing_framework(framework, exc))
        return None
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"))
    return runner


def _run_session(
    console: Console, runner: ChatRunner, session: Session, recorded: _Recorded
) -> None:
    """One conversation: each turn, what was recorded, then the prompt the model saw."""
    runner.new_session()
    console.print()
    console.print(Rule(Text(session.title, style="bold"), style="cyan"))
    console.print(Text(runner.label, style="dim"))
    last: Exchange | None = None
    for message in session.messages:
        recorded.blobs.clear()
        console.print(Text.assemble(("you  › ", "bold green"), message))
        with console.status("the agent is answering …"):
            last = runner.ask(message)
        console.print(Text.assemble(("bot  › ", "bold blue"), last.reply))
        if recorded.blobs:
            console.print(_recorded_table(recorded.blobs))
        else:
            console.print(Text("(nothing recorded for this turn)", style="red"))
    if last is not None and remembered_facts(last.system_prompts):
        _show_system_prompt(console, last, session.framework)


def _process(console: Console, mb: Memobase, user_id: str) -> None:
    """End of session: process the buffered turns and show what changed."""
    user = mb.user(user_id)
    with console.status("processing the session's turns into memory (LLM pipeline) …"):
        results = user.flush(wait=True)
    changed = [
        r for r in results if r.event_id or r.add_profiles or r.update_profiles or r.delete_profiles
    ]
    if not changed:
        console.print(
            Text(
                "processed: nothing worth remembering in this session (no event, no profile "
                "change)",
                style="dim",
            )
        )
        return
    profile = user.profile()
    console.print(render.chat_results_table(changed, profile, title="processing result"))
    event_ids = {r.event_id for r in changed if r.event_id}
    for event in user.events(topk=10):
        tip = (event.event_data.event_tip or "").strip()
        if event.id in event_ids and tip:
            console.print(Text("event recorded:", style="bold"))
            console.print(Text(tip), soft_wrap=True)


def _finale(console: Console, mb: Memobase, setup: DemoSetup) -> None:
    user = mb.user(USER_ID)
    console.print()
    console.print(Rule(Text("What Memobase now knows about gus", style="bold"), style="green"))
    console.print(render.profile_table(user.profile(), title=f"profile of {USER_ID}"))
    console.print(
        render.events_timeline(user.events(topk=10), title="event timeline (newest first)")
    )
    status = mb.status()
    console.print(
        Text(
            f"buffer: {status.pending_turns} turns pending, {status.failed} failed",
            style="dim",
        )
    )
    if not setup.online:
        _stand_in_stats(console, setup)


def _stand_in_stats(console: Console, setup: DemoSetup) -> None:
    """The stand-in counts its calls; showing them makes the pipeline's work visible."""
    if setup.stand_in is None or not setup.stand_in.calls_by_step:
        return
    calls = dict(setup.stand_in.calls_by_step)
    summary = ", ".join(f"{step}: {n}" for step, n in sorted(calls.items()))
    console.print(Text(f"stand-in LLM calls by pipeline step: {summary}", style="dim"))
