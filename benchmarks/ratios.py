"""The lean hot path (issue 13 item 4): four ratios and first-use costs, in one run.

* ``record_vs_floor``: CPU time of ``UserMemory.record(turn)`` on the embedded SQLite store
  (default worker placement and flush policy) over the CPU time of a bare SQLite insert +
  commit of the same turn's JSON with the same durability settings (WAL,
  ``synchronous=NORMAL``; :func:`benchmarks.systems.floor.open_floor_db`). Both are timed with
  the calling thread's CPU clock (``time.thread_time_ns``), so the background worker's
  processing is not billed to either. Pairs are interleaved (the order drawn per pair), the
  ratio is p50/p50 and its interval a paired bootstrap of that ratio.
* ``context_vs_raw_sql``: CPU time of a ``UserMemory.context()`` cache miss (each user read
  once, so the facade's cache is cold) over :class:`benchmarks.scale.RawContextFloor` (the
  same profile and gist rows with two plain SQL statements on a raw DBAPI connection), on a
  store seeded like the scale section's, paired and interleaved the same way.
* ``first_record_ms``: a fresh interpreter imports the package, builds
  ``Memobase.embedded(...)`` (default worker, the run's LLM endpoint) and records its first
  turn at once; the wall time of that first ``record`` (and of import and construction, as
  details), over several fresh processes.
* ``import_ms``: ``python -X importtime -c "import memobase_integrations"`` in a fresh
  interpreter, the package's own cumulative line; and which heavy modules that import
  loaded (it should load none of openai, SQLAlchemy's dialects, typer).

Intervals: a bootstrap over pairs (the ratios) or over the fresh processes (first record,
import). Targets: record <= 10x, context miss <= 5x, first record <= 100 ms, import <= 300 ms.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.conversations import Conversation, Turn
from benchmarks.stats import (
    Interval,
    bootstrap_quantile,
    bootstrap_quantile_ratio,
    percentile,
    verdict,
)

__all__ = ["RatiosResult", "run_ratios"]

logger = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parents[1]

RECORD_RATIO_MAX = 10.0
CONTEXT_RATIO_MAX = 5.0
FIRST_RECORD_MAX_MS = 100.0
IMPORT_MAX_MS = 300.0

#: Modules ``import memobase_integrations`` must not load (issue 13).
HEAVY_MODULES = ("openai", "sqlalchemy.dialects", "typer", "memobase_integrations.cli")


@dataclass(slots=True)
class Ratio:
    """A paired CPU-time ratio: ``num`` / ``den`` at p50, with its bootstrap interval."""

    name: str
    num_s: list[float] = field(default_factory=list)
    den_s: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def value(self) -> float | None:
        if len(self.num_s) < 2:
            return None
        return round(percentile(self.num_s, 50) / percentile(self.den_s, 50), 3)

    @property
    def interval(self) -> Interval | None:
        if len(self.num_s) < 2:
            return None
        low, high = bootstrap_quantile_ratio(self.num_s, self.den_s, 50)
        return round(low, 3), round(high, 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ratio_p50": self.value,
            "ratio_p50_ci95": self.interval,
            "num_cpu_p50_us": _us(percentile(self.num_s, 50)) if self.num_s else None,
            "den_cpu_p50_us": _us(percentile(self.den_s, 50)) if self.den_s else None,
            "pairs": len(self.num_s),
            "error": self.error,
        }


@dataclass(slots=True)
class Fresh:
    """A per-process measurement (ms), over several fresh interpreters."""

    name: str
    samples_ms: list[float] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def p50(self) -> float | None:
        return round(percentile(self.samples_ms, 50), 2) if self.samples_ms else None

    @property
    def interval(self) -> Interval | None:
        if len(self.samples_ms) < 2:
            return None
        low, high = bootstrap_quantile(self.samples_ms, 50)
        return round(low, 2), round(high, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "p50_ms": self.p50,
            "p50_ci95_ms": self.interval,
            "max_ms": round(max(self.samples_ms), 2) if self.samples_ms else None,
            "runs": len(self.samples_ms),
            "details": self.details,
            "error": self.error,
        }


@dataclass(slots=True)
class RatiosResult:
    record: Ratio
    context: Ratio
    first_record: Fresh
    imports: Fresh

    def targets(self) -> list[tuple[str, str, str | None]]:
        """``(target, measured, verdict)`` per target (verdicts on the whole interval)."""
        out: list[tuple[str, str, str | None]] = []
        for ratio, limit in ((self.record, RECORD_RATIO_MAX), (self.context, CONTEXT_RATIO_MAX)):
            ci = ratio.interval
            shown = "not measured" if ci is None else f"{ratio.value}x [{ci[0]}, {ci[1]}]"
            out.append((f"{ratio.name} <= {limit:g}x (p50)", shown, verdict(ci, limit)))
        for fresh, limit in (
            (self.first_record, FIRST_RECORD_MAX_MS),
            (self.imports, IMPORT_MAX_MS),
        ):
            ci = fresh.interval
            shown = "not measured" if ci is None else f"p50 {fresh.p50} ms [{ci[0]}, {ci[1]}]"
            v = verdict(ci, limit)
            if fresh is self.imports and any(d.get("heavy_modules_loaded") for d in fresh.details):
                v, shown = (
                    "missed",
                    shown
                    + ", loaded "
                    + ", ".join(
                        sorted({m for d in fresh.details for m in d["heavy_modules_loaded"]})
                    ),
                )
            out.append((f"{fresh.name} <= {limit:g} ms", shown, v))
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "record_vs_floor": self.record.as_json(),
            "context_vs_raw_sql": self.context.as_json(),
            "first_record": self.first_record.as_json(),
            "import": self.imports.as_json(),
        }


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 2)


def _cpu(op: Callable[[], object]) -> float:
    t0 = time.thread_time_ns()
    op()
    return (time.thread_time_ns() - t0) / 1e9


def _paired(
    ratio: Ratio,
    n: int,
    system: Callable[[int], object],
    floor: Callable[[int], object],
    *,
    warmup: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    for i in range(n + warmup):
        if rng.random() < 0.5:
            a = _cpu(lambda i=i: system(i))  # type: ignore[misc]
            b = _cpu(lambda i=i: floor(i))  # type: ignore[misc]
        else:
            b = _cpu(lambda i=i: floor(i))  # type: ignore[misc]
            a = _cpu(lambda i=i: system(i))  # type: ignore[misc]
        if i >= warmup:
            ratio.num_s.append(a)
            ratio.den_s.append(b)


def _turns(conversations: Sequence[Conversation]) -> list[tuple[str, Turn]]:
    return [(c.user_id, t) for c in conversations for s in c.sessions for t in s.turns]


def record_ratio(
    workdir: Path, conversations: Sequence[Conversation], llm: Any, pairs: int
) -> Ratio:
    """``record`` vs the bare insert of the same turn (see the module doc)."""
    from benchmarks.systems.floor import open_floor_db
    from memobase_integrations import Memobase

    ratio = Ratio("UserMemory.record (embedded SQLite) / bare SQLite insert + commit, CPU")
    turns = _turns(conversations)
    conn = open_floor_db(str(workdir / "ratio-floor.db"))
    memobase = Memobase.embedded(f"sqlite:///{workdir / 'ratio-record.db'}", llm=llm)
    try:
        users = {uid: memobase.user(uid) for uid, _ in turns}

        def system(i: int) -> None:
            uid, turn = turns[i % len(turns)]
            users[uid].record(turn.messages())

        def floor(i: int) -> None:
            uid, turn = turns[i % len(turns)]
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO turns (user_id, data) VALUES (?, ?)",
                (uid, json.dumps(turn.messages())),
            )
            conn.execute("COMMIT")

        _paired(ratio, pairs, system, floor, warmup=20, seed=41)
    except Exception as exc:
        ratio.error = f"{type(exc).__name__}: {exc}"
        logger.exception("record ratio failed")
    finally:
        memobase.close(timeout=60.0)
        conn.close()
    return ratio


def context_ratio(workdir: Path, llm: Any, users: int, samples: int) -> Ratio:
    """A ``context()`` cache miss vs the raw SQL for the same rows (see the module doc)."""
    from benchmarks.scale import _SCALE_POLICY, SEED_USER_PREFIX, RawContextFloor, seed
    from memobase_integrations import Memobase
    from memobase_integrations.ids import to_user_uuid

    ratio = Ratio("UserMemory.context() cache miss (embedded SQLite) / raw SQL, CPU")
    url = f"sqlite:///{workdir / 'ratio-context.db'}"
    Memobase.embedded(url, llm=llm, policy=_SCALE_POLICY).close(timeout=1.0)  # the schema
    seed(url, 0, users)
    memobase = Memobase.embedded(url, llm=llm, policy=_SCALE_POLICY)
    floor = RawContextFloor(url)
    try:
        rng = random.Random(43)
        picks = rng.sample(range(users), min(users, samples + 20))
        ids = [f"{SEED_USER_PREFIX}{i}" for i in picks]

        def system(i: int) -> None:
            if not memobase.user(ids[i]).context():
                raise RuntimeError("empty context: the seed did not land")

        def raw(i: int) -> None:
            floor.read(to_user_uuid(ids[i]))

        _paired(ratio, len(ids) - 20, system, raw, warmup=20, seed=47)
    except Exception as exc:
        ratio.error = f"{type(exc).__name__}: {exc}"
        logger.exception("context ratio failed")
    finally:
        floor.close()
        memobase.close(timeout=5.0)
    return ratio


_FIRST_RECORD = """
import json, sys, time
t0 = time.perf_counter()
from memobase_integrations import Memobase
from memobase_integrations.settings import LLMSettings
t1 = time.perf_counter()
memobase = Memobase.embedded(sys.argv[1], llm=LLMSettings(**json.loads(sys.argv[2])))
t2 = time.perf_counter()
user = memobase.user("first-user")
c0 = time.thread_time()
user.record([{"role": "user", "content": "Hi, I am Ana and I work as a nurse in Lisbon."},
             {"role": "assistant", "content": "Nice to meet you, Ana! How is Lisbon?"}])
