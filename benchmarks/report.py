"""Turn the measurements into ``latest.json``, ``latest-details.json``, ``latest.md`` and the
``latency_vs_users.png`` plot, and check the issue's targets against them."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.hotpath import SystemRun, as_json, details_json
from benchmarks.record_bench import FlushCost, RecordResult
from benchmarks.scale import ScalePoint
from benchmarks.stats import ms, percentile

__all__ = ["Report", "growth_exponent", "machine"]

#: The issue's targets.
P95_BUDGET_MS = 2.0
PEER_FACTOR = 100.0
MEM0_CALL_FRACTION = 1 / 8
PROMPT_PER_RAW_MAX = 3.5
CONTEXT_P95_MAX_MS = 5.0
RECORD_P95_MAX_MS = 2.0


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def growth_exponent(points: Sequence[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) on log(users): 0 is flat, 1 is linear."""
    pts = [(math.log(u), math.log(v)) for u, v in points if u > 0 and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    if den == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in pts) / den, 3)


def _growth_word(exponent: float | None) -> str:
    if exponent is None:
        return "n/a"
    if exponent < 0.1:
        return "flat"
    if exponent < 0.35:
        return "sub-linear (log-like)"
    return "linear-ish" if exponent < 1.2 else "super-linear"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "–"
    if a <= 0:
        return "≈0×"
    return f"{a / b:.2f}×"


@dataclass(slots=True)
class Target:
    text: str
    measured: str
    met: bool | None  # None: could not be measured in this run
    note: str = ""


