"""Run every benchmark and write ``benchmarks/results/`` (see ``benchmarks/README.md``).

python -m benchmarks                 # full run (~10-15 min on 2 cores)
python -m benchmarks --quick         # tiny smoke configuration (seconds)
python -m benchmarks --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
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

# mem0 reads these at import time: never phone home, keep its files in our work dir.
os.environ.setdefault("MEM0_TELEMETRY", "False")

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.conversations import Conversation, Session, generate, raw_tokens
from benchmarks.fake_server import FakeMemobaseServer
from benchmarks.hotpath import SystemRun, add_overheads, run_system
from benchmarks.llm import HOSTED, INSTANT, LatencyModel, ServedBenchLLM
from benchmarks.probe import CallerThreadProbe
from benchmarks.record_bench import run_flush_cost, run_record_latency
from benchmarks.report import Report
from benchmarks.scale import ScalePoint, drop_postgres, prepare_postgres, run_scale
from benchmarks.systems.base import BenchEnv, BenchSystem

__all__ = ["Config", "main"]

logger = logging.getLogger("benchmarks")

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(slots=True)
class Config:
    """Sizes of one run. ``full()`` is what the committed results use."""

    quick: bool
    conversations: int
    sessions: int
    turns_per_session: int
    hosted_turns: int
    hosted: LatencyModel
    record_samples: int
    scale_sizes: list[int]
    context_samples: int
    scale_record_samples: int
    warmup_turns: int
    pg_database: str
    systems: list[str] = field(default_factory=list)

    @classmethod
    def full(cls) -> Config:
        return cls(
            quick=False,
            conversations=4,
            sessions=6,
            turns_per_session=25,
            hosted_turns=30,
            hosted=HOSTED,
            record_samples=2000,
            scale_sizes=[1_000, 10_000, 100_000],
            context_samples=400,
            scale_record_samples=1000,
            warmup_turns=3,
            pg_database="memobase_bench",
        )

    @classmethod
    def quick_config(cls) -> Config:
        return cls(
            quick=True,
            conversations=1,
            sessions=2,
            turns_per_session=4,
            hosted_turns=3,
            hosted=LatencyModel("hosted", llm_delay_s=0.01, per_token_delay_s=0.0002),
            record_samples=30,
            scale_sizes=[50, 200],
            context_samples=20,
            scale_record_samples=20,
            warmup_turns=1,
            pg_database="memobase_bench_quick",
        )


def _factories() -> list[tuple[str, Callable[[BenchEnv], BenchSystem]]]:
    """Every system, in report order (baselines first, the floor last)."""
    from benchmarks.systems.floor import SQLiteFloor
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
        LlamaMemobase,
        LlamaNoMemory,
        LlamaStaticBlock,
    )

    # langchain_core installs its own "always" filter for its deprecation warnings on import.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return [
        ("lc-none", LangChainNoMemory),
        ("lc-empty-middleware", LangChainNoopMiddleware),
        ("lc-history", LangChainChatHistory),
        ("lc-memobase-embedded", lambda env: LangChainMemobase(env, "embedded")),
        ("lc-memobase-remote", lambda env: LangChainMemobase(env, "remote")),
        ("li-none", LlamaNoMemory),
        ("li-memory", LlamaDefaultMemory),
        ("li-static-block", LlamaStaticBlock),
        ("li-memobase-embedded", lambda env: LlamaMemobase(env, "embedded")),
        ("li-memobase-remote", lambda env: LlamaMemobase(env, "remote")),
        ("li-fact", LlamaFactExtraction),
        ("li-mem0", LlamaMem0),
        ("floor", SQLiteFloor),
    ]


def _hosted_subset(conversations: Sequence[Conversation], turns: int) -> list[Conversation]:
    """The first ``turns`` turns of the first session: enough to see a slow turn's p95."""
    first = conversations[0]
    session = first.sessions[0]
    more = [t for s in first.sessions for t in s.turns][:turns]
    return [
        Conversation(user_id=first.user_id, sessions=(Session(day=session.day, turns=tuple(more)),))
    ]


def _hot_path(
    cfg: Config,
    conversations: list[Conversation],
    probe: CallerThreadProbe,
    remote_url: str,
    workdir: Path,
) -> tuple[list[SystemRun], BenchEnv]:
    runs: list[SystemRun] = []
    instant_env: BenchEnv | None = None
    for latency, convs in (
        (INSTANT, conversations),
        (cfg.hosted, _hosted_subset(conversations, cfg.hosted_turns)),
    ):
        env = BenchEnv(
            llm=ServedBenchLLM(latency),
            probe=probe,
            workdir=workdir / latency.name,
            remote_url=remote_url,
        )
        env.workdir.mkdir(parents=True, exist_ok=True)
        if latency is INSTANT:
            instant_env = env
        factories = _factories()
        by_key = dict(factories)
        baselines = {"lc": by_key["lc-none"], "li": by_key["li-memory"]}
        for key, factory in factories:
            if cfg.systems and not any(s in key for s in cfg.systems):
                continue
            started = time.perf_counter()
            paired = None
            prefix = key.split("-")[0]
            if prefix in baselines and factory is not baselines[prefix]:
                paired = run_system(
                    baselines[prefix], env, convs, latency.name, warmup_turns=cfg.warmup_turns
                )
            run = run_system(factory, env, convs, latency.name, warmup_turns=cfg.warmup_turns)
            run.paired_baseline = paired
            if "remote" in key:
                run.cost_measured = False  # processing happens server-side
            runs.append(run)
            logger.info(
                "%-8s %-70s p50 %8.3f ms p95 %8.3f ms calls/turn %.2f  (%.1fs)%s",
                latency.name,
                run.name,
                run.p50_ms,
                run.p95_ms,
                run.calls_per_turn,
                time.perf_counter() - started,
                f"  ERROR {run.error}" if run.error else "",
            )
        if latency is not INSTANT:
            env.llm.close()
    add_overheads(runs)
    assert instant_env is not None
    return runs, instant_env