t3 = time.perf_counter()
c1 = time.thread_time()
user.record([{"role": "user", "content": "It is sunny."},
             {"role": "assistant", "content": "Lovely."}])
t4 = time.perf_counter()
memobase.close(timeout=10.0)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "construct_ms": (t2 - t1) * 1e3,
                  "first_record_ms": (t3 - t2) * 1e3, "first_record_cpu_ms": (c1 - c0) * 1e3,
                  "second_record_ms": (t4 - t3) * 1e3, "worker": memobase.backend.worker_mode}))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def first_record(workdir: Path, llm: Any, runs: int) -> Fresh:
    """The first ``record`` of a fresh process right after construction (module doc)."""
    fresh = Fresh("first record() in a new process, right after Memobase.embedded(), wall")
    settings = {"base_url": llm.base_url, "api_key": "placeholder-bench", "max_retries": 0}
    try:
        for n in range(runs):
            db = workdir / f"ratio-first-{n}.db"
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_RECORD, f"sqlite:///{db}", json.dumps(settings)],
                capture_output=True,
                text=True,
                timeout=120,
                env=_child_env(),
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            fresh.samples_ms.append(row["first_record_ms"])
            fresh.details.append(
                {k: v if isinstance(v, str) else round(v, 2) for k, v in row.items()}
            )
    except Exception as exc:
        fresh.error = f"{type(exc).__name__}: {exc}"
        logger.exception("first-record benchmark failed")
    return fresh


