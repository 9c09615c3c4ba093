"""plan: which model and k maximise predicted coverage for each configured budget per problem,
from the scaling fits and the unit costs (the fits and cost tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from monkeyflow.analysis.base import Analysis, Runs, stack
from monkeyflow.analysis.scaling import fits_of

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.metrics.scaling import PowerLawFit
    from monkeyflow.plots.style import Order

# Budget units, in the order the planner figure stacks them.
UNITS = ("samples", "flops", "dollars")
PLAN_SCHEMA = {
    "dataset": str,
    "unit": str,
    "budget": float,
    "rank": int,
    "model": str,
    "k": int,
    "cost": float,
    "coverage": float,
    "lo": float,
    "hi": float,
    "p_best": float,
    "extrapolated": bool,
}
Costs = Mapping[str, Mapping[tuple[str, str], tuple[float, float]]]


def unit_costs(table: pl.DataFrame) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    """unit -> (dataset, model) -> (cost per sample, fixed cost), per problem, from the cost table.
    Samples cost 1 each; FLOPs and dollars only where the cost table knows them."""
    table = table.unique(["dataset", "model"], keep="first", maintain_order=True)
    out: dict[str, dict[tuple[str, str], tuple[float, float]]] = {u: {} for u in UNITS}
    for row in table.iter_rows(named=True):
        key = (row["dataset"], row["model"])
        out["samples"][key] = (1.0, 0.0)
        if row["flops_per_sample"] is not None:
            out["flops"][key] = (row["flops_per_sample"], row["flops_fixed"] or 0.0)
        if row["dollars_per_sample"] is not None:
            out["dollars"][key] = (row["dollars_per_sample"], 0.0)
    return out


def plan(
    fits: Mapping[tuple[str, str], PowerLawFit],
    costs: Costs,
    budgets: Mapping[str, Sequence[float]],
    dataset: str | None = None,
) -> pl.DataFrame:
    """For every dataset, unit and budget (per problem): the models ranked by the coverage their
    fit predicts at the largest k the budget buys, with the bootstrap band and p_best."""
    import polars as pl

    from monkeyflow.metrics.planner import plan_budgets

    frames = []
    datasets = sorted({d for d, _ in fits} if dataset is None else {dataset})
    for ds in datasets:
        for unit, values in budgets.items():
            priced = {m: costs.get(unit, {}).get((ds, m)) for d, m in fits if d == ds}
            priced = {m: v for m, v in priced.items() if v is not None}
            if not values or not priced:
                continue
            frame = plan_budgets(
                {m: fits[(ds, m)] for m in priced},
                {m: v[0] for m, v in priced.items()},
                list(values),
                {m: v[1] for m, v in priced.items()},
            )
            frames.append(frame.with_columns(dataset=pl.lit(ds), unit=pl.lit(unit)))
    return stack(frames, PLAN_SCHEMA)


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """The planner over the `plan` budgets (samples, FLOPs and dollars per problem)."""
    fits, costs = fits_of(runs.tables["fits"]), unit_costs(runs.tables["cost"])
    return {"plan": plan(fits, costs, dict(settings["plan"]))}


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    """Predicted coverage over a dense range spanning each unit's configured budgets."""
    from monkeyflow.plots.analysis import plan_figure

    budgets = {u: v for u, v in settings["plan"].items() if v}
    dense = {u: np.geomspace(min(v), max(v), 40).tolist() for u, v in budgets.items()}
    curve = plan(fits_of(tables["fits"]), unit_costs(tables["cost"]), dense)
    return plan_figure(curve, order)


ANALYSIS = Analysis(
    name="plan",
    compute=compute,
    draw=draw,
    tables=("plan",),
    figure="plan",
    reads=(),
    reads_tables=("fits", "cost"),
    settings=("plan",),
    html={"plan": "Budget planner: best model and k per budget (per problem)"},
    category="Planner",
)