@dataclass(slots=True)
class Report:
    runs: list[SystemRun]
    records: list[RecordResult]
    flush: FlushCost | None
    scale: list[ScalePoint]
    floor_p50_ms: float | None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    machine: str = field(default_factory=machine)

    # -- json ---------------------------------------------------------------------------------
    def latest_json(self) -> dict[str, Any]:
        """Exactly the schema issue 8 asks for."""
        return {
            "systems": [as_json(r) for r in self.runs],
            "scale": [p.as_json() for p in self.scale],
            "floor_sqlite_insert_p50_ms": self.floor_p50_ms,
            "machine": self.machine,
            "date": self.date,
        }

    def details_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "machine": self.machine,
            "config": self.config,
            "systems": [details_json(r) for r in self.runs],
            "record": [r.as_json() for r in self.records],
            "flush_cost": self.flush.as_json() if self.flush else None,
            "scale": [p.details() for p in self.scale],
            "targets": [
                {"target": t.text, "measured": t.measured, "met": t.met, "note": t.note}
                for t in self.targets()
            ],
            "notes": self.notes,
        }

    # -- targets ------------------------------------------------------------------------------
    def _runs(self, mode: str) -> list[SystemRun]:
        return [r for r in self.runs if r.mode == mode]

    def targets(self) -> list[Target]:
        out: list[Target] = []
        for backend in ("embedded", "remote"):
            memobase = [
                r for r in self.runs if r.memobase and not r.error and f"({backend})" in r.name
            ]
            if not memobase:
                continue
            worst = max(memobase, key=lambda r: r.calls_per_turn)
            out.append(
                Target(
                    "Zero LLM, embedding or network calls on the caller's thread per turn "
                    f"(Memobase adapters, {backend})",
                    f"max {worst.calls_per_turn:g} calls/turn ({worst.name}, {worst.mode})",
                    worst.calls_per_turn == 0,
                )
            )
        for mode in ("instant", "hosted"):
            for r in self._runs(mode):
                if not r.memobase or "embedded" not in r.name or r.overhead_p95_ms is None:
                    continue
                out.append(
                    Target(
                        f"{r.name}: overhead within {P95_BUDGET_MS:g} ms p95 of the no-memory "
                        f"baseline ({mode})",
                        f"{r.overhead_p95_ms:.3f} ms",
                        r.overhead_p95_ms <= P95_BUDGET_MS,
                    )
                )
                # Peers that make the user wait for at least one LLM call in every turn.
                llm_peers = [
                    p
                    for p in self._runs(mode)
                    if p.peer
                    and not p.error
                    and p.calls_breakdown.get("llm", 0.0) >= 1.0
                    and p.overhead_p95_ms is not None
                ]
                if llm_peers:
                    fastest = min(llm_peers, key=lambda p: p.overhead_p95_ms or 0.0)
                    mine = max(r.overhead_p95_ms, 1e-3)
                    factor = (fastest.overhead_p95_ms or 0.0) / mine
                    out.append(
                        Target(
                            f"{r.name}: >= {PEER_FACTOR:g}x below every peer that calls an LLM "
                            f"per turn, p95 ({mode})",
                            f"{factor:.0f}x below {fastest.name}",
                            factor >= PEER_FACTOR,
                            "own overhead floored at 0.001 ms for the ratio",
                        )
                    )
        instant = self._runs("instant")
        mem0 = next((r for r in instant if "mem0" in r.name.lower()), None)
        for r in instant:
            if not r.memobase or "embedded" not in r.name:
                continue
            calls = r.llm_calls_per_100_messages
            if mem0 is not None and mem0.llm_calls_per_100_messages and calls is not None:
                fraction = calls / mem0.llm_calls_per_100_messages
                out.append(
                    Target(
                        f"{r.name}: LLM calls per 100 messages <= 1/8 of mem0's",
                        f"{calls:g} vs mem0 {mem0.llm_calls_per_100_messages:g} "
                        f"(= 1/{1 / fraction:.1f})"
                        if fraction > 0
                        else f"{calls:g} vs mem0 {mem0.llm_calls_per_100_messages:g}",
                        fraction <= MEM0_CALL_FRACTION,
                    )
                )
            elif calls is not None:
                out.append(
                    Target(
                        f"{r.name}: LLM calls per 100 messages <= 1/8 of mem0's",
                        f"{calls:g}; mem0 not measured",
                        None,
                        mem0.error if mem0 and mem0.error else "mem0 did not run",
                    )
                )
            ratio = r.prompt_tokens_per_raw_token
            if ratio is not None:
                out.append(
                    Target(
                        f"{r.name}: prompt tokens per raw chat token <= {PROMPT_PER_RAW_MAX:g}",
                        f"{ratio:.2f}",
                        ratio <= PROMPT_PER_RAW_MAX,
                    )
                )
        sqlite = [p for p in self.scale if p.backend == "sqlite" and p.context_s]
        if sqlite:
            largest = max(sqlite, key=lambda p: p.users)
            p95 = ms(percentile(largest.context_s, 95))
            out.append(
                Target(
                    f"context() p95 < {CONTEXT_P95_MAX_MS:g} ms at {largest.users:,} users "
                    "(SQLite)",
                    f"{p95:.3f} ms",
                    p95 < CONTEXT_P95_MAX_MS,
                )
            )
            exponent = growth_exponent([(p.users, ms(percentile(p.context_s, 95))) for p in sqlite])
            out.append(
                Target(
                    "context() flat in the number of users (SQLite)",
                    f"growth exponent {_fmt(exponent)} ({_growth_word(exponent)})",
                    exponent is not None and exponent < 0.1,
                    "p95 ~ users^k, least squares over the sizes; k < 0.1 counts as flat",
                )
            )
        for rec in self.records:
            if rec.name.startswith("Memobase") and rec.samples:
                p95 = ms(percentile(rec.samples, 95))
                out.append(
                    Target(
                        f"{rec.name}: p95 < {RECORD_P95_MAX_MS:g} ms, no call on the caller's "
                        "thread (issue 4)",
                        f"p95 {p95:.3f} ms, {rec.calls_per_record:g} calls/record",
                        p95 < RECORD_P95_MAX_MS and rec.calls_per_record == 0,
                    )
                )
        return out

    # -- markdown -----------------------------------------------------------------------------
    def _hot_table(self, mode: str) -> list[str]:
        runs = self._runs(mode)
        peers = [r for r in runs if r.peer and r.overhead_p50_ms and r.overhead_p50_ms > 0]
        fastest = min(peers, key=lambda r: r.overhead_p50_ms or 0.0) if peers else None
        lines = [
            "| system | turn p50 ms | turn p95 ms | overhead p50 ms | overhead p95 ms "
            "| vs fastest peer (p50) | vs floor (p50) | calls on caller's thread / turn "
            "| LLM calls / 100 msgs | prompt tok / raw tok |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            if r.error:
                lines.append(f"| {r.name} | failed: {r.error} | | | | | | | | |")
                continue
            lines.append(
                f"| {r.name} | {r.p50_ms:.3f} | {r.p95_ms:.3f} | {_fmt(r.overhead_p50_ms)} "
                f"| {_fmt(r.overhead_p95_ms)} "
                f"| {_ratio(r.overhead_p50_ms, fastest.overhead_p50_ms if fastest else None)} "
                f"| {_ratio(r.overhead_p50_ms, self.floor_p50_ms)} "
                f"| {r.calls_per_turn:g} | {_fmt(r.llm_calls_per_100_messages, 2)} "
                f"| {_fmt(r.prompt_tokens_per_raw_token, 2)} |"
            )
        if fastest:
            lines.append("")
            lines.append(f"Fastest peer (p50 overhead): {fastest.name}.")
        return lines

    def _split_table(self) -> list[str]:
        """Framework share vs Memobase's share of the embedded adapters' overhead."""
        lines = [
            "| mode | adapter | framework hook cost p50 / p95 ms (reference row − baseline) "
            "| Memobase's own work p50 / p95 ms (adapter − reference row) |",
            "|---|---|---:|---:|",
        ]
        pairs = (("empty middleware", "MemobaseMiddleware (embedded)"),)
        for mode in ("instant", "hosted"):
            runs = [r for r in self._runs(mode) if not r.error and r.turn_s]
            for ref_key, adapter_key in pairs:
                ref = next((r for r in runs if ref_key in r.name), None)
                adapter = next((r for r in runs if adapter_key in r.name), None)
                if ref is None or adapter is None or ref.overhead_p50_ms is None:
                    continue
                lines.append(
                    f"| {mode} | {adapter.name} | {_fmt(ref.overhead_p50_ms)} / "
                    f"{_fmt(ref.overhead_p95_ms)} | {adapter.p50_ms - ref.p50_ms:.3f} / "
                    f"{adapter.p95_ms - ref.p95_ms:.3f} |"
                )
        return lines if len(lines) > 2 else []

    def _cost_table(self) -> list[str]:
        lines = [
            "| system | messages | LLM calls / 100 msgs | embedding calls / 100 msgs "
            "| prompt tok / raw tok | completion tok / 100 msgs | calls by kind |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in self._runs("instant"):
            if r.error or r.counts is None:
                continue
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.counts.by_kind.items())) or "none"
            if not r.cost_measured:
                kinds = "processing runs on the Memobase server (not counted here)"
            lines.append(
                f"| {r.name} | {r.n_messages} | {_fmt(r.llm_calls_per_100_messages, 2)} "
                f"| {_fmt(r.embedding_calls_per_100_messages, 2)} "
                f"| {_fmt(r.prompt_tokens_per_raw_token, 2)} "
                f"| {_fmt(r.completion_tokens_per_100_messages, 1)} | {kinds} |"
            )
        return lines

    def markdown(self) -> str:
        cfg = self.config
        out = [
            "# Benchmark results",
            "",
            f"Run on {self.machine}, {self.date}. Produced by `python -m benchmarks`"
            f"{' --quick' if cfg.get('quick') else ''}; method and definitions in "
            "[`../README.md`](../README.md). Absolute times drift between runs: read the ratios.",
            "",
            f"Floor (bare SQLite insert + commit of a turn's bytes), p50: "
            f"{_fmt(self.floor_p50_ms)} ms.",
            "",
        ]
        for mode, title in (
            ("instant", "Hot path per chat turn: stand-in answers instantly"),
            ("hosted", f"Hot path per chat turn: simulated hosted model ({cfg.get('hosted', '')})"),
        ):
            if not self._runs(mode):
                continue
            turns = max((r.n_turns for r in self._runs(mode)), default=0)
            out += [f"## {title}", "", f"{turns} turns per system.", ""]
            out += self._hot_table(mode)
            out.append("")
        split = self._split_table()
        if split:
            out += [
                "## Where the embedded adapters' overhead goes",
                "",
                "A middleware with the same hooks doing nothing costs what any LangChain "
                "middleware costs (LangGraph runs `before_agent` and `after_agent` as graph "
                "nodes); the rest is Memobase's own work (context read, turn recording).",
                "",
                *split,
                "",
            ]
        out += [
            "## LLM cost per conversation (instant run, the whole conversation set)",
            "",
            f"{cfg.get('messages', '?')} messages, {cfg.get('raw_tokens', '?')} raw chat tokens "
            "(o200k). Counted at the stand-in endpoint after each system drained its "
            "background work. Memobase's figures depend on pace: a flush takes everything "
            "buffered over the threshold, so turns arriving faster than the worker flushes "
            "are batched into fewer, larger flushes (compare the number of `entry_summary` "
            "calls, one per flush, with the pace-independent per-session flushes below).",
            "",
        ]
        out += self._cost_table()
        out.append("")
        if self.flush is not None:
            f = self.flush.as_json()
            out += [
                "### Embedded engine: non-LLM processing time per flush",
                "",
                f"{f['flushes']} flushes of one session each ({f['chat_tokens_per_flush']} chat "
                f"tokens, {f['llm_calls_per_flush']} LLM calls per flush): non-LLM time p50 "
                f"{f['non_llm_p50_ms']} ms, p95 {f['non_llm_p95_ms']} ms, mean "
                f"{f['non_llm_mean_ms']} ms (wall p50 {f['wall_p50_ms']} ms with an instant "
                "LLM)." + (f" Error: {f['error']}" if f["error"] else ""),
                "",
            ]
        if self.records:
            out += [
                "## `record` latency (issue 4), same run, same turns",
                "",
                "The embedded rows record while the worker processes (flushes finished inside the "
                "timed window in the last column); their LLM is the stand-in served from its own "
                "process, as a hosted model would be.",
                "",
                "| path | p50 ms | p95 ms | p99 ms | samples | calls on caller's thread / record "
                "| flushes during the run |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for rec in self.records:
                j = rec.as_json()
                if rec.error:
                    out.append(f"| {rec.name} | failed: {rec.error} | | | | | |")
                    continue
                flushes = "–" if rec.flushes is None else str(rec.flushes)
                out.append(
                    f"| {rec.name} | {j['p50_ms']:.4f} | {j['p95_ms']:.4f} | {j['p99_ms']:.4f} "
                    f"| {j['samples']} | {j['calls_on_caller_thread']:g} | {flushes} |"
                )
            out.append("")
        if self.scale:
            out += [
                "## Scale: `context()` and `record` as users grow",
                "",
                "| backend | users | profile rows | events | context p50 ms | context p95 ms "
                "| record / s | record p95 ms | seed s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for p in self.scale:
                d = p.details()
                if p.error:
                    out.append(f"| {p.backend} | {p.users:,} | failed: {p.error} | | | | | | |")
                    continue
                out.append(
                    f"| {p.backend} | {p.users:,} | {p.rows.get('mb_profiles', 0):,} "
                    f"| {p.rows.get('mb_events', 0):,} | {d['context_p50_ms']:.3f} "
                    f"| {d['context_p95_ms']:.3f} | {d['record_per_s']:.0f} "
                    f"| {d['record_p95_ms']:.3f} | {d['seed_s']:.1f} |"
                )
            out.append("")
            for backend in sorted({p.backend for p in self.scale}):
                pts = [p for p in self.scale if p.backend == backend and p.context_s]
                ctx = growth_exponent([(p.users, ms(percentile(p.context_s, 95))) for p in pts])
                per_call = growth_exponent(
                    [(p.users, 1.0 / p.record_per_s) for p in pts if p.record_per_s]
                )
                out.append(
                    f"- {backend}: context p95 grows like users^{_fmt(ctx)} "
                    f"({_growth_word(ctx)}); record time per call like users^{_fmt(per_call)} "
                    f"({_growth_word(per_call)})."
                )
            out.append("")
        out += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in self.targets():
            verdict = {True: "yes", False: "**no**", None: "not measured"}[t.met]
            note = f" ({t.note})" if t.note else ""
            out.append(f"| {t.text} | {t.measured}{note} | {verdict} |")
        out.append("")
        if self.notes:
            out += ["## Notes from this run", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    # -- plot ---------------------------------------------------------------------------------
    def plot(self, path: Path) -> bool:
        """``context()`` p50/p95 and record/s against users, log scale. False without
        matplotlib (the ``bench`` extra)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.notes.append("matplotlib is not installed: no PNG (pip install '.[bench]').")
            return False
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for backend in sorted({p.backend for p in self.scale}):
            pts = sorted(
                (p for p in self.scale if p.backend == backend and p.context_s),
                key=lambda p: p.users,
            )
            if not pts:
                continue
            users = [p.users for p in pts]
            ax1.plot(
                users, [ms(percentile(p.context_s, 95)) for p in pts], "o-", label=f"{backend} p95"
            )
            ax1.plot(
                users, [ms(percentile(p.context_s, 50)) for p in pts], "o--", label=f"{backend} p50"
            )
            ax2.plot(users, [p.record_per_s for p in pts], "s-", label=backend)
        ax1.axhline(CONTEXT_P95_MAX_MS, color="grey", linestyle=":", label="target p95 (5 ms)")
        ax1.set(
            xscale="log",
            xlabel="users in the store",
            ylabel="context() latency, ms",
            title="context() latency vs users",
        )
        ax1.set_ylim(bottom=0)
        ax2.set(
            xscale="log",
            xlabel="users in the store",
            ylabel="record() calls / s (1 thread)",
            title="record throughput vs users",
        )
        ax2.set_ylim(bottom=0)
        for ax in (ax1, ax2):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"memobase-integrations embedded store, {self.date}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True

    # -- all ----------------------------------------------------------------------------------
    def write(self, out_dir: Path) -> dict[str, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out_dir / "latest.json",
            "details": out_dir / "latest-details.json",
            "md": out_dir / "latest.md",
            "png": out_dir / "latency_vs_users.png",
        }
        if (self.scale and not self.plot(paths["png"])) or not self.scale:
            paths.pop("png")
        paths["json"].write_text(json.dumps(self.latest_json(), indent=2) + "\n")
        paths["details"].write_text(json.dumps(self.details_json(), indent=2) + "\n")
        paths["md"].write_text(self.markdown())
        return paths
