"""The capacity section's arithmetic (issue 13): the steady-state window, the scaling
factor's interval, the targets' verdicts; and one tiny run of it on the real PostgreSQL.

Nothing here is timed: synthetic batch times stand in for a run where the arithmetic is
checked, and the real run's assertions are about what it counted, not how fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain ``pytest`` does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.capacity import CapacityRow, run_capacity, scaling  # noqa: E402
from benchmarks.conversations import generate  # noqa: E402
from benchmarks.report import Report  # noqa: E402
from benchmarks.stats import bootstrap_ratio_of_means  # noqa: E402
from benchmarks.worker_cost import WorkerCost  # noqa: E402


def _row(processes: int, per_second: float, seed: int) -> CapacityRow:
    """A run whose batches arrive as a Poisson process of ``per_second`` over 60 s."""
    rng = np.random.default_rng(seed)
    count = rng.poisson(per_second * 60.0)
    times = sorted(rng.uniform(0.0, 60.0, size=count).tolist())
    return CapacityRow(f"{processes} processes", processes, 60.0, "-", 5000, 10.0, times)


def test_the_ratio_of_means_interval_covers_a_known_ratio() -> None:
    rng = np.random.default_rng(5)
    b = rng.normal(10.0, 1.0, size=200)
    a = rng.normal(29.0, 2.0, size=200)
    low, high = bootstrap_ratio_of_means(a.tolist(), b.tolist())
    assert low < 2.9 < high and high - low < 0.2
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ratio_of_means([1.0], [1.0, 2.0])


def test_scaling_is_total_batches_of_n_processes_over_one() -> None:
    one = _row(1, 5.0, seed=1)
    three = _row(3, 15.0, seed=2)  # three times the batches in all: 1.0x per process
    found = scaling(one, three)
    assert found is not None
    factor, (low, high) = found
    assert factor == pytest.approx(len(three.batch_times) / len(one.batch_times))
    assert low < factor < high and low < 3.0 < high
    assert three.per_process_per_min() == pytest.approx(len(three.batch_times) / 3)


def test_capacity_targets_follow_the_intervals() -> None:
    report = Report(
        runs=[],
        pace=[],
        growth=[],
        capacity=[_row(1, 5.0, seed=1), _row(3, 15.5, seed=3)],
        scale=[],
        records=[],
        flush=None,
        worker_cost=WorkerCost(
            users=24,
            llm_delay_s=0.25,
            idle_window_s=60.0,
            idle_cpu_parts=[0.0, 0.12, 0.0, 0.0, 0.12, 0.0],
            walls=[2.0, 2.2, 1.9],
            llm_times=[18.0, 18.0, 18.0],
            flushes=72,
        ),
    )
    verdicts = {t.text.split(":")[0]: t.verdict for t in report.targets()}
    rate = next(k for k in verdicts if k.startswith("One worker process"))
    assert verdicts[rate] == "met"  # 300 a minute, its interval far above 100
    scale = next(k for k in verdicts if k.startswith("3 worker processes"))
    assert verdicts[scale] == "met"  # about 3x, its interval above 2.5
    overlap = next(k for k in verdicts if "overlap" in k)
    assert verdicts[overlap] == "met"  # 8-9.5x in every round
    idle = next(k for k in verdicts if k.startswith("Idle worker"))
    assert verdicts[idle] == "undecided"  # mean 0.04, but two parts at 0.12
    found = scaling(*report.capacity)
    assert found is not None
    assert f"3 processes against 1: **{found[0]:.2f}x**" in report.markdown()


def test_warm_up_batches_do_not_count_and_a_starved_run_says_so() -> None:
    row = CapacityRow("1 process", 1, 40.0, "-", 100, 10.0, [float(t) for t in range(80)])
    assert row.starved  # 80 counted + about 20 in the warm-up, of 100 seeded
    assert not CapacityRow("1 process", 1, 40.0, "-", 1000, 10.0, row.batch_times).starved


def test_a_tiny_capacity_run_on_postgres_counts_every_processes_batches(
    postgres_url: str,
) -> None:
    from benchmarks.llm import LatencyModel, ServedBenchLLM
    from benchmarks.scale import run_id

    llm = ServedBenchLLM(LatencyModel("tiny", llm_delay_s=0.01))
    try:
        rows = run_capacity(
            postgres_url,
            llm.url_for("capacity"),
            generate(1, 3, 5),
            process_counts=[1, 2],
            users=12,
            window_s=120.0,  # ends as soon as all 12 batches are in
            warmup_s=0.0,
            latency="10 ms",
            run_id=run_id(),
        )
    finally:
        llm.close()
    assert [(r.processes, r.error) for r in rows] == [(1, None), (2, None)]
    for row in rows:
        # Every seeded user's one batch, each counted once, within the window.
        assert len(row.batch_times) == 12, row.batch_times
        assert all(0.0 <= t < 120.0 for t in row.batch_times)
        assert row.starved
