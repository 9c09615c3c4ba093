"""passk: mean pass@k over problems at the configured k, per run, and the coverage figure
(results/summary/passk.parquet, results/figures/coverage.png)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monkeyflow.analysis.base import LABELS, Analysis, Runs

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.plots.style import Order

PASSK_SCHEMA = {
    **LABELS,
    "k": int,
    "pass_at_k": float,
    "pass_at_k_strict": float,
    "problems": int,
    "problems_total": int,
    "errors_excluded": int,
}


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """One row per (run, k) for the run's `ks`: pass@k and strict pass@k averaged over the
    problems with at least k samples, and how many those are."""
    import polars as pl

    from monkeyflow.stages import passk_rows

    rows: list[dict[str, Any]] = []
    for run in runs:
        rows.extend(passk_rows(run.counts, list(run.ks), run.labels))
    return {"passk": pl.DataFrame(rows, schema=PASSK_SCHEMA)}


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import passk_figure

    return passk_figure(tables["passk"], order)


ANALYSIS = Analysis(
    name="passk",
    compute=compute,
    draw=draw,
    tables=("passk",),
    figure="coverage",
    reads=("counts", "ks"),
    category="Coverage",
    figure_rule="plot_coverage",
)
