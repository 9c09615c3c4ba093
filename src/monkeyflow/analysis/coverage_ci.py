"""coverage_ci: coverage at log-spaced k with a bootstrap interval over problems, per run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monkeyflow.analysis.base import LABELS, Analysis, Runs, curve_ks, labelled, stack

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.plots.style import Order


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """Coverage at about `points` log-spaced k per run, with its `ci_level` percentile bootstrap
    interval from `resamples` resamples of the problems.

    k runs up to the fewest samples any problem of the run has; a warning names the problems
    that lack samples for larger k."""
    from monkeyflow.metrics.bootstrap import COVERAGE_COLUMNS, coverage_table

    frames = []
    for run in runs:
        counts = run.counts.sort("problem_id")
        if counts.height == 0:
            continue
        n = counts["n"].to_numpy()
        table = coverage_table(
            n,
            counts["c"].to_numpy(),
            curve_ks(int(n.max()), settings["points"]),
            settings["ci_level"],
            settings["resamples"],
            settings["seed"],
            problem_ids=counts["problem_id"].to_list(),
        )
        frames.append(labelled(table, run))
    return {"coverage_ci": stack(frames, {**LABELS, **COVERAGE_COLUMNS})}


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import coverage_ci_figure

    return coverage_ci_figure(tables["coverage_ci"], order)


ANALYSIS = Analysis(
    name="coverage_ci",
    compute=compute,
    draw=draw,
    tables=("coverage_ci",),
    figure="coverage_ci",
    settings=("points", "ci_level", "resamples", "seed"),
    html={"coverage_ci": "Coverage with {ci_level:.0%} bootstrap intervals"},
    category="Coverage",
)
