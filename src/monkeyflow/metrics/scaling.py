"""Scaling of coverage with samples: log(coverage) ~ a * k**b (paper Eq. 2-3) and family alignment.

The fit is least squares in log space, as in the paper: residual log C(k) - a * k**b over the
fitted ks. Points with coverage 0 have no logarithm and are left out. The fit's quality is the
mean absolute error in coverage units, |exp(a k^b) - C(k)| averaged over the fitted points
(paper Appendix C.2). Uncertainty comes from refitting on problems resampled with replacement.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from monkeyflow.metrics.bootstrap import resample_weights, supported_ks
from monkeyflow.metrics.passk import pass_at_k


@dataclass(frozen=True)
class PowerLawFit:
    """log(coverage) = a * k**b fitted on ks in [k_min, k_max]; mae in coverage units.

    `a_boot`, `b_boot` ([resamples]) are the refits on bootstrap resamples of the problems
    (empty when no bootstrap was run); `level` is the band's confidence level.
    """

    a: float
    b: float
    mae: float
    k_min: int
    k_max: int
    points: int
    a_boot: np.ndarray = field(default_factory=lambda: np.empty(0))
    b_boot: np.ndarray = field(default_factory=lambda: np.empty(0))
    level: float = 0.95

    def predict(self, ks: Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted coverage exp(a k^b) at each k: array [len(ks)]."""
        return power_law_coverage(self.a, self.b, ks)

    def band(self, ks: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Percentile band (lo, hi) of the bootstrap refits' coverage at each k: arrays [len(ks)]."""
        if self.a_boot.size == 0:
            raise ValueError("this fit has no bootstrap refits: fit it with resamples >= 1")
        boot = power_law_coverage(
            self.a_boot[:, None], self.b_boot[:, None], np.asarray(ks, dtype=np.float64)[None, :]
        )
        alpha = (1.0 - self.level) / 2.0
        lo, hi = np.nanquantile(boot, [alpha, 1.0 - alpha], axis=0)
        return lo, hi


def power_law_coverage(
    a: float | np.ndarray, b: float | np.ndarray, ks: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Coverage exp(a * k**b) (broadcasts over a, b and ks)."""
    k = np.asarray(ks, dtype=np.float64)
    return np.exp(np.asarray(a) * k ** np.asarray(b))


def _initial_guess(k: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    # Where 0 < C < 1, log(-log C) = log(-a) + b log k is a straight line: regress it.
    inside = y < 0
    if inside.sum() >= 2 and np.ptp(np.log(k[inside])) > 0:
        slope, intercept = np.polyfit(np.log(k[inside]), np.log(-y[inside]), 1)
        return -float(np.exp(intercept)), float(slope)
    return float(min(y.mean(), -1e-12)), 0.0


def fit_power_law(
    ks: Sequence[float] | np.ndarray,
    coverage: Sequence[float] | np.ndarray,
    k_min: float = 1,
    k_max: float | None = None,
) -> PowerLawFit:
    """Least-squares fit of log(coverage) = a * k**b over k_min <= k <= k_max (no bootstrap)."""
    k_all = np.asarray(ks, dtype=np.float64)
    c_all = np.asarray(coverage, dtype=np.float64)
    if k_all.shape != c_all.shape or k_all.ndim != 1:
        raise ValueError(
            f"ks and coverage must be 1-D of equal length, got {k_all.shape} and {c_all.shape}"
        )
    upper = np.inf if k_max is None else k_max
    use = (k_all >= k_min) & (k_all <= upper) & (c_all > 0) & np.isfinite(c_all)
    if use.sum() < 2:
        raise ValueError(
            f"need at least 2 points with coverage > 0 in k range [{k_min}, {k_max}] to fit, "
            f"got {int(use.sum())}: widen the k range or draw more samples"
        )
    k, cov = k_all[use], np.minimum(c_all[use], 1.0)
    y = np.log(cov)
    a0, b0 = _initial_guess(k, y)
    if np.all(y == 0):
        a, b = 0.0, 0.0  # every problem solved at every k: log C is flat at 0
    else:
        log_k = np.log(k)

        def residual(p: np.ndarray) -> np.ndarray:
            return p[0] * k ** p[1] - y

        def jacobian(p: np.ndarray) -> np.ndarray:
            kb = k ** p[1]
            return np.column_stack([kb, p[0] * kb * log_k])

        result = least_squares(
            residual, x0=[a0, b0], jac=jacobian, method="lm", xtol=1e-14, ftol=1e-14, gtol=1e-14
        )
        a, b = float(result.x[0]), float(result.x[1])
    mae = float(np.mean(np.abs(power_law_coverage(a, b, k) - cov)))
    return PowerLawFit(
        a=a, b=b, mae=mae, k_min=int(k.min()), k_max=int(k.max()), points=int(k.size)
    )


def fit_scaling(
    n: Sequence[int] | np.ndarray,
    c: Sequence[int] | np.ndarray,
    ks: Sequence[int],
    k_min: int = 1,
    k_max: int | None = None,
    level: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
    problem_ids: Sequence[str] | None = None,
) -> PowerLawFit:
    """Fit the power law to coverage from counts n, c ([problems]) and bootstrap it over problems.

    Uses the ks every problem has samples for within [k_min, k_max]; each bootstrap resample of
    the problems is refitted, giving `a_boot`, `b_boot` for extrapolation bands.
    """
    kept = [
        k for k in supported_ks(n, ks, problem_ids) if k >= k_min and (k_max is None or k <= k_max)
    ]
    if len(kept) < 2:
        raise ValueError(
            f"need at least 2 ks in [{k_min}, {k_max}] with samples for every problem, got {kept}"
        )
    per_problem = pass_at_k(n, c, kept)
    fit = fit_power_law(kept, per_problem.mean(axis=0), k_min, k_max)
    if resamples < 1:
        return fit
    weights = resample_weights(per_problem.shape[0], resamples, seed)
    curves = weights @ per_problem / per_problem.shape[0]
    a_boot = np.full(resamples, np.nan)
    b_boot = np.full(resamples, np.nan)
    for r in range(resamples):
        try:
            refit = fit_power_law(kept, curves[r], k_min, k_max)
        except ValueError:
            continue  # a resample of only unsolved problems has no log coverage to fit
        a_boot[r], b_boot[r] = refit.a, refit.b
    return PowerLawFit(
        fit.a, fit.b, fit.mae, fit.k_min, fit.k_max, fit.points, a_boot, b_boot, level
    )


def extrapolate(fit: PowerLawFit, ks: Sequence[float] | np.ndarray) -> pl.DataFrame:
    """Predicted coverage with bootstrap band: rows k, coverage, lo, hi, extrapolated (k > k_max)."""
    k = np.asarray(ks, dtype=np.float64)
    if fit.a_boot.size:
        lo, hi = fit.band(k)
    else:
        lo = hi = np.full(k.size, np.nan)
    return pl.DataFrame(
        {"k": k, "coverage": fit.predict(k), "lo": lo, "hi": hi, "extrapolated": k > fit.k_max}
    )


def crossing_k(
    ks: Sequence[float] | np.ndarray, coverage: Sequence[float] | np.ndarray, target: float
) -> float:
    """The k at which a coverage curve first reaches `target`, interpolated linearly in log k.

    Coverage is made non-decreasing first (running maximum). NaN if the curve never reaches
    the target or already exceeds it at its smallest k (no extrapolation).
    """
    k = np.asarray(ks, dtype=np.float64)
    cov = np.asarray(coverage, dtype=np.float64)
    order = np.argsort(k)
    k, cov = k[order], np.maximum.accumulate(cov[order])
    if k.size == 0 or cov[-1] < target or cov[0] > target:
        return float("nan")
    j = int(np.searchsorted(cov, target, side="left"))
    if j == 0 or cov[j] == target:
        return float(k[j])
    log_k0, log_k1 = np.log(k[j - 1]), np.log(k[j])
    frac = (target - cov[j - 1]) / (cov[j] - cov[j - 1])
    return float(np.exp(log_k0 + frac * (log_k1 - log_k0)))


def family_alignment(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    anchor: float | None = None,
) -> pl.DataFrame:
    """Horizontal log-k shift putting each model's curve through (k=1, anchor) (paper Fig. 6).

    `curves` maps model -> (ks, coverage). The anchor defaults to the highest coverage any model
    reaches at its smallest k (the best pass@1). Rows: model, anchor, k_anchor (where the curve
    reaches the anchor, interpolated in log k), log_k_shift = -ln(k_anchor); plot a model against
    k / k_anchor to align it. NaN (with a warning) where a curve never reaches the anchor.
    """
    if not curves:
        raise ValueError("family_alignment needs at least one curve")
    if anchor is None:
        anchor = max(float(np.asarray(cov)[np.argmin(np.asarray(k))]) for k, cov in curves.values())
    rows = []
    for model, (ks, cov) in curves.items():
        k_anchor = crossing_k(ks, cov, anchor)
        if np.isnan(k_anchor):
            warnings.warn(
                f"model {model!r}: its coverage curve does not pass coverage {anchor:.4g} inside its "
                "k range, so it cannot be aligned; draw more samples or lower the anchor",
                stacklevel=2,
            )
        rows.append(
            {
                "model": model,
                "anchor": anchor,
                "k_anchor": k_anchor,
                "log_k_shift": -np.log(k_anchor),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "model": pl.String,
            "anchor": pl.Float64,
            "k_anchor": pl.Float64,
            "log_k_shift": pl.Float64,
        },
    )
