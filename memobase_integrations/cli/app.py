"""The ``memobase-integrations`` command: look inside and manage long-term user memory.

Commands open the embedded store (``--database-url``) or a Memobase server
(``--project-url``, key from ``MEMOBASE_API_KEY``), do one thing and close. Results go to
stdout (tables for people, ``--json`` for scripts); progress and notes go to stderr; every
failure is one line on stderr and an exit code from :class:`ExitCode`, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from ..__about__ import __version__
from ..errors import NotFoundError, ValidationError
from ..facade import Memobase, UserMemory
from ..models import EventGist, UserEvent
from ..settings import LLMSettings
from ..values import MemoryStatus
from . import render
from .exitcodes import CLIError, ExitCode, debug_enabled, describe_failure, wrong_endpoint
from .plugins import load_command
from .serve import serve as _serve_command
from .target import Target

__all__ = ["PROG", "app", "main", "run"]

PROG = "memobase-integrations"

_EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 unknown user, refused input or declined confirmation · 2 usage · "
    "3 store or server unreachable · 4 invalid configuration (URL, API key, profile config, "
    "no LLM) · 5 processing (LLM) failed · 70 internal error · 130 interrupted."
)


class _PlainArgument(TyperArgument):
    """An argument shown as ``USER`` (usage and help), without typer's ``<str>`` tag."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        return self.display_name_raw.upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.upper()
        return name if self.required else f"[{name}]"


class _PlainOption(TyperOption):
    """An option shown as ``--limit N`` / ``--json``, without ``<int>`` / ``<bool>`` tags."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        return (self.name or "value").upper()


def _plain(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    return params


class _Command(TyperCommand):
    """Help and usage the way people read them: ``USER``, ``--limit N``, no type tags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


