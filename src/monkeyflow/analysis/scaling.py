"""scaling_fit: log(coverage) = a k^b per run (paper Eq. 2-3), extrapolated with a bootstrap band."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from monkeyflow.analysis.base import LABELS, Analysis, Runs, curve_ks, labelled, stack

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.metrics.scaling import PowerLawFit
    from monkeyflow.plots.style import Order

FIT_SCHEMA = {
    **LABELS,
    "a": float,
    "b": float,
    "mae": float,
    "k_min": int,
    "k_max": int,
    "points": int,
    "problems": int,
    "extrapolate_to": int,
    "coverage_at_extrapolate": float,
    "lo": float,
    "hi": float,
    "level": float,
    "note": str,
    "a_boot": list[float],
    "b_boot": list[float],
}
CURVE_SCHEMA = {
    **LABELS,
    "k": float,
    "coverage": float,
    "lo": float,
    "hi": float,
    "extrapolated": bool,
}
OBSERVED_SCHEMA = {**LABELS, "k": int, "coverage": float}


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """`fits`: one row per run (a, b, mean absolute error, coverage at `fit.extrapolate_to` with
    its band, the bootstrap refits as lists; a `note` where no fit exists); `extrapolation`: the
    fitted and extrapolated curve per run; and, for the figure, the measured coverage at the k
    every problem has samples for (`observed`)."""
    import polars as pl

    from monkeyflow.metrics.bootstrap import supported_ks
    from monkeyflow.metrics.passk import pass_at_k
    from monkeyflow.metrics.scaling import extrapolate, fit_scaling

    fit_settings, level = settings["fit"], settings["ci_level"]
    rows, curves, observed = [], [], []
    for run in runs:
        counts = run.counts.sort("problem_id")
        if counts.height == 0:
            continue
        n, c = counts["n"].to_numpy(), counts["c"].to_numpy()
        ids = counts["problem_id"].to_list()
        ks = curve_ks(int(n.max()), settings["points"])
        kept = supported_ks(n, ks, ids)
        if kept:
            coverage = pass_at_k(n, c, kept).mean(axis=0)
            observed.append(labelled(pl.DataFrame({"k": kept, "coverage": coverage}), run))
        try:
            fit = fit_scaling(
                n,
                c,
                ks,
                fit_settings["k_min"],
                fit_settings["k_max"],
                level,
                fit_settings["resamples"],
                settings["seed"],
                ids,
            )
        except ValueError as exc:
            print(f"[scaling] {run.dataset} x {run.model}: no fit: {exc}", file=sys.stderr)
            rows.append(
                {**run.labels, "problems": int(len(n)), "level": level, "note": f"no fit: {exc}"}
            )
            continue
        target = fit_settings["extrapolate_to"] or 10 * fit.k_max
        curve = extrapolate(fit, np.unique(np.geomspace(1, max(target, fit.k_max), 60)))
        curves.append(labelled(curve, run))
        at = extrapolate(fit, [target])
        rows.append(
            {
                **run.labels,
                "a": fit.a,
                "b": fit.b,
                "mae": fit.mae,
                "k_min": fit.k_min,
                "k_max": fit.k_max,
                "points": fit.points,
                "problems": int(len(n)),
                "extrapolate_to": int(target),
                "coverage_at_extrapolate": float(at["coverage"][0]),
                "lo": float(at["lo"][0]),
                "hi": float(at["hi"][0]),
                "level": level,
                "note": "",
                "a_boot": fit.a_boot.tolist(),
                "b_boot": fit.b_boot.tolist(),
            }
        )
    return {
        "fits": pl.DataFrame(rows, schema=FIT_SCHEMA),
        "extrapolation": stack(curves, CURVE_SCHEMA),
        "observed": stack(observed, OBSERVED_SCHEMA),
    }


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import scaling_figure

    return scaling_figure(tables["observed"], tables["extrapolation"], order, tables["fits"])


def fit_from_row(row: Mapping[str, Any]) -> PowerLawFit:
    """A PowerLawFit back from a row of the fits table."""
    from monkeyflow.metrics.scaling import PowerLawFit

    return PowerLawFit(
        a=row["a"],
        b=row["b"],
        mae=row["mae"],
        k_min=row["k_min"],
        k_max=row["k_max"],
        points=row["points"],
        a_boot=np.asarray(row["a_boot"] or [], dtype=np.float64),
        b_boot=np.asarray(row["b_boot"] or [], dtype=np.float64),
        level=row["level"],
    )


def fits_of(table: pl.DataFrame) -> dict[tuple[str, str], PowerLawFit]:
    """(dataset, model) -> fit, from the fits table (runs without a fit left out)."""
    return {
        (row["dataset"], row["model"]): fit_from_row(row)
        for row in table.iter_rows(named=True)
        if row["a"] is not None and np.isfinite(row["a"])
    }


ANALYSIS = Analysis(
    name="scaling_fit",
    compute=compute,
    draw=draw,
    tables=("fits", "extrapolation"),
    figure="scaling",
    figure_data=("observed",),
    settings=("fit", "ci_level", "seed", "points"),
    html={"fits": "Scaling-law fits log(coverage) = a k^b"},
    category="Scaling",
)