_IMPORT_CHECK = (
    "import sys, memobase_integrations; "
    f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
)


def import_time(runs: int) -> Fresh:
    """``import memobase_integrations`` in fresh interpreters (``-X importtime``)."""
    fresh = Fresh("import memobase_integrations in a new process (-X importtime, cumulative)")
    try:
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", _IMPORT_CHECK],
                capture_output=True,
                text=True,
                timeout=120,
                env=_child_env(),
                check=True,
            )
            cumulative = [
                int(line.split("|")[1])
                for line in out.stderr.splitlines()
                if line.startswith("import time:")
                and line.rstrip().endswith("| memobase_integrations")
            ]
            fresh.samples_ms.append(cumulative[-1] / 1000.0)
            loaded = out.stdout.strip()
            fresh.details.append({"heavy_modules_loaded": loaded.split(",") if loaded else []})
    except Exception as exc:
        fresh.error = f"{type(exc).__name__}: {exc}"
        logger.exception("import-time benchmark failed")
    return fresh


def run_ratios(
    workdir: Path,
    conversations: Sequence[Conversation],
    llm: Any,
    *,
    record_pairs: int,
    context_users: int,
    context_samples: int,
    fresh_runs: int,
) -> RatiosResult:
    """All four measurements; ``llm`` is the run's (instant) endpoint's ``LLMSettings``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return RatiosResult(
        record=record_ratio(workdir, conversations, llm, record_pairs),
        context=context_ratio(workdir, llm, context_users, context_samples),
        first_record=first_record(workdir, llm, fresh_runs),
        imports=import_time(fresh_runs * 2),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.ratios [--quick]``: this section alone, printed as JSON."""
    import argparse

    from benchmarks.conversations import generate
    from benchmarks.llm import INSTANT, ServedBenchLLM

    parser = argparse.ArgumentParser(prog="python -m benchmarks.ratios", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    llm = ServedBenchLLM(INSTANT)
    workdir = Path(tempfile.mkdtemp(prefix="memobase-ratios-"))
    try:
        result = run_ratios(
            workdir,
            generate(1 if args.quick else 4, 2 if args.quick else 6, 10 if args.quick else 25),
            llm.settings(),
            record_pairs=60 if args.quick else 1500,
            context_users=200 if args.quick else 2000,
            context_samples=40 if args.quick else 400,
            fresh_runs=2 if args.quick else 7,
        )
    finally:
        llm.close()
    text = json.dumps(result.as_json(), indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
