"""Run every benchmark and write ``benchmarks/results/`` (see ``benchmarks/README.md``).

python -m benchmarks --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
python -m benchmarks --quick         # tiny smoke configuration (CI), writes to $TMPDIR
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# mem0 reads these at import time: never phone home, keep its files in our work dir.
os.environ.setdefault("MEM0_TELEMETRY", "False")

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.capacity import CapacityRow, run_capacity
from benchmarks.conversations import Conversation, Session, generate, raw_tokens
from benchmarks.fake_server import FakeMemobaseServer
from benchmarks.hotpath import HotPlan, SystemRun, run_paired
from benchmarks.llm import HOSTED, INSTANT, LatencyModel, ServedBenchLLM
from benchmarks.pace import PaceRow, run_pace
from benchmarks.probe import CallerThreadProbe
from benchmarks.ratios import RatiosResult, run_ratios
from benchmarks.record_bench import FlushCost, RecordResult, run_flush_cost, run_record_latency
from benchmarks.report import Report
from benchmarks.scale import ScalePoint, drop_postgres, prepare_postgres, run_id, run_scale
from benchmarks.systems.base import BenchEnv, BenchSystem, Script
from benchmarks.worker_cost import WorkerCost, run_worker_cost

__all__ = ["Config", "main"]

logger = logging.getLogger("benchmarks")

RESULTS = Path(__file__).resolve().parent / "results"

Factory = Callable[[BenchEnv], BenchSystem]


@dataclass(slots=True)
class Config:
    """Sizes of one run. ``full()`` is what the committed results use."""

    quick: bool
    conversations: int
    sessions: int
    turns_per_session: int
    instant_warmup: int
    hosted: LatencyModel
    hosted_history_sessions: int
    hosted_turns: int
    hosted_warmup: int
    growth_users: list[int]
    growth_messages: list[int]
    capacity_processes: list[int]
    capacity_users: int
    capacity_window_s: float
    capacity_warmup_s: float
    record_samples: int
    scale_sizes: list[int]
    context_samples: int
    scale_record_samples: int
    mem0_scale_sizes: list[int]
    mem0_scale_samples: list[int]
    ratio_record_pairs: int = 1500
    ratio_context_users: int = 2000
    ratio_context_samples: int = 400
    ratio_fresh_runs: int = 7
    systems: list[str] = field(default_factory=list)

    @classmethod
    def full(cls) -> Config:
        return cls(
            quick=False,
            conversations=4,
            sessions=6,
            turns_per_session=25,
            instant_warmup=3,
            hosted=HOSTED,
            hosted_history_sessions=1,
            hosted_turns=40,
            hosted_warmup=2,
            growth_users=[2, 1],
            growth_messages=[100, 1000],
            capacity_processes=[1, 3],
            capacity_users=2400,
            capacity_window_s=90.0,
            capacity_warmup_s=10.0,
            record_samples=2000,
            scale_sizes=[1_000, 10_000, 100_000],
            context_samples=400,
            scale_record_samples=1000,
            mem0_scale_sizes=[1_000, 10_000],
            mem0_scale_samples=[60, 20],
        )

    @classmethod
    def quick_config(cls) -> Config:
        return cls(
            quick=True,
            conversations=1,
            sessions=3,
            turns_per_session=5,
            instant_warmup=1,
            hosted=LatencyModel("hosted", llm_delay_s=0.01, per_token_delay_s=0.0002),
            hosted_history_sessions=1,
            hosted_turns=6,
            hosted_warmup=1,
            growth_users=[1, 1],
            growth_messages=[20, 60],
            capacity_processes=[1, 2],
            capacity_users=8,
            capacity_window_s=4.0,
            capacity_warmup_s=0.5,
            record_samples=30,
            scale_sizes=[50, 200],
            context_samples=20,
            scale_record_samples=20,
            mem0_scale_sizes=[50],
            mem0_scale_samples=[10],
            ratio_record_pairs=40,
            ratio_context_users=100,
            ratio_context_samples=20,
            ratio_fresh_runs=2,
        )


@dataclass(frozen=True, slots=True)
class Spec:
    """One system of the registry and where it runs."""

    key: str
    factory: Factory
    hosted: bool = True
    pace: bool = False
    growth: bool = False


def registry() -> list[Spec]:
    """Every system, in report order (baselines first, the floor last)."""
    from benchmarks.systems.floor import SQLiteFloor
    from benchmarks.systems.langchain_peers import LangChainLangMem, LangChainMem0Documented
    from benchmarks.systems.langchain_systems import (
        LangChainChatHistory,
        LangChainMemobase,
        LangChainNoMemory,
        LangChainNoopMiddleware,
    )
    from benchmarks.systems.llamaindex_systems import (
        LlamaDefaultMemory,
        LlamaFactExtraction,
        LlamaMem0,
        LlamaMem0Documented,
        LlamaMemobase,
        LlamaNoMemory,
        LlamaStaticBlock,
    )

    # langchain_core installs its own "always" filter for its deprecation warnings on import.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return [
        Spec("lc-none", LangChainNoMemory),
        Spec("lc-empty-middleware", LangChainNoopMiddleware),
        Spec("lc-history", LangChainChatHistory, hosted=False),
        Spec(
            "lc-memobase-embedded",
            lambda env: LangChainMemobase(env, "embedded"),
            pace=True,
            growth=True,
        ),
        Spec("lc-memobase-remote", lambda env: LangChainMemobase(env, "remote")),
        Spec("lc-mem0-doc", LangChainMem0Documented, pace=True, growth=True),
        Spec("lc-langmem", LangChainLangMem, pace=True, growth=True),
        Spec("li-none", LlamaNoMemory, hosted=False),
        Spec("li-memory", LlamaDefaultMemory),
        Spec("li-static-block", LlamaStaticBlock, hosted=False),
        Spec("li-memobase-embedded", lambda env: LlamaMemobase(env, "embedded"), pace=True),
        Spec("li-memobase-remote", lambda env: LlamaMemobase(env, "remote")),
        Spec("li-fact", LlamaFactExtraction, pace=True, growth=True),
        Spec("li-mem0", LlamaMem0, pace=True, growth=True),
        Spec("li-mem0-doc", LlamaMem0Documented, pace=True),
        Spec("floor", SQLiteFloor, hosted=False),
    ]


BASELINES = {"lc": "lc-none", "li": "li-memory"}


def _selected(cfg: Config, key: str) -> bool:
    return not cfg.systems or key in cfg.systems


class Progress:
    """One line per step with the elapsed time, so a long run shows where it is."""

    def __init__(self, total_steps: int) -> None:
        self.total = total_steps
        self.done = 0
        self.began = time.perf_counter()

    def step(self, text: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.began
        print(
            f"[{self.done:>3}/{self.total}] {elapsed / 60:5.1f} min  {text}",
            flush=True,
        )


def _plans(cfg: Config, conversations: list[Conversation]) -> dict[str, HotPlan]:
    first = conversations[0]
    history_sessions = first.sessions[: cfg.hosted_history_sessions]
    later = first.sessions[cfg.hosted_history_sessions :]
    measured: list[Session] = []
    left = cfg.hosted_turns
    for session in later:
        if left <= 0:
            break
        measured.append(Session(day=session.day, turns=session.turns[:left]))
        left -= len(measured[-1].turns)
    return {
        "instant": HotPlan("instant", [], conversations, cfg.instant_warmup),
        "hosted": HotPlan(
            "hosted",
            [Conversation(first.user_id, tuple(history_sessions))],
            [Conversation(first.user_id, tuple(measured))],
            cfg.hosted_warmup,
        ),
    }


def _hot_path(
    cfg: Config,
    specs: list[Spec],
    conversations: list[Conversation],
    envs: dict[str, BenchEnv],
    progress: Progress,
) -> list[SystemRun]:
    by_key = {s.key: s for s in specs}
    runs: list[SystemRun] = []
    for mode, plan in _plans(cfg, conversations).items():
        env = envs[mode]
        for spec in specs:
            if not _selected(cfg, spec.key) or (mode == "hosted" and not spec.hosted):
                continue
            prefix = spec.key.split("-")[0]
            base_key = BASELINES.get(prefix)
            base = by_key[base_key].factory if base_key else None
            started = time.perf_counter()
            run = run_paired(spec.key, spec.factory, base, env, plan)
            runs.append(run)
            progress.step(
                f"{mode:<7} {spec.key:<22} overhead p50 {run.overhead_p50_ms} ms "
                f"{run.overhead_p50_ci_ms}, memory in prompt {run.memory_injected_fraction}, "
                f"{time.perf_counter() - started:.0f}s"
                + (f"  ERROR {run.error}" if run.error else "")
            )
    return runs


def _growth_conversations(cfg: Config, users: int, messages_per_user: int) -> list[Conversation]:
    turns = messages_per_user // 2
    per_session = min(cfg.turns_per_session, turns)
    sessions = max(1, turns // per_session)
    return generate(users, sessions, per_session, seed=9)


def _pace(
    cfg: Config,
    specs: list[Spec],
    conversations: list[Conversation],
    env: BenchEnv,
    progress: Progress,
) -> tuple[list[PaceRow], list[PaceRow]]:
    pace: list[PaceRow] = []
    growth: list[PaceRow] = []
    for spec in specs:
        if spec.pace and _selected(cfg, spec.key):
            row = run_pace(spec.key, spec.factory, env, conversations, "pace")
            pace.append(row)
            j = row.as_json()
            progress.step(
                f"pace    {spec.key:<22} {j['llm_calls_per_100_messages']} calls/100 msgs, "
                f"{j['prompt_tokens_per_raw_token']} prompt tok/raw tok ({row.wall_s:.0f}s)"
                + (f"  ERROR {row.error}" if row.error else "")
            )
    for users, messages in zip(cfg.growth_users, cfg.growth_messages, strict=True):
        convs = _growth_conversations(cfg, users, messages)
        for spec in specs:
            if spec.growth and _selected(cfg, spec.key):
                row = run_pace(spec.key, spec.factory, env, convs, f"growth{messages}")
                growth.append(row)
                j = row.as_json()
                progress.step(
                    f"growth  {spec.key:<22} {messages} msgs/user: "
                    f"{j['llm_calls_per_100_messages']} calls/100 msgs ({row.wall_s:.0f}s)"
                    + (f"  ERROR {row.error}" if row.error else "")
                )
    return pace, growth


def _postgres_url(args: argparse.Namespace) -> str | None:
    if args.skip_postgres:
        return None
    return args.postgres_url or os.environ.get("MEMOBASE_TEST_POSTGRES_URL")


def _scale(
    cfg: Config,
    args: argparse.Namespace,
    env: BenchEnv,
    rid: str,
    notes: list[str],
    progress: Progress,
) -> list[ScalePoint]:
    points: list[ScalePoint] = []
    sqlite_path = env.workdir / "scale.db"
    points += run_scale(
        "sqlite",
        f"sqlite:///{sqlite_path}",
        cfg.scale_sizes,
        env.llm.settings(),
        context_samples=cfg.context_samples,
        record_samples=cfg.scale_record_samples,
    )
    progress.step("scale   sqlite done")
    pg = _postgres_url(args)
    if pg is None:
        notes.append(
            "PostgreSQL scale and capacity skipped: "
            + (
                "--skip-postgres."
                if args.skip_postgres
                else "no --postgres-url and MEMOBASE_TEST_POSTGRES_URL unset."
            )
        )
    else:
        database = None
        try:
            url, database = prepare_postgres(pg, f"memobase_bench_{rid}_scale")
            points += run_scale(
                "postgresql",
                url,
                cfg.scale_sizes,
                env.llm.settings(),
                context_samples=cfg.context_samples,
                record_samples=cfg.scale_record_samples,
            )
        except Exception as exc:
            notes.append(f"PostgreSQL scale failed: {type(exc).__name__}: {exc}")
        finally:
            if database is not None and not args.keep_workdir:
                drop_postgres(pg, database)
        progress.step("scale   postgresql done")
    if not args.skip_mem0_scale and _selected_any(cfg, "mem0"):
        from benchmarks.scale_mem0 import run_mem0_scale

        points += run_mem0_scale(env.llm, env.workdir, cfg.mem0_scale_sizes, cfg.mem0_scale_samples)
        progress.step("scale   mem0 done")
    return points


def _selected_any(cfg: Config, word: str) -> bool:
    return not cfg.systems or any(word in key for key in cfg.systems)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    parser.add_argument("--out", type=Path, help="where to write results")
    parser.add_argument("--postgres-url", help="PostgreSQL for the scale and capacity sections")
    parser.add_argument(
        "--systems", default="", help="comma-separated keys to run (e.g. lc-none,li-mem0)"
    )
    parser.add_argument("--skip-hot", action="store_true", help="no hot-path section")
    parser.add_argument("--skip-pace", action="store_true", help="no pace / growth sections")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-mem0-scale", action="store_true")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-record", action="store_true")
    parser.add_argument(
        "--skip-ratios", action="store_true", help="no lean-hot-path ratios (issue 13)"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--scale-sizes", default="", help="e.g. 1000,10000,100000")
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument(
        "--load-note", default="", help="a sentence for latest.md, e.g. that the machine was busy"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _total_steps(cfg: Config, specs: list[Spec], args: argparse.Namespace) -> int:
    chosen = [s for s in specs if _selected(cfg, s.key)]
    n = 0
    if not args.skip_hot:
        n += len(chosen) + sum(1 for s in chosen if s.hosted)
    if not args.skip_pace:
        n += sum(1 for s in chosen if s.pace)
        n += len(cfg.growth_messages) * sum(1 for s in chosen if s.growth)
    if not args.skip_record:
        n += 1
    if not args.skip_ratios:
        n += 1
    if not args.skip_capacity:
        n += 1
    if not args.skip_scale:
        n += 3
    return n


#: Loggers whose chatter the run silences (restored afterwards: ``main`` also runs inside
#: the test suite, where other tests read these loggers' records).
NOISY_LOGGERS = (
    "httpx",
    "httpx2",
    "mem0",
    "openai",
    "llama_index",
    "langchain_memobase",
    "langmem",
    "memobase_integrations",
    "benchmarks",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    saved = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("benchmarks").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _main(args)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _main(args: argparse.Namespace) -> int:
    # The classic LangChain history classes are deprecated; benchmarking them is the point.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cfg = Config.quick_config() if args.quick else Config.full()
    cfg.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.scale_sizes:
        cfg.scale_sizes = [int(s) for s in args.scale_sizes.split(",")]
    out_dir = args.out or (
        Path(tempfile.gettempdir()) / "memobase-bench-quick" if cfg.quick else RESULTS
    )
    rid = run_id()
    workdir = Path(tempfile.mkdtemp(prefix=f"memobase-bench-{rid}-"))
    os.environ.setdefault("MEM0_DIR", str(workdir / "mem0"))
    specs = registry()
    unknown = [k for k in cfg.systems if k not in {s.key for s in specs}]
    if unknown:
        raise SystemExit(f"unknown system keys: {', '.join(unknown)}")
    conversations = generate(cfg.conversations, cfg.sessions, cfg.turns_per_session)
    notes: list[str] = []
    load_before = os.getloadavg()
    began = time.perf_counter()
    progress = Progress(_total_steps(cfg, specs, args))
    print(
        f"benchmarks: run {rid}, {'quick' if cfg.quick else 'full'} configuration, "
        f"{progress.total} steps; work dir {workdir}",
        flush=True,
    )
    probe = CallerThreadProbe()
    probe.install()
    server = FakeMemobaseServer().start()
    instant_llm = ServedBenchLLM(INSTANT)
    hosted_llm = ServedBenchLLM(cfg.hosted)
    runs: list[SystemRun] = []
    pace: list[PaceRow] = []
    growth: list[PaceRow] = []
    capacity: list[CapacityRow] = []
    worker_cost: WorkerCost | None = None
    scale: list[ScalePoint] = []
    records: list[RecordResult] = []
    flush: FlushCost | None = None
    ratios: RatiosResult | None = None
    try:
        envs = {
            "instant": BenchEnv(
                llm=instant_llm,
                probe=probe,
                workdir=workdir / "instant",
                remote_url=server.url,
            ),
            "hosted": BenchEnv(
                llm=hosted_llm,
                probe=probe,
                script=Script(chat=cfg.hosted),
                workdir=workdir / "hosted",
                remote_url=server.url,
            ),
        }
        pace_env = BenchEnv(llm=instant_llm, probe=probe, workdir=workdir / "pace", simulated=True)
        for env in (*envs.values(), pace_env):
            env.workdir.mkdir(parents=True, exist_ok=True)
        if not args.skip_hot:
            runs = _hot_path(cfg, specs, conversations, envs, progress)
        if not args.skip_pace:
            pace, growth = _pace(cfg, specs, conversations, pace_env, progress)
        if not args.skip_record:
            records = run_record_latency(envs["instant"], conversations, cfg.record_samples)
            flush = run_flush_cost(envs["instant"], conversations)
            progress.step("record  latency and flush cost done")
        if not args.skip_ratios:
            ratios = run_ratios(
                workdir / "ratios",
                conversations,
                instant_llm.settings(),
                record_pairs=cfg.ratio_record_pairs,
                context_users=cfg.ratio_context_users,
                context_samples=cfg.ratio_context_samples,
                fresh_runs=cfg.ratio_fresh_runs,
            )
            j = ratios.as_json()
            progress.step(
                f"ratios  record {j['record_vs_floor']['ratio_p50']}x, context "
                f"{j['context_vs_raw_sql']['ratio_p50']}x, first record "
                f"{j['first_record']['p50_ms']} ms, import {j['import']['p50_ms']} ms"
            )
        pg = _postgres_url(args)
        if not args.skip_capacity:
            if pg is None:
                notes.append("Capacity skipped: no PostgreSQL URL (or --skip-postgres).")
            else:
                capacity = run_capacity(
                    pg,
                    hosted_llm.url_for("capacity"),
                    conversations,
                    process_counts=cfg.capacity_processes,
                    users=cfg.capacity_users,
                    window_s=cfg.capacity_window_s,
                    warmup_s=cfg.capacity_warmup_s,
                    latency=_latency_text(cfg.hosted),
                    run_id=rid,
                )
                worker_cost = run_worker_cost(
                    pg,
                    conversations,
                    run_id=rid,
                    rounds=2 if cfg.quick else 5,
                    idle_window_s=10.0 if cfg.quick else 60.0,
                )
            progress.step("capacity done")
        if not args.skip_scale:
            scale = _scale(cfg, args, envs["instant"], rid, notes, progress)
        if _selected_any(cfg, "mem0"):
            from benchmarks.mem0_check import mem0_offline_check

            notes.append(mem0_offline_check(instant_llm, workdir))
    finally:
        server.stop()
        probe.uninstall()
        instant_llm.close()
        hosted_llm.close()
    for run in runs:
        if run.error:
            notes.append(f"{run.name} ({run.mode}) failed: {run.error}")
    load_after = os.getloadavg()
    notes.append(
        f"Whole run took {time.perf_counter() - began:.0f} s. Load average (1/5/15 min) at the "
        f"start {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, at the end "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} cores."
    )
    report = Report(
        runs=runs,
        pace=pace,
        growth=growth,
        capacity=capacity,
        worker_cost=worker_cost,
        scale=scale,
        records=records,
        flush=flush,
        ratios=ratios,
        notes=notes,
        config=_config_json(cfg, conversations, args),
    )
    paths = report.write(out_dir)
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _latency_text(latency: LatencyModel) -> str:
    return (
        f"{latency.llm_delay_s * 1000:g} ms + {latency.per_token_delay_s * 1000:g} ms/output "
        f"token per chat completion, {latency.embedding_delay_s * 1000:g} ms per embedding "
        "request"
    )


def _config_json(
    cfg: Config, conversations: list[Conversation], args: argparse.Namespace
) -> dict[str, Any]:
    command = "python -m benchmarks" + (" --quick" if cfg.quick else "")
    hosted_plan = (
        f"History (not timed, chat model instant): {cfg.hosted_history_sessions} session(s) of "
        f"one user through each system, then it settles. Measured: the next "
        f"{cfg.hosted_turns} turns of that user, each paired with a baseline turn (first "
        f"{cfg.hosted_warmup} pairs are warm-up); the chat model waits like the hosted model."
    )
    instant_plan = (
        f"{cfg.conversations} users x {cfg.sessions} sessions x {cfg.turns_per_session} turns, "
        f"each turn paired with a baseline turn (first {cfg.instant_warmup} pairs warm-up); "
        "the system settles between sessions (not timed)."
    )
    return {
        "command": command,
        "quick": cfg.quick,
        "load_note": args.load_note,
        "conversations": cfg.conversations,
        "sessions": cfg.sessions,
        "turns_per_session": cfg.turns_per_session,
        "messages": sum(c.n_messages for c in conversations),
        "raw_tokens": raw_tokens(conversations),
        "hosted": _latency_text(cfg.hosted),
        "hosted_plan": hosted_plan,
        "instant_plan": instant_plan,
        "pace_plan": (
            f"The same {cfg.conversations} users x {cfg.sessions} sessions x "
            f"{cfg.turns_per_session} turns. Sessions start on their conversation day "
            "(1-9 days apart) at 09:00 + 0-10 h; turns follow each other after 30-90 s; "
            "each user ends with a 30-day pause. Memobase's threshold (1024 tokens) and "
            "idle flush (300 s) fire by the library's own rule on the simulated clock; "
            "LangMem's 30-minute debounce elapses at each session end."
        ),
        "capacity_plan": (
            f"{cfg.capacity_users} users with one batch each (buffer just over 1024 tokens), "
            "then N worker processes (default FlushPolicy) released together; the batches "
            f"committed from {cfg.capacity_warmup_s:g} s after the release (start-up and the "
            f"first wave of flushes excluded) for {cfg.capacity_window_s:g} s count. LLM: "
            f"{_latency_text(cfg.hosted)}. Intervals: bootstrap over 12 equal time bins of "
            "the window; the scaling factor's resamples both runs' bins independently."
        ),
        "growth_messages_per_user": cfg.growth_messages,
        "growth_users": cfg.growth_users,  # per size, in the order of the sizes
        "scale_sizes": cfg.scale_sizes,
        "mem0_scale_sizes": cfg.mem0_scale_sizes,
    }


if __name__ == "__main__":
    raise SystemExit(main())