def _scale(
    cfg: Config, args: argparse.Namespace, env: BenchEnv, notes: list[str]
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
    pg = args.postgres_url or os.environ.get("MEMOBASE_TEST_POSTGRES_URL")
    if args.skip_postgres:
        notes.append("PostgreSQL scale skipped (--skip-postgres).")
        return points
    if not pg:
        notes.append(
            "PostgreSQL scale skipped: no --postgres-url and MEMOBASE_TEST_POSTGRES_URL unset."
        )
        return points
    try:
        url = prepare_postgres(pg, cfg.pg_database)
    except Exception as exc:
        notes.append(f"PostgreSQL scale skipped: cannot create a benchmark database ({exc}).")
        return points
    try:
        points += run_scale(
            "postgresql",
            url,
            cfg.scale_sizes,
            env.llm.settings(),
            context_samples=cfg.context_samples,
            record_samples=cfg.scale_record_samples,
        )
    finally:
        if not args.keep_workdir:
            drop_postgres(pg, cfg.pg_database)
    return points


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    parser.add_argument("--out", type=Path, help="where to write results")
    parser.add_argument("--postgres-url", help="PostgreSQL for the scale benchmark")
    parser.add_argument(
        "--systems", default="", help="comma-separated keys to run (e.g. lc-none,li-mem0)"
    )
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-record", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--scale-sizes", default="", help="e.g. 1000,10000,100000")
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("httpx", "httpx2", "mem0", "openai", "llama_index", "langchain_memobase"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # The classic LangChain history classes are deprecated; benchmarking them is the point.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cfg = Config.quick_config() if args.quick else Config.full()
    cfg.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.scale_sizes:
        cfg.scale_sizes = [int(s) for s in args.scale_sizes.split(",")]
    out_dir = args.out or (
        Path(tempfile.gettempdir()) / "memobase-bench-quick" if cfg.quick else RESULTS
    )
    workdir = Path(tempfile.mkdtemp(prefix="memobase-bench-"))
    os.environ.setdefault("MEM0_DIR", str(workdir / "mem0"))
    conversations = generate(cfg.conversations, cfg.sessions, cfg.turns_per_session)
    notes: list[str] = []
    load_before = os.getloadavg()
    began = time.perf_counter()
    probe = CallerThreadProbe()
    probe.install()
    server = FakeMemobaseServer().start()
    env: BenchEnv | None = None
    try:
        runs, env = _hot_path(cfg, conversations, probe, server.url, workdir)
        records = (
            [] if args.skip_record else run_record_latency(env, conversations, cfg.record_samples)
        )
        flush = None if args.skip_record else run_flush_cost(env, conversations)
        scale = [] if args.skip_scale else _scale(cfg, args, env, notes)
        if not cfg.systems or any("mem0" in key for key in cfg.systems):
            from benchmarks.mem0_check import mem0_offline_check

            notes.append(mem0_offline_check(env.llm, workdir))
    finally:
        server.stop()
        probe.uninstall()
        if env is not None:
            env.llm.close()
    floor = next((r for r in runs if r.floor and r.mode == "instant" and not r.error), None)
    hosted = cfg.hosted
    report = Report(
        runs=runs,
        records=records,
        flush=flush,
        scale=scale,
        floor_p50_ms=floor.p50_ms if floor else None,
        notes=notes,
        config={
            "quick": cfg.quick,
            "conversations": cfg.conversations,
            "sessions": cfg.sessions,
            "turns_per_session": cfg.turns_per_session,
            "messages": sum(c.n_messages for c in conversations),
            "raw_tokens": raw_tokens(conversations),
            "hosted": f"{hosted.llm_delay_s * 1000:g} ms + {hosted.per_token_delay_s * 1000:g} "
            f"ms/output token per LLM call, {hosted.embedding_delay_s * 1000:g} ms per "
            "embedding call",
            "hosted_turns": cfg.hosted_turns,
            "scale_sizes": cfg.scale_sizes,
        },
    )
    for run in runs:
        if run.error:
            notes.append(f"{run.name} ({run.mode}) failed: {run.error}")
    load_after = os.getloadavg()
    notes.append(
        f"Whole run took {time.perf_counter() - began:.0f} s. Load average (1/5/15 min) at the "
        f"start {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, at the end "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} cores "
        "(other work on the machine inflates absolute times; compare ratios)."
    )
    paths = report.write(out_dir)
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
