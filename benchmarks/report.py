"""Turn the measurements into ``latest.json``, ``latest-details.json``, ``latest.md`` and the
plots, and check the targets against the measured *intervals*.

A target is met only when its whole 95% interval is on the right side of the threshold,
missed when it is wholly on the wrong side, undecided otherwise; nothing is floored or
clamped, and a ratio is only formed from interval bounds that are positive.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.capacity import CapacityRow, scaling
from benchmarks.hotpath import SystemRun, details_json
from benchmarks.pace import PRICES, PaceRow
from benchmarks.ratios import RatiosResult
from benchmarks.record_bench import FlushCost, RecordResult
from benchmarks.scale import ScalePoint
from benchmarks.stats import (
    Interval,
    bootstrap_quantile,
    bootstrap_quantile_diff_independent,
    ms,
    percentile,
    verdict,
)
from benchmarks.worker_cost import WorkerCost

__all__ = ["Report", "Target", "machine"]

#: The targets (issues 4 and 8).
P95_BUDGET_MS = 2.0
PEER_FACTOR = 100.0
MEM0_CALL_FRACTION = 1 / 8
PROMPT_PER_RAW_MAX = 3.5
CONTEXT_P95_MAX_MS = 5.0
RECORD_P95_MAX_MS = 2.0
INJECTED_MIN = 0.8
#: Issue 13's capacity targets.
BATCHES_PER_MIN_MIN = 100.0
SCALING_PROCESSES = 3
SCALING_MIN = 2.5
OVERLAP_MIN = 6.0
IDLE_CPU_MAX = 0.05


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


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ci(interval: Interval | Sequence[float] | None, digits: int = 2) -> str:
    if interval is None:
        return "–"
    low, high = interval
    return f"[{low:,.{digits}f}, {high:,.{digits}f}]"


def _val_ci(value: float | None, interval: Sequence[float] | None) -> str:
    return "–" if value is None else f"{value:,.3f} {_ci(interval, 3)}"


def _usd(value: float | None) -> str:
    return "–" if value is None else f"${value:.5f}"


@dataclass(slots=True)
class Target:
    text: str
    measured: str
    verdict: str | None  # "met" / "missed" / "undecided" / None (not measured)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.text,
            "measured": self.measured,
            "verdict": self.verdict,
            "note": self.note,
        }


def _ratio_interval(
    num: Interval | None, den: Interval | None
) -> tuple[float | None, float | None] | None:
    """Bounds of num/den from two intervals, only where the bounds used are positive."""
    if num is None or den is None:
        return None
    n_lo, n_hi = num
    d_lo, d_hi = den
    low = n_lo / d_hi if d_hi > 0 and n_lo >= 0 else None
    high = n_hi / d_lo if d_lo > 0 else None
    return low, high


@dataclass(slots=True)
class Report:
    runs: list[SystemRun]
    pace: list[PaceRow]
    growth: list[PaceRow]
    capacity: list[CapacityRow]
    scale: list[ScalePoint]
    records: list[RecordResult]
    flush: FlushCost | None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    ratios: RatiosResult | None = None
    worker_cost: WorkerCost | None = None
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    machine: str = field(default_factory=machine)

    # -- lookups -------------------------------------------------------------------------------
    def _runs(self, mode: str) -> list[SystemRun]:
        return [r for r in self.runs if r.mode == mode]

    def _pace_for(self, key: str) -> PaceRow | None:
        return next((p for p in self.pace if p.key == key and not p.error), None)

    def _fastest_peer(self, run: SystemRun) -> SystemRun | None:
        peers = [
            r
            for r in self._runs(run.mode)
            if r.peer
            and r.framework == run.framework
            and not r.error
            and r.overhead_p50_ms is not None
            and r.overhead_p50_ms > 0
        ]
        return min(peers, key=lambda r: r.overhead_p50_ms or 0.0) if peers else None

    def _vs_fastest(self, run: SystemRun) -> dict[str, Any] | None:
        if run.baseline or run.floor:
            return None
        peer = self._fastest_peer(run)
        if peer is None or run is peer or run.overhead_p50_ms is None:
            return None
        bounds = _ratio_interval(run.overhead_p50_ci_ms, peer.overhead_p50_ci_ms)
        return {
            "peer": peer.name,
            "ratio_p50": round(run.overhead_p50_ms / (peer.overhead_p50_ms or 1.0), 4),
            "ratio_ci95": bounds,
        }

    # -- json ---------------------------------------------------------------------------------
    def system_json(self, run: SystemRun) -> dict[str, Any]:
        pace = self._pace_for(run.key) if run.uses_llm else None
        cost: dict[str, Any] = {}
        if run.uses_llm and pace is not None:
            j = pace.as_json()
            cost = {
                "llm_calls_per_100_messages": j["llm_calls_per_100_messages"],
                "prompt_tokens_per_raw_token": j["prompt_tokens_per_raw_token"],
                "embedding_tokens_per_raw_token": j["embedding_tokens_per_raw_token"],
            }
        elif run.uses_llm or (run.memobase and "remote" in run.key):
            cost = dict.fromkeys(
                (
                    "llm_calls_per_100_messages",
                    "prompt_tokens_per_raw_token",
                    "embedding_tokens_per_raw_token",
                )
            )
        else:
            cost = {
                "llm_calls_per_100_messages": 0.0,
                "prompt_tokens_per_raw_token": 0.0,
                "embedding_tokens_per_raw_token": 0.0,
            }
        return {
            "name": run.name,
            "key": run.key,
            "mode": run.mode,
            "framework": run.framework,
            "turn_overhead_p50_ms": run.overhead_p50_ms,
            "turn_overhead_p95_ms": run.overhead_p95_ms,
            "overhead_ci95_ms": run.overhead_p50_ci_ms,
            "turn_overhead_p95_ci95_ms": run.overhead_p95_ci_ms,
            "memory_injected_fraction": run.memory_injected_fraction if run.long_term else 0.0,
            **cost,
            "calls_on_caller_thread": run.calls_per_turn,
            "vs_fastest_peer_same_framework": self._vs_fastest(run),
            "timed_pairs": len(run.turn_s),
            "error": run.error,
        }

    def latest_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "machine": self.machine,
            "config": self.config,
            "systems": [self.system_json(r) for r in self.runs],
            "pace": [p.as_json() for p in self.pace],
            "growth": [p.as_json() for p in self.growth],
            "capacity": [c.as_json() for c in self.capacity],
            "worker_cost": self.worker_cost.as_json() if self.worker_cost else None,
            "scale": [p.as_json() for p in self.scale],
            "record": [r.as_json() for r in self.records],
            "ratios": self.ratios.as_json() if self.ratios else None,
            "prices_usd_per_mtok": PRICES,
            "targets": [t.as_json() for t in self.targets()],
            "notes": self.notes,
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
            "notes": self.notes,
        }

    # -- targets ------------------------------------------------------------------------------
    def targets(self) -> list[Target]:
        out: list[Target] = []
        out += self._caller_thread_targets()
        for mode in ("hosted", "instant"):
            for r in self._runs(mode):
                if r.memobase and "embedded" in r.key and not r.error:
                    out += self._overhead_targets(r)
        out += self._cost_targets()
        out += self._scale_targets()
        out += self._capacity_targets()
        if self.ratios is not None:
            out += [Target(*t) for t in self.ratios.targets()]
        for rec in self.records:
            if rec.name.startswith("Memobase") and len(rec.samples) > 1:
                low, high = bootstrap_quantile(rec.samples, 95)
                ci = (ms(low), ms(high))
                p95 = ms(percentile(rec.samples, 95))
                v = verdict(ci, RECORD_P95_MAX_MS)
                if rec.calls_per_record:
                    v = "missed"
                out.append(
                    Target(
                        f"{rec.name}: p95 < {RECORD_P95_MAX_MS:g} ms, no call on the caller's "
                        "thread",
                        f"p95 {p95:.3f} ms {_ci(ci, 3)}, {rec.calls_per_record:g} calls/record",
                        v,
                    )
                )
        return out

    def _caller_thread_targets(self) -> list[Target]:
        out = []
        for backend in ("embedded", "remote"):
            rows = [r for r in self.runs if r.memobase and backend in r.key and not r.error]
            if not rows:
                continue
            worst = max(rows, key=lambda r: r.calls_per_turn)
            out.append(
                Target(
                    "No LLM, embedding or network call on the caller's thread per turn "
                    f"(Memobase adapters, {backend})",
                    f"max {worst.calls_per_turn:g} calls/turn ({worst.name}, {worst.mode})",
                    "met" if worst.calls_per_turn == 0 else "missed",
                    "a count, not a sample statistic",
                )
            )
        return out

    def _overhead_targets(self, r: SystemRun) -> list[Target]:
        out = []
        if r.mode == "hosted":
            frac = r.memory_injected_fraction
            out.append(
                Target(
                    f"{r.name}, hosted: memory in the prompt on >= {INJECTED_MIN:.0%} of "
                    "measured turns",
                    f"{_f(frac, 3)} of {len(r.injected)} turns",
                    None if frac is None else ("met" if frac >= INJECTED_MIN else "missed"),
                    "a count over the measured turns",
                )
            )
        out.append(
            Target(
                f"{r.name}, {r.mode}: p95 overhead within {P95_BUDGET_MS:g} ms of the "
                "no-memory baseline",
                f"{_f(r.overhead_p95_ms, 3)} ms, 95% CI {_ci(r.overhead_p95_ci_ms, 3)}",
                verdict(r.overhead_p95_ci_ms, P95_BUDGET_MS),
            )
        )
        waiting_peers = [
            p
            for p in self._runs(r.mode)
            if p.peer
            and p.framework == r.framework
            and not p.error
            and (
                p.waits_for_model
                or p.calls_breakdown.get("llm", 0.0) + p.calls_breakdown.get("embedding", 0.0)
                >= 0.99
            )
        ]
        for peer in waiting_peers:
            out.append(self._factor_target(r, peer))
        return out

    def _factor_target(self, r: SystemRun, peer: SystemRun) -> Target:
        text = (
            f"{r.name}, {r.mode}: p95 overhead >= {PEER_FACTOR:g}x below {peer.name} "
            "(same framework; the peer waits for a model call every turn)"
        )
        own, theirs = r.overhead_p95_ci_ms, peer.overhead_p95_ci_ms
        if own is None or theirs is None:
            return Target(text, "not measured", None)
        measured = (
            f"peer {_f(peer.overhead_p95_ms, 1)} ms {_ci(theirs, 1)} vs "
            f"{_f(r.overhead_p95_ms, 3)} ms {_ci(own, 3)}"
        )
        if own[1] <= 0:
            return Target(
                text,
                measured + "; Memobase's interval is not above 0, so the factor is unbounded",
                "met" if theirs[0] > 0 else "undecided",
            )
        low = theirs[0] / own[1] if theirs[0] > 0 else None
        high = theirs[1] / own[0] if own[0] > 0 else None
        bounds = f"factor >= {_f(low, 0)}" if low is not None else "factor lower bound n/a"
        if high is not None:
            bounds += f", <= {_f(high, 0)}"
        if low is not None and low >= PEER_FACTOR:
            v = "met"
        elif high is not None and high < PEER_FACTOR:
            v = "missed"
        else:
            v = "undecided"
        return Target(text, f"{measured}; {bounds}", v, "bounds from the two 95% intervals")

    def _cost_targets(self) -> list[Target]:
        out = []
        mem0_rows = [p for p in self.pace if "mem0" in p.key and not p.error]
        for p in self.pace:
            if "memobase" not in p.key or p.error:
                continue
            j = p.as_json()
            calls = j["llm_calls_per_100_messages"]
            for m in mem0_rows:
                mj = m.as_json()
                ref = mj["llm_calls_per_100_messages"]
                if not ref:
                    continue
                out.append(
                    Target(
                        f"{p.name}: LLM calls per 100 messages <= 1/8 of {m.name} (at pace)",
                        f"{_f(calls)} vs {_f(ref)} (= 1/{ref / calls:.1f})"
                        if calls
                        else f"{_f(calls)} vs {_f(ref)}",
                        "met"
                        if calls is not None and calls <= ref * MEM0_CALL_FRACTION
                        else "missed",
                        "deterministic for these conversations (no sampling)",
                    )
                )
            ratio = j["prompt_tokens_per_raw_token"]
            out.append(
                Target(
                    f"{p.name}: prompt tokens per raw chat token <= {PROMPT_PER_RAW_MAX:g} "
                    "(at pace)",
                    f"{_f(ratio)}",
                    None if ratio is None else ("met" if ratio <= PROMPT_PER_RAW_MAX else "missed"),
                    "deterministic for these conversations (no sampling)",
                )
            )
        return out

    def _scaling(self) -> tuple[CapacityRow, CapacityRow, tuple[float, Interval]] | None:
        ok = [c for c in self.capacity if not c.error]
        one = next((c for c in ok if c.processes == 1), None)
        many = max(ok, key=lambda c: c.processes, default=None)
        if one is None or many is None or many is one:
            return None
        got = scaling(one, many)
        return (one, many, got) if got is not None else None

    def _capacity_targets(self) -> list[Target]:
        out: list[Target] = []
        one = next((c for c in self.capacity if c.processes == 1 and not c.error), None)
        if one is not None:
            rate, ci = one.per_process_per_min(), one.interval()
            out.append(
                Target(
                    "One worker process (PostgreSQL, default settings, hosted latency): "
                    f">= {BATCHES_PER_MIN_MIN:g} user batches per minute",
                    f"{_f(rate)} {_ci(ci)}",
                    verdict(ci, BATCHES_PER_MIN_MIN, below=False),
                )
            )
        found = self._scaling()
        if found is not None and found[1].processes == SCALING_PROCESSES:
            _one, many, (factor, ci) = found
            out.append(
                Target(
                    f"{many.processes} worker processes on one PostgreSQL store: >= "
                    f"{SCALING_MIN:g}x the batches per minute of one",
                    f"{factor:.2f}x {_ci(ci)}",
                    verdict(ci, SCALING_MIN, below=False),
                    "both runs' time bins resampled independently",
                )
            )
        w = self.worker_cost
        if w is not None and not w.error:
            ci = w.overlap_interval()
            out.append(
                Target(
                    f"{w.users} users' flushes at a {w.llm_delay_s:g} s LLM overlap >= "
                    f"{OVERLAP_MIN:g}x (sum of LLM time / wall time)",
                    f"{_f(w.overlap)} {_ci(ci)} over {len(w.walls)} rounds",
                    verdict(ci, OVERLAP_MIN, below=False),
                )
            )
            ci = w.idle_cpu_interval()
            out.append(
                Target(
                    f"Idle worker process: <= {IDLE_CPU_MAX:g} CPU-s per minute",
                    f"{_f(w.idle_cpu_s_per_min, 3)} {_ci(ci, 3)}",
                    verdict(ci, IDLE_CPU_MAX),
                    "6 parts of one idle window (schedstat, ns)",
                )
            )
        return out

    def _scale_targets(self) -> list[Target]:
        out: list[Target] = []
        sqlite = sorted(
            (p for p in self.scale if p.backend == "sqlite" and len(p.context_s) > 1),
            key=lambda p: p.users,
        )
        if not sqlite:
            return out
        largest, smallest = sqlite[-1], sqlite[0]
        ci = bootstrap_quantile(largest.context_s, 95)
        ci_ms = (ms(ci[0]), ms(ci[1]))
        out.append(
            Target(
                f"context() p95 < {CONTEXT_P95_MAX_MS:g} ms at {largest.users:,} users (SQLite)",
                f"{ms(percentile(largest.context_s, 95)):.3f} ms {_ci(ci_ms, 3)}",
                verdict(ci_ms, CONTEXT_P95_MAX_MS),
            )
        )
        if largest is not smallest:
            out.append(self._flat_target("sqlite", smallest, largest))
        pg = sorted(
            (p for p in self.scale if p.backend == "postgresql" and len(p.context_s) > 1),
            key=lambda p: p.users,
        )
        if len(pg) > 1:
            out.append(self._flat_target("postgresql", pg[0], pg[-1]))
        return out

    @staticmethod
    def _flat_target(backend: str, small: ScalePoint, large: ScalePoint) -> Target:
        low, high = bootstrap_quantile_diff_independent(large.context_s, small.context_s, 95)
        diff = ms(percentile(large.context_s, 95) - percentile(small.context_s, 95))
        ci = (ms(low), ms(high))
        if ci[0] <= 0 <= ci[1]:
            v, what = "met", "no change detected (the interval includes 0)"
        elif ci[0] > 0:
            v, what = "missed", "grows"
        else:
            v, what = "met", "lower at the larger size"
        return Target(
            f"context() p95 flat from {small.users:,} to {large.users:,} users ({backend})",
            f"p95 difference {diff:+.3f} ms {_ci(ci, 3)}: {what}",
            v,
            "independent bootstrap of the two p95s; no fitted exponent",
        )

    # -- markdown -----------------------------------------------------------------------------
    def _hot_table(self, mode: str) -> list[str]:
        lines = [
            "| system | memory in prompt | turn p50 ms | baseline p50 ms | overhead p50 ms "
            "[95% CI] | overhead p95 ms [95% CI] | vs fastest peer, same framework (p50) "
            "| calls on caller's thread / turn |",
            "|---|---:|---:|---:|---|---|---|---:|",
        ]
        for r in self._runs(mode):
            if r.error:
                lines.append(f"| {r.name} | failed: {r.error} | | | | | | |")
                continue
            vs = self._vs_fastest(r)
            if vs is None:
                vs_text = "–"
            else:
                lo, hi = vs["ratio_ci95"] or (None, None)
                vs_text = f"{vs['ratio_p50']:.3g}× [{_f(lo, 3)}, {_f(hi, 3)}]"
            frac = r.memory_injected_fraction if r.long_term else None
            lines.append(
                f"| {r.name} | {_f(frac, 2) if r.long_term else 'n/a'} | {r.p50_ms:.2f} "
                f"| {_f(r.base_p50_ms)} | {_f(r.overhead_p50_ms, 3)} "
                f"{_ci(r.overhead_p50_ci_ms, 3)} | {_f(r.overhead_p95_ms, 3)} "
                f"{_ci(r.overhead_p95_ci_ms, 3)} | {vs_text} | {r.calls_per_turn:g} |"
            )
        return lines

    def _pace_table(self, rows: Sequence[PaceRow], *, growth: bool = False) -> list[str]:
        head = "| system | msgs / user " if growth else "| system "
        lines = [
            head + "| LLM calls / 100 msgs | embedding calls / 100 msgs | prompt tok / raw tok "
            "| cached share of prompt | completion tok / 100 msgs | embedding tok / raw tok "
            "| USD / 100 msgs | USD / 100 msgs, cached prefix | calls by kind |",
            ("|---|---:" if growth else "|---") + "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for p in rows:
            j = p.as_json()
            first = f"| {p.name} | {j['messages_per_user']} " if growth else f"| {p.name} "
            if p.error:
                lines.append(first + f"| failed: {p.error} | | | | | | | | |")
                continue
            kinds = ", ".join(f"{k} {v}" for k, v in j["calls_by_kind"].items()) or "none"
            lines.append(
                first + f"| {_f(j['llm_calls_per_100_messages'])} "
                f"| {_f(j['embedding_calls_per_100_messages'])} "
                f"| {_f(j['prompt_tokens_per_raw_token'])} | {_f(j['cached_prompt_share'])} "
                f"| {_f(j['completion_tokens_per_100_messages'], 1)} "
                f"| {_f(j['embedding_tokens_per_raw_token'])} "
                f"| {_usd(j['cost_per_100_messages_usd'])} "
                f"| {_usd(j['cost_per_100_messages_cached_usd'])} | {kinds} |"
            )
        return lines

    def markdown(self) -> str:
        cfg = self.config
        out = [
            "# Benchmark results",
            "",
            f"Run on {self.machine}, {self.date}, by `{cfg.get('command', '?')}`. "
            "Method and definitions: [`../README.md`](../README.md). Every interval is a 95% "
            "bootstrap interval; a target counts as met only when its whole interval says so.",
            "",
        ]
        if cfg.get("load_note"):
            out += [f"**{cfg['load_note']}**", ""]
        out += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
        for t in self.targets():
            v = {"met": "met", "missed": "**missed**", "undecided": "undecided"}.get(
                t.verdict or "", "not measured"
            )
            note = f" ({t.note})" if t.note else ""
            out.append(f"| {t.text} | {t.measured}{note} | {v} |")
        out.append("")
        for mode, title in (
            ("hosted", f"Hot path per turn, hosted latency ({cfg.get('hosted', '')})"),
            ("instant", "Hot path per turn, everything instant (CPU cost only)"),
        ):
            runs = self._runs(mode)
            if not runs:
                continue
            plan = cfg.get(f"{mode}_plan", "")
            out += [f"## {title}", "", plan, ""]
            out += self._hot_table(mode)
            out.append("")
        if self.pace:
            out += [
                "## LLM cost at a conversational pace (simulated clock)",
                "",
                cfg.get("pace_plan", ""),
                "",
                f"Prices (USD per 1M tokens): {PRICES['chat_model']} input "
                f"{PRICES['input_per_mtok']}, cached input {PRICES['cached_input_per_mtok']}, "
                f"output {PRICES['output_per_mtok']}; {PRICES['embedding_model']} "
                f"{PRICES['embedding_per_mtok']}. Caching rule: {PRICES['caching_rule']}.",
                "",
            ]
            out += self._pace_table(self.pace)
            out.append("")
        if self.growth:
            out += ["## Growth: 100 vs 1,000 messages per user (same pace)", ""]
            out += self._pace_table(self.growth, growth=True)
            out.append("")
        if self.capacity:
            out += [
                "## Capacity: user batches per minute per worker process (PostgreSQL)",
                "",
                cfg.get("capacity_plan", ""),
                "",
                "| configuration | batches in window | window s | batches / min / process "
                "[95% CI] | remark |",
                "|---|---:|---:|---|---|",
            ]
            for c in self.capacity:
                j = c.as_json()
                remark = c.error or ("starved: ran out of seeded batches" if j["starved"] else "")
                out.append(
                    f"| {c.name} | {_f(j['batches_in_window'], 0)} | {c.window_s:g} "
                    f"| {_f(j['batches_per_min_per_process'])} "
                    f"{_ci(j['batches_per_min_per_process_ci95'])} "
                    f"| {remark} |"
                )
            found = self._scaling()
            if found is not None:
                _one, many, (factor, ci) = found
                out += [
                    "",
                    f"{many.processes} processes against 1: **{factor:.2f}x** the batches per "
                    f"minute {_ci(ci)}.",
                ]
            out.append("")
        if self.worker_cost:
            w = self.worker_cost.as_json()
            out += [
                "## The worker process: overlap and cost (PostgreSQL, default settings)",
                "",
                f"{w['users']} users' flushes requested at once, every LLM call "
                f"{w['llm_delay_s']:g} s, {w['rounds']} rounds (means shown). Overlap = sum "
                "of their LLM time / wall time (1.0 = sequential).",
                "",
                "| overlap [95% CI] | wall s | LLM s (sum) | CPU s / flush "
                "| idle CPU s / min [95% CI] | resident MB | remark |",
                "|---|---:|---:|---:|---|---:|---|",
                f"| {_f(w['overlap'])} {_ci(w['overlap_ci95'])} | {_f(w['wall_s'])} "
                f"| {_f(w['llm_s_sum'])} | {_f(w['cpu_s_per_flush'], 4)} "
                f"| {_f(w['idle_cpu_s_per_min'], 3)} {_ci(w['idle_cpu_s_per_min_ci95'], 3)} "
                f"| {_f(w['rss_mb'], 1)} | {w['error'] or ''} |",
                "",
            ]
        if self.scale:
            out += [
                "## Scale: reading a user's memory as users grow",
                "",
                "| store | users | p50 ms | p95 ms [95% CI] | raw-SQL floor p95 ms [95% CI] "
                "| record p95 ms [95% CI] | record / s | samples | seed s |",
                "|---|---:|---:|---|---|---|---:|---:|---:|",
            ]
            for p in self.scale:
                if p.error:
                    out.append(
                        f"| {p.backend} {p.what} | {p.users:,} | failed: {p.error} | | | | | | |"
                    )
                    continue
                j = p.as_json()
                out.append(
                    f"| {p.backend} {p.what} | {p.users:,} "
                    f"| {ms(percentile(p.context_s, 50)):.3f} "
                    f"| {_val_ci(j['context_p95_ms'], j['context_p95_ci95_ms'])} "
                    f"| {_val_ci(j['raw_sql_floor_p95_ms'], j['raw_sql_floor_p95_ci95_ms'])} "
                    f"| {_val_ci(j['record_p95_ms'], j['record_p95_ci95_ms'])} "
                    f"| {_f(j['record_per_s'], 0)} | {len(p.context_s)} | {p.seed_s:.1f} |"
                )
            out.append("")
        if self.records:
            out += [
                "## `record` latency (issue 4)",
                "",
                "| path | p50 ms | p95 ms [95% CI] | p99 ms | samples | calls on caller's "
                "thread / record | flushes during the run |",
                "|---|---:|---|---:|---:|---:|---:|",
            ]
            for rec in self.records:
                if rec.error or len(rec.samples) < 2:
                    out.append(f"| {rec.name} | failed: {rec.error} | | | | | |")
                    continue
                j = rec.as_json()
                low, high = bootstrap_quantile(rec.samples, 95)
                flushes = "–" if rec.flushes is None else str(rec.flushes)
                out.append(
                    f"| {rec.name} | {j['p50_ms']:.4f} | {j['p95_ms']:.4f} "
                    f"{_ci((ms(low), ms(high)), 4)} | {j['p99_ms']:.4f} | {j['samples']} "
                    f"| {j['calls_on_caller_thread']:g} | {flushes} |"
                )
            out.append("")
        if self.flush is not None:
            f = self.flush.as_json()
            out += [
                "## Embedded engine: non-LLM processing time per flush",
                "",
                f"{f['flushes']} flushes of one session each ({f['chat_tokens_per_flush']} chat "
                f"tokens, {f['llm_calls_per_flush']} LLM calls per flush): non-LLM time p50 "
                f"{f['non_llm_p50_ms']} ms, p95 {f['non_llm_p95_ms']} ms.",
                "",
            ]
        if self.notes:
            out += ["## Notes from this run", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(out)

    # -- plots --------------------------------------------------------------------------------
    def plot_overview(self, path: Path) -> bool:
        """Overhead per system with its interval (hosted), and cost per 100 messages at the
        simulated pace with and without cached-prefix pricing."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            self.notes.append("matplotlib is not installed: no PNG (pip install '.[bench]').")
            return False
        hosted = [r for r in self._runs("hosted") if r.overhead_p50_ci_ms and not r.baseline]
        mode = "hosted"
        if not hosted:
            hosted = [r for r in self._runs("instant") if r.overhead_p50_ci_ms and not r.baseline]
            mode = "instant"
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 0.5 * max(len(hosted), 6) + 2.2))
        labels = [_short(r.name) for r in hosted]
        y = list(range(len(hosted)))
        points = [r.overhead_p50_ms or 0.0 for r in hosted]
        lows = [p - r.overhead_p50_ci_ms[0] for p, r in zip(points, hosted, strict=True)]  # type: ignore[index]
        highs = [r.overhead_p50_ci_ms[1] - p for p, r in zip(points, hosted, strict=True)]  # type: ignore[index]
        colors = [
            "tab:green" if r.memobase else ("tab:red" if r.peer else "tab:gray") for r in hosted
        ]
        ax1.barh(y, points, color=colors, alpha=0.6)
        ax1.errorbar(points, y, xerr=[lows, highs], fmt="none", ecolor="black", capsize=3)
        ax1.set_yticks(y, labels, fontsize=8)
        ax1.invert_yaxis()
        ax1.set_xscale("symlog", linthresh=1.0)
        ax1.axvline(0, color="black", linewidth=0.8)
        ax1.axvline(P95_BUDGET_MS, color="grey", linestyle=":", label="2 ms (the p95 budget)")
        ax1.set_xlabel("p50 overhead per turn vs its framework's baseline, ms (95% CI; symlog)")
        ax1.set_title(f"Turn overhead, {mode} mode (green Memobase, red peers)", fontsize=10)
        ax1.legend(fontsize=8, loc="lower right")
        ax1.grid(True, axis="x", alpha=0.3)
        pace = [p for p in self.pace if not p.error]
        py = list(range(len(pace)))
        plain = [p.as_json()["cost_per_100_messages_usd"] or 0.0 for p in pace]
        cached = [p.as_json()["cost_per_100_messages_cached_usd"] or 0.0 for p in pace]
        ax2.barh([v - 0.2 for v in py], plain, height=0.4, label="list price", color="tab:blue")
        ax2.barh(
            [v + 0.2 for v in py], cached, height=0.4, label="cached-prefix price", color="tab:cyan"
        )
        ax2.set_yticks(py, [_short(p.name) for p in pace], fontsize=8)
        ax2.invert_yaxis()
        if any(plain):
            ax2.set_xscale("log")
        ax2.set_xlabel("USD per 100 chat messages at the simulated pace (log)")
        ax2.set_title("LLM + embedding cost per 100 messages", fontsize=10)
        ax2.legend(fontsize=8, loc="best")
        ax2.grid(True, axis="x", which="both", alpha=0.3)
        fig.suptitle(f"memobase-integrations benchmarks, {self.date}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True

    def plot_scale(self, path: Path) -> bool:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for backend in sorted({p.backend for p in self.scale}):
            pts = sorted(
                (p for p in self.scale if p.backend == backend and len(p.context_s) > 1),
                key=lambda p: p.users,
            )
            if not pts:
                continue
            users = [p.users for p in pts]
            p95 = [ms(percentile(p.context_s, 95)) for p in pts]
            cis = [p.as_json()["context_p95_ci95_ms"] for p in pts]
            ax.errorbar(
                users,
                p95,
                yerr=[
                    [v - c[0] for v, c in zip(p95, cis, strict=True)],
                    [c[1] - v for v, c in zip(p95, cis, strict=True)],
                ],
                fmt="o-",
                capsize=3,
                label=f"{backend} {pts[0].what} p95",
            )
            if any(p.floor_s for p in pts):
                floor = [ms(percentile(p.floor_s, 95)) for p in pts]
                ax.plot(users, floor, "s--", label=f"{backend} raw-SQL floor p95")
        ax.axhline(CONTEXT_P95_MAX_MS, color="grey", linestyle=":", label="5 ms target")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="users in the store",
            ylabel="latency, ms (95% CI)",
            title="Reading one user's memory vs users",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
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
            "overview": out_dir / "overview.png",
            "scale_png": out_dir / "latency_vs_users.png",
        }
        if not (self.runs or self.pace) or not self.plot_overview(paths["overview"]):
            paths.pop("overview")
        if not self.scale or not self.plot_scale(paths["scale_png"]):
            paths.pop("scale_png")
        paths["json"].write_text(json.dumps(self.latest_json(), indent=2) + "\n")
        paths["details"].write_text(json.dumps(self.details_json(), indent=2) + "\n")
        paths["md"].write_text(self.markdown())
        return paths


def _short(name: str) -> str:
    """A system's name without its configuration note, for plot labels."""
    head, _, rest = name.partition(" (")
    head = head.replace("langchain: ", "LC: ").replace("llamaindex: ", "LI: ")
    detail = re.split(r"[,;)]", rest, maxsplit=1)[0].strip() if rest else ""
    return f"{head} ({detail[:28]})" if detail else head
