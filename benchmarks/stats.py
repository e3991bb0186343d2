"""Statistics for the reports: percentiles, and bootstrap 95% confidence intervals.

Every overhead in the report is a *paired* difference: the system and its framework's
baseline run the same turns interleaved (turn i of one right after or before turn i of the
other), so the pairs share the machine's momentary load. The interval of a quantile
difference is the percentile bootstrap over those pairs: resample pair indices with
replacement, recompute ``quantile(system) - quantile(baseline)`` on the resample, and take
the 2.5th and 97.5th percentiles of the 2,000 replicates. Quantiles use numpy's default
(linear interpolation), as :func:`percentile` does.

A target is *met* only when its whole interval is on the right side of the threshold,
*missed* when the whole interval is on the wrong side, and *undecided* otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "BOOTSTRAP_REPLICATES",
    "Interval",
    "bootstrap_mean",
    "bootstrap_quantile",
    "bootstrap_quantile_diff",
    "bootstrap_quantile_diff_independent",
    "bootstrap_quantile_ratio",
    "bootstrap_ratio_of_means",
    "ms",
    "percentile",
    "summary_ms",
    "verdict",
]

BOOTSTRAP_REPLICATES = 2000
Interval = tuple[float, float]
Verdict = Literal["met", "missed", "undecided"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; 0.0 for no values."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=float), q))


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for reports."""
    return round(seconds * 1000.0, 4)


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of samples given in seconds."""
    return {
        "p50_ms": ms(percentile(samples, 50)),
        "p95_ms": ms(percentile(samples, 95)),
        "p99_ms": ms(percentile(samples, 99)),
        "mean_ms": ms(sum(samples) / len(samples)) if samples else 0.0,
        "n": float(len(samples)),
    }


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def bootstrap_quantile_diff(
    system: Sequence[float],
    baseline: Sequence[float],
    q: float,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 14,
) -> Interval:
    """95% interval of ``percentile(system, q) - percentile(baseline, q)`` over paired samples
    (``system[i]`` and ``baseline[i]`` belong together; the same indices are resampled)."""
    a = np.asarray(system, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two paired samples of equal length >= 2, got {len(a)}/{len(b)}")
    idx = _rng(seed).integers(0, len(a), size=(replicates, len(a)))
    diffs = np.percentile(a[idx], q, axis=1) - np.percentile(b[idx], q, axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_quantile_ratio(
    system: Sequence[float],
    baseline: Sequence[float],
    q: float,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 14,
) -> Interval:
    """95% interval of ``percentile(system, q) / percentile(baseline, q)`` over paired samples
    (the same indices are resampled; the baseline's quantile must be positive)."""
    a = np.asarray(system, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two paired samples of equal length >= 2, got {len(a)}/{len(b)}")
    idx = _rng(seed).integers(0, len(a), size=(replicates, len(a)))
    ratios = np.percentile(a[idx], q, axis=1) / np.percentile(b[idx], q, axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_quantile_diff_independent(
    a_values: Sequence[float],
    b_values: Sequence[float],
    q: float,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 14,
) -> Interval:
    """95% interval of ``percentile(a, q) - percentile(b, q)`` for two independent samples
    (each resampled on its own)."""
    a = np.asarray(a_values, dtype=float)
    b = np.asarray(b_values, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples each, got {len(a)}/{len(b)}")
    rng = _rng(seed)
    ia = rng.integers(0, len(a), size=(replicates, len(a)))
    ib = rng.integers(0, len(b), size=(replicates, len(b)))
    diffs = np.percentile(a[ia], q, axis=1) - np.percentile(b[ib], q, axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_quantile(
    values: Sequence[float],
    q: float,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 14,
) -> Interval:
    """95% interval of ``percentile(values, q)``."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        raise ValueError(f"need at least 2 samples, got {len(a)}")
    idx = _rng(seed).integers(0, len(a), size=(replicates, len(a)))
    low, high = np.percentile(np.percentile(a[idx], q, axis=1), [2.5, 97.5])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float], *, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 14
) -> Interval:
    """95% interval of the mean of ``values``."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        raise ValueError(f"need at least 2 samples, got {len(a)}")
    idx = _rng(seed).integers(0, len(a), size=(replicates, len(a)))
    low, high = np.percentile(a[idx].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def bootstrap_ratio_of_means(
    a_values: Sequence[float],
    b_values: Sequence[float],
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 14,
) -> Interval:
    """95% interval of ``mean(a) / mean(b)`` for two independent samples (each resampled
    on its own); replicates whose ``b`` mean is not positive are left out."""
    a = np.asarray(a_values, dtype=float)
    b = np.asarray(b_values, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples each, got {len(a)}/{len(b)}")
    rng = _rng(seed)
    means_a = a[rng.integers(0, len(a), size=(replicates, len(a)))].mean(axis=1)
    means_b = b[rng.integers(0, len(b), size=(replicates, len(b)))].mean(axis=1)
    keep = means_b > 0
    if not keep.any():
        raise ValueError("the denominator's mean is never positive")
    low, high = np.percentile(means_a[keep] / means_b[keep], [2.5, 97.5])
    return float(low), float(high)


def verdict(interval: Interval | None, threshold: float, *, below: bool = True) -> Verdict | None:
    """``met`` when the whole interval is below (``below``) or above the threshold, ``missed``
    when it is wholly on the other side, ``undecided`` when it straddles it."""
    if interval is None:
        return None
    low, high = interval
    if below:
        if high <= threshold:
            return "met"
        if low > threshold:
            return "missed"
        return "undecided"
    if low >= threshold:
        return "met"
    if high < threshold:
        return "missed"
    return "undecided"