app = typer.Typer(
    name=PROG,
    cls=_Group,
    rich_markup_mode="markdown",
    help=(
        "Look inside and manage long-term user memory (Memobase profiles and event "
        "timelines), in the embedded store or on a Memobase server.\n\n" + _EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(
    help="Show, validate or set the profile config (YAML).",
    cls=_Group,
    rich_markup_mode="markdown",
)
app.add_typer(config_app, name="config")

# -- shared options ----------------------------------------------------------------------------
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="Embedded store (SQLAlchemy URL). Default: $MEMOBASE_DATABASE_URL or "
        "sqlite:///memobase.db.",
        show_default=False,
    ),
]
ProjectUrl = Annotated[
    str | None,
    typer.Option(
        "--project-url",
        metavar="URL",
        help="Memobase server URL (Cloud: https://api.memobase.dev); the key is read from "
        "$MEMOBASE_API_KEY. Default: $MEMOBASE_PROJECT_URL.",
        show_default=False,
    ),
]
UserArg = Annotated[
    str, typer.Argument(help="The user id your app uses (any string, or a UUID v4/v5).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _stdout() -> Console:
    # markup=False: user ids and memos are data; "[b]" in one must print as typed.
    return Console(highlight=False, soft_wrap=False, markup=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


def _print_json(data: Any) -> None:
    """Plain ``json.dumps`` on stdout: rich would wrap long lines and break the JSON."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def _memobase(target: Target, *, llm: LLMSettings | None = None) -> Iterator[Memobase]:
    mb = target.open(llm=llm)
    try:
        yield mb
    finally:
        mb.close(timeout=5.0)


def _has_work(u: UserMemory) -> bool:
    status = u.status()
    return any(s.pending_turns or s.processing or s.failed for s in status.users) or bool(
        status.pending_turns or status.failed
    )


def _server_knows(u: UserMemory) -> bool:
    """A Memobase server may hold a user with turns buffered but nothing processed yet."""
    from ..backends.remote import RemoteBackend

    backend = u.memobase.backend
    if not isinstance(backend, RemoteBackend):
        return False
    try:
        backend.get_user(u.id)
    except NotFoundError as exc:
        if wrong_endpoint(exc):
            raise
        return False
    return True


def _require_known(u: UserMemory, target: Target, *, has_profile: bool, has_events: bool) -> None:
    """Reading commands refuse a user with no memory at all (exit 1): usually a typo'd id
    or the wrong store, which an empty table would hide."""
    if has_profile or has_events or _has_work(u) or _server_knows(u):
        return
    raise CLIError(
        f"no memory for user {u.external_id!r} in {target.describe()}: nothing was ever "
        f"recorded for this id (it maps to {u.id}). Check the id and the store.",
        ExitCode.USER_ERROR,
    )


# -- commands ----------------------------------------------------------------------------------
@app.command(cls=_Command)
def profile(
    user: UserArg,
    json_out: JsonFlag = False,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Only these topics (repeatable).")
    ] = None,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """The user's profile: one row per topic / sub_topic memo."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        rows = u.profile(only_topics=topic) if topic else u.profile()
        if not rows and not (topic and u.profile()):
            _require_known(u, target, has_profile=False, has_events=bool(u.events()))
        if json_out:
            _print_json(render.profile_json(rows))
            return
        if not rows:
            _stderr().print(
                f"No profile yet for {user!r}: its turns have not produced profile facts "
                f"(see `{PROG} status` and `{PROG} flush {user}`)."
            )
            return
        _stdout().print(render.profile_table(rows, title=f"profile of {user} ({u.id})"))


@app.command(cls=_Command)
def events(
    user: UserArg,
    json_out: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many events.")] = 10,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """The user's event timeline, newest first, with profile changes."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        items = u.events(topk=limit)
        if not items:
            _require_known(u, target, has_profile=bool(u.profile()), has_events=False)
        if json_out:
            _print_json(render.events_json(items))
            return
        if not items:
            _stderr().print(f"No events yet for {user!r} (see `{PROG} status`).")
            return
        _stdout().print(render.events_timeline(items, title=f"events of {user} ({u.id})"))


@app.command(cls=_Command)
def search(
    user: UserArg,
    query: Annotated[str, typer.Argument(help="What to look for, in a few words.")],
    gists: Annotated[
        bool, typer.Option("--gists", help="Search event gists (one fact each), not events.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=100, metavar="N", help="How many hits.")
    ] = 10,
    days: Annotated[
        int,
        typer.Option("--days", min=1, metavar="N", help="Only the last N days."),
    ] = 180,
    json_out: JsonFlag = False,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Search the user's events (or gists) for QUERY, best match first.

    The embedded store searches by words with embeddings off (and adds meaning with them);
    a Memobase server searches only with its embeddings on.
    """
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        options = {"time_range_in_days": days}
        hits: list[UserEvent] | list[EventGist] = (
            u.search_gists(query, limit, **options)
            if gists
            else u.search_events(query, limit, **options)
        )
        if not hits:
            _require_known(u, target, has_profile=bool(u.profile()), has_events=bool(u.events()))
        if json_out:
            _print_json(render.search_json(hits))
            return
        if not hits:
            kind = "gists" if gists else "events"
            _stderr().print(f"No {kind} of {user!r} match {query!r} (last {days} days).")
            return
        title = f"{'gists' if gists else 'events'} of {user} matching {query!r}"
        _stdout().print(render.search_table(hits, title=title))


@app.command(cls=_Command)
def context(
    user: UserArg,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Token budget of the context.")
    ] = 1000,
    json_out: JsonFlag = False,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """The memory text an app injects into its prompts for this user."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        has_profile = bool(u.profile())
        if not has_profile:
            _require_known(u, target, has_profile=False, has_events=bool(u.events()))
        text = u.context(max_token_size=max_tokens)
        if json_out:
            _print_json(
                {
                    "user": user,
                    "user_id": str(u.id),
                    "max_token_size": max_tokens,
                    "context": text,
                }
            )
            return
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command(cls=_Command)
def status(
    user: Annotated[
        str | None, typer.Argument(help="Only this user (default: every user).")
    ] = None,
    json_out: JsonFlag = False,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Work outstanding: turns waiting to be processed, buffered tokens, failures."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user) if user else None
        result = _without_cli_llm_note(u.status() if u else mb.status())
        if json_out:
            _print_json(render.status_json(result))
            return
        names = {u.id: u.external_id} if u else {}
        _stdout().print(render.status_table(result, names=names))


def _without_cli_llm_note(status: MemoryStatus) -> MemoryStatus:
    """The embedded backend explains pending turns with "no LLM configured" when *this*
    process has none; the CLI opens stores without an LLM on purpose, so that note would
    blame the app, which may well have one."""
    from ..engine.llm import NO_LLM_MESSAGE

    users = tuple(
        dataclasses.replace(u, last_error=None) if u.last_error == NO_LLM_MESSAGE else u
        for u in status.users
    )
    return dataclasses.replace(status, users=users)


def _processing_llm(target: Target, stand_in: bool, command: str) -> LLMSettings | None:
    """The LLM ``command`` (``flush`` or ``worker``) processes with; a server brings its own."""
    if target.is_remote:
        if stand_in:
            raise CLIError(
                "--stand-in only applies to the embedded store: a Memobase server processes "
                "with its own LLM.",
                ExitCode.USAGE,
            )
        return None
    if stand_in:
        from ..testing import LABEL, StandInLLM

        _stderr().print(Text(f"Processing with {LABEL}.", style="yellow"))
        return StandInLLM().settings()
    llm = LLMSettings.from_env()
    if not llm.configured:
        raise CLIError(
            f"{command} needs an LLM to process turns: set OPENAI_API_KEY (plus OPENAI_BASE_URL "
            "for a local server such as Ollama), or pass --stand-in to use the offline, "
            "rule-based stand-in LLM for a try-out.",
            ExitCode.CONFIG,
        )
    return llm


@app.command(cls=_Command)
def flush(
    user: Annotated[
        str | None,
        typer.Argument(help="Only this user (default: every user with work outstanding)."),
    ] = None,
    stand_in: Annotated[
        bool,
        typer.Option("--stand-in", help="Embedded only: process with the offline stand-in LLM."),
    ] = False,
    json_out: JsonFlag = False,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Process buffered turns now, into profile rows and events."""
    target = Target.resolve(database_url, project_url)
    llm = _processing_llm(target, stand_in, "flush")
    err = _stderr()
    with _memobase(target, llm=llm) as mb:
        if user is not None:
            users = [mb.user(user)]
        else:
            users = [
                mb.user(s.user_id)
                for s in mb.status().users
                if s.pending_turns or s.failed or s.buffered_tokens
            ]
        if not users:
            if json_out:
                _print_json({})
            else:
                err.print("Nothing to process: no user has buffered turns.")
            return
        outcome: dict[str, Any] = {}
        for u in users:
            with err.status(Text(f"processing {u.external_id} …"), spinner="dots"):
                results = u.flush(wait=True)
            if json_out:
                outcome[u.external_id] = [r.model_dump(mode="json") for r in results]
                continue
            if not results:
                err.print(f"{u.external_id}: nothing to process.")
                continue
            _stdout().print(
                render.chat_results_table(results, u.profile(), title=f"processed {u.external_id}")
            )
        if json_out:
            _print_json(outcome)


@app.command(cls=_Command)
def worker(
    stand_in: Annotated[
        bool, typer.Option("--stand-in", help="Process with the offline stand-in LLM.")
    ] = False,
    idle_flush_seconds: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="Process a user's buffer after this long without new turns.",
            min=0.1,
        ),
    ] = 300.0,
    drain_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="On stop, keep processing what is buffered for at most this long.",
            min=0,
        ),
    ] = 30.0,
    concurrency: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Process up to N users at once (one user's batches never overlap).",
            min=1,
        ),
    ] = 32,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Process the embedded store's buffers continuously, until Ctrl-C or SIGTERM.

    For apps that run Memobase.embedded(..., start_worker=False) and leave processing to a
    dedicated process; several workers may share one PostgreSQL store.
    """
    target = Target.resolve(database_url, project_url)
    if target.is_remote:
        raise CLIError(
            "worker runs the embedded engine's processing; a Memobase server processes its own "
            "buffers. Use --database-url.",
            ExitCode.USAGE,
        )
    llm = _processing_llm(target, stand_in, "worker")
    assert llm is not None
    from .worker import run_worker

    run_worker(
        target.checked_database_url(),
        llm,
        idle_flush_seconds=idle_flush_seconds,
        drain_timeout=drain_timeout,
        concurrency=concurrency,
        console=_stdout(),
    )


@app.command(cls=_Command)
def export(
    user: UserArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Everything kept about a user, as JSON."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        _require_known(
            u,
            target,
            has_profile=bool(u.profile()),
            has_events=bool(u.events()),
        )
        data = u.export()
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"Cannot write {output}: {exc.strerror or exc}.") from None
    _stderr().print(f"Exported {user!r} to {output}.")


@app.command(cls=_Command)
def forget(
    user: UserArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Delete everything kept about a user (profile, events, buffered turns).

    Idempotent: forgetting a user with no memory succeeds (exit 0) and says so.
    """
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        u = mb.user(user)
        if not yes:
            confirmed = typer.confirm(
                f"Forget everything about {user!r} ({u.id}) in {target.describe()}? "
                "This cannot be undone.",
                default=False,
                err=True,
            )
            if not confirmed:
                raise CLIError("Aborted: nothing was deleted.", ExitCode.USER_ERROR)
        try:
            found = u.delete()
        except NotFoundError as exc:
            if wrong_endpoint(exc):
                raise
            found = False
    if not found:
        _stderr().print(f"Nothing was stored for {user!r}; nothing to forget.")
        return
    _stderr().print(f"Forgot {user!r} ({u.id}).")


# -- config ------------------------------------------------------------------------------------
def _load_config(path: Path) -> tuple[str, Any]:
    """Read and validate a profile config YAML file before anything is sent anywhere."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CLIError(
            f"Cannot read the profile config {str(path)!r}: {exc.strerror or exc}.",
            ExitCode.CONFIG,
        ) from None
    except UnicodeDecodeError as exc:
        raise CLIError(
            f"Invalid profile config {str(path)!r}: it is not UTF-8 text (byte "
            f"{exc.object[exc.start]:#04x} at offset {exc.start}). Save it as UTF-8.",
            ExitCode.CONFIG,
        ) from None
    from ..engine.config import ProfileConfig

    try:
        config = ProfileConfig.from_yaml(text)
    except ValidationError as exc:
        problems = _config_problems(exc)
        if len(problems) > 1:
            err = _stderr()
            err.print(f"Invalid profile config {str(path)!r}: {len(problems)} problems:")
            for problem in problems:
                err.print(f"  - {problem}")
            raise CLIError(
                f"Invalid profile config {str(path)!r}: {len(problems)} problems (listed "
                "above); fix them all and run `config validate` again.",
                ExitCode.CONFIG,
            ) from None
        raise CLIError(
            f"Invalid profile config {str(path)!r}: {exc.message}", ExitCode.CONFIG
        ) from None
    return text, config


def _config_problems(exc: ValidationError) -> list[str]:
    """Every problem pydantic found (the exception's message names only the first)."""
    if not isinstance(exc.detail, list):
        return [exc.message]
    problems = []
    for error in exc.detail:
        loc = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.get("loc", ())
        ).lstrip(".")
        what = "unknown key" if error.get("type") == "extra_forbidden" else error.get("msg", "")
        problems.append(f"{loc or '(top level)'}: {what}")
    return problems or [exc.message]


@config_app.command("show", cls=_Command)
def config_show(
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Print the profile config in use (YAML)."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        text = mb.get_profile_config()
    if not text.strip():
        _stderr().print("No custom profile config: the default Memobase profile is in use.")
        return
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@config_app.command("validate", cls=_Command)
def config_validate(
    file: Annotated[Path, typer.Argument(help="The YAML file to check.")],
) -> None:
    """Check a profile config YAML file without touching any store."""
    _load_config(file)
    _stderr().print(f"{file} is a valid profile config.")


@config_app.command("set", cls=_Command)
def config_set(
    file: Annotated[Path, typer.Argument(help="The YAML file to use (validated first).")],
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Validate a profile config YAML file, then make it the store's (or project's) config."""
    text, _ = _load_config(file)
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        mb.set_profile_config(text)
    _stderr().print(f"Profile config set from {file} on {target.describe()}.")


@config_app.command("reset", cls=_Command)
def config_reset(
    database_url: DatabaseUrl = None,
    project_url: ProjectUrl = None,
) -> None:
    """Go back to the default profile config."""
    target = Target.resolve(database_url, project_url)
    with _memobase(target) as mb:
        mb.set_profile_config(None)
    _stderr().print(f"Profile config reset to the default on {target.describe()}.")


# -- demo ----------------------------------------------------------------------------------
@app.command(cls=_Command)
def demo(
    db: Annotated[Path, typer.Option("--db", help="The SQLite file the demo writes.")] = Path(
        "memobase-demo.db"
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the existing file instead of starting fresh.")
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the offline stand-in even if OPENAI_API_KEY is set."),
    ] = False,
    framework: Annotated[
        str,
        typer.Option("--framework", help="langchain, llamaindex or both."),
    ] = "both",
) -> None:
    """Run a short multi-session conversation with memory and show every step."""
    run_demo = load_command("demo")
    run_demo(db_path=db, keep=keep, offline=offline, framework=framework)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Root options."""


# The HTTP server lives in its own module (it imports its web stack only when it runs).
app.command(name="serve", cls=_Command)(_serve_command)


# -- entry point -------------------------------------------------------------------------------
def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises, never prints a traceback)."""
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name=PROG)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{PROG}: error: {code}\n")
        return int(ExitCode.USER_ERROR)
    except BaseException as exc:  # one line, never a traceback
        if isinstance(exc, KeyboardInterrupt):
            return int(ExitCode.INTERRUPTED)
        message, code_ = describe_failure(exc)
        if debug_enabled():
            traceback.print_exc()
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return int(code_)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: exits with the code of :func:`run`."""
    code = run(argv)
    if code:
        raise SystemExit(code)
