"""Which model, and how many samples, give the most coverage for a budget (from scaling fits).

Coverage grows with k, so for each model the best k is the largest one the budget buys:
k = floor((budget - fixed_cost) / cost_per_sample). The budget and costs share one unit and one
scope: samples (cost_per_sample = 1), FLOPs or dollars, per problem or for the whole dataset
(one sample of every problem). Predictions come from exp(a k^b); the band and the chance of
being best come from the bootstrap refits, paired across models by resample index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from monkeyflow.metrics.scaling import PowerLawFit, power_law_coverage

_SCHEMA = {
    "budget": pl.Float64,
    "rank": pl.Int64,
    "model": pl.String,
    "k": pl.Int64,
    "cost": pl.Float64,
    "coverage": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "p_best": pl.Float64,
    "extrapolated": pl.Boolean,
}


def affordable_k(
    budget: float, cost_per_sample: float, fixed_cost: float = 0.0, k_cap: int | None = None
) -> int:
    """Largest k with fixed_cost + k * cost_per_sample <= budget (0 if not even one sample)."""
    if cost_per_sample <= 0:
        raise ValueError(f"cost per sample must be > 0, got {cost_per_sample}")
    # The small relative slack keeps budgets that are exact multiples from losing a sample to rounding.
    k = int(np.floor((budget - fixed_cost) / cost_per_sample * (1 + 1e-12)))
    k = max(k, 0)
    return min(k, k_cap) if k_cap is not None else k


def plan_budget(
    fits: Mapping[str, PowerLawFit],
    cost_per_sample: Mapping[str, float],
    budget: float,
    fixed_cost: Mapping[str, float] | None = None,
    k_cap: int | None = None,
) -> pl.DataFrame:
    """Models ranked by predicted coverage at the k the budget buys.

    Rows: budget, rank, model, k, cost, coverage, lo, hi (bootstrap band of the fit),
    p_best (share of paired bootstrap refits in which this model has the highest coverage),
    extrapolated (k beyond the fitted range). Models that cannot afford one sample get k = 0
    and coverage 0 and rank last.
    """
    missing = [m for m in fits if m not in cost_per_sample]
    if missing:
        raise ValueError(f"no cost per sample for model(s) {missing}")
    fixed_cost = fixed_cost or {}
    models = list(fits)
    ks = {
        m: affordable_k(budget, cost_per_sample[m], fixed_cost.get(m, 0.0), k_cap) for m in models
    }
    rows, boot = [], []
    for m in models:
        fit, k = fits[m], ks[m]
        if k == 0:
            coverage, lo, hi, draws = 0.0, 0.0, 0.0, np.zeros(fit.a_boot.size)
        else:
            coverage = float(fit.predict([k])[0])
            draws = (
                power_law_coverage(fit.a_boot, fit.b_boot, k) if fit.a_boot.size else np.empty(0)
            )
            lo, hi = fit.band([k]) if fit.a_boot.size else (np.array([np.nan]), np.array([np.nan]))
            lo, hi = float(lo[0]), float(hi[0])
        boot.append(draws)
        rows.append(
            {
                "budget": float(budget),
                "model": m,
                "k": k,
                "cost": fixed_cost.get(m, 0.0) + k * cost_per_sample[m] if k else 0.0,
                "coverage": coverage,
                "lo": lo,
                "hi": hi,
                "extrapolated": k > fit.k_max,
            }
        )
    p_best = _probability_best(boot)
    for row, p in zip(rows, p_best, strict=True):
        row["p_best"] = p
    rows.sort(key=lambda r: (-r["coverage"], r["cost"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return pl.DataFrame(rows, schema=_SCHEMA).select(list(_SCHEMA))


def _probability_best(boot: list[np.ndarray]) -> list[float]:
    resamples = min(b.size for b in boot) if boot else 0
    if resamples == 0:
        return [float("nan")] * len(boot)
    table = np.stack([b[:resamples] for b in boot])  # [models, resamples]
    usable = ~np.isnan(table).any(axis=0)
    if not usable.any():
        return [float("nan")] * len(boot)
    winners = np.argmax(table[:, usable], axis=0)
    return list(np.bincount(winners, minlength=len(boot)) / usable.sum())


def plan_budgets(
    fits: Mapping[str, PowerLawFit],
    cost_per_sample: Mapping[str, float],
    budgets: Sequence[float],
    fixed_cost: Mapping[str, float] | None = None,
    k_cap: int | None = None,
) -> pl.DataFrame:
    """`plan_budget` for each budget, stacked: the frontier of best model and k vs budget."""
    frames = [plan_budget(fits, cost_per_sample, b, fixed_cost, k_cap) for b in budgets]
    return pl.concat(frames) if frames else pl.DataFrame(schema=_SCHEMA)
