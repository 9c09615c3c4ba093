"""family_alignment: per dataset, the log-k shift putting every model's coverage curve through
(1, anchor) (paper Fig. 6), from the coverage_ci table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monkeyflow.analysis.base import Analysis, Runs, stack

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.plots.style import Order

ALIGNMENT_SCHEMA = {
    "dataset": str,
    "model": str,
    "anchor": float,
    "k_anchor": float,
    "log_k_shift": float,
}


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """Rows dataset, model, anchor (`alignment.anchor`, default the dataset's best pass@1),
    k_anchor (where the model's curve reaches it) and log_k_shift."""
    import polars as pl

    from monkeyflow.metrics.scaling import family_alignment

    table = runs.tables["coverage_ci"]
    frames = []
    for (dataset,), part in table.group_by(["dataset"], maintain_order=True):
        curves = {
            model: (g["k"].to_numpy(), g["coverage"].to_numpy())
            for (model,), g in part.sort("k").group_by(["model"], maintain_order=True)
        }
        aligned = family_alignment(curves, settings["alignment"]["anchor"])
        frames.append(aligned.with_columns(dataset=pl.lit(dataset)))
    return {"alignment": stack(frames, ALIGNMENT_SCHEMA)}


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import alignment_figure

    return alignment_figure(tables["coverage_ci"], tables["alignment"], order)


ANALYSIS = Analysis(
    name="family_alignment",
    compute=compute,
    draw=draw,
    tables=("alignment",),
    figure="alignment",
    reads=(),
    reads_tables=("coverage_ci",),
    settings=("alignment",),
    html={"alignment": "Family alignment: horizontal shift in log k"},
    category="Scaling",
)
