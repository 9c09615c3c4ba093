"""The figures: coverage, scaling fits, family alignment, coverage vs FLOPs, precision, planner.

Each function takes the tables the analyses write (frames with dataset, model and run columns;
a frame without them is one panel) and an `Order` (`plots.style`), and returns a matplotlib
Figure: datasets in columns in the order's order, one colour per model, one legend below the
panels. A dataset the order knows but a table lacks keeps its column, with a note saying why it
is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from monkeyflow.analysis.plan import UNITS
from monkeyflow.plots.style import (
    PALETTE,
    Order,
    coverage_axis,
    figure_legend,
    new_figure,
    panel_note,
    part,
    styled,
    with_labels,
)

# An empty panel: no counts for the dataset, or every verdict an infrastructure error (n = 0).
NO_SAMPLES = "no judged samples"
RULE_LABELS = {
    "coverage": "Coverage (oracle)",
    "majority_vote": "Majority vote",
    "logprob_best_of_n": "Best-of-N (log-prob)",
    "logprob_weighted_vote": "Log-prob weighted vote",
    "reward_best_of_n": "Reward model best-of-N",
    "reward_weighted_vote": "Reward weighted vote",
}
# A rule keeps its colour whichever other rules ran (models own the colours of other figures;
# here the lines are rules, and the legend says so).
RULE_COLORS = {rule: PALETTE[i] for i, rule in enumerate(list(RULE_LABELS)[1:])}
UNIT_LABELS = {
    "samples": "Budget (samples per problem)",
    "flops": "Budget (inference FLOPs per problem)",
    "dollars": "Budget ($ per problem)",
}


def _setup(order: Order | None, *frames: pl.DataFrame) -> tuple[Order, list[pl.DataFrame]]:
    labelled = [with_labels(f) for f in frames]
    order = order or Order()
    for frame in labelled:
        order = order.extend(frame)
    return order, labelled


def _columns(order: Order) -> tuple[str, ...]:
    return order.datasets or ("",)


def _title(ax: Axes, *parts: str) -> None:
    text = ": ".join(p for p in parts if p)
    if text:
        ax.set_title(text)


def coverage_lines(
    ax: Axes,
    frame: pl.DataFrame,
    order: Order,
    x: str = "k",
    y: str = "coverage",
    band: bool = False,
    markers: bool = True,
) -> bool:
    """One line per (model, run) of `frame` (one dataset), with its band (lo, hi) if asked;
    False when there was nothing to draw."""
    drawn = False
    for s in order.series(frame):
        line = part(frame, model=s.model, run=s.run).drop_nulls([x, y]).sort(x)
        if line.is_empty():
            continue
        if band:
            ax.fill_between(line[x], line["lo"], line["hi"], color=s.color, alpha=0.2, linewidth=0)
        ax.plot(
            line[x],
            line[y],
            color=s.color,
            marker=s.marker if markers else None,
            linestyle=s.linestyle,
            label=s.label,
        )
        drawn = True
    return drawn


def _coverage_panels(
    table: pl.DataFrame, order: Order | None, y: str, band: bool, empty: str, ylabel: str
) -> Figure:
    order, (table,) = _setup(order, table)
    datasets = _columns(order)
    fig, grid = new_figure(1, len(datasets))
    for ax, dataset in zip(grid[0], datasets, strict=True):
        drawn = coverage_lines(ax, part(table, dataset=dataset), order, y=y, band=band)
        coverage_axis(ax, ylabel=ylabel)
        _title(ax, dataset)
        if not drawn:
            panel_note(ax, empty)
    figure_legend(fig)
    return fig


@styled
def coverage_ci_figure(table: pl.DataFrame, order: Order | None = None) -> Figure:
    """Coverage vs k with its bootstrap band (the coverage_ci table: k, coverage, lo, hi)."""
    return _coverage_panels(table, order, "coverage", True, NO_SAMPLES, "Coverage (pass@k)")


@styled
def passk_figure(passk: pl.DataFrame, order: Order | None = None, strict: bool = False) -> Figure:
    """Coverage vs k from the passk table (k, pass_at_k, pass_at_k_strict)."""
    column = "pass_at_k_strict" if strict else "pass_at_k"
    ylabel = "Coverage (pass@k), strict" if strict else "Coverage (pass@k)"
    return _coverage_panels(passk, order, column, False, NO_SAMPLES, ylabel)


@styled
def scaling_figure(
    observed: pl.DataFrame,
    predicted: pl.DataFrame,
    order: Order | None = None,
    fits: pl.DataFrame | None = None,
) -> Figure:
    """Power-law fits (paper Fig. 5 analogue): measured coverage as dots, the fit solid over the
    fitted range and dashed beyond it, with the bootstrap band shaded.

    `observed`: k, coverage (measured); `predicted`: k, coverage, lo, hi,
    extrapolated (the extrapolation table); `fits` (the fits table) names runs without a fit."""
    fits = fits if fits is not None else pl.DataFrame(schema={"note": pl.String})
    order, (observed, predicted, fits) = _setup(order, observed, predicted, fits)
    datasets = _columns(order)
    fig, grid = new_figure(1, len(datasets))
    for ax, dataset in zip(grid[0], datasets, strict=True):
        obs_d, pred_d = part(observed, dataset=dataset), part(predicted, dataset=dataset)
        for s in order.series(obs_d):
            obs = part(obs_d, model=s.model, run=s.run).sort("k")
            ax.scatter(
                obs["k"],
                obs["coverage"],
                s=14,
                color=s.color,
                marker=s.marker,
                zorder=3,
                label=s.label,
            )
            pred = part(pred_d, model=s.model, run=s.run).sort("k")
            if pred.is_empty():
                continue
            ax.fill_between(
                pred["k"], pred["lo"], pred["hi"], color=s.color, alpha=0.15, linewidth=0
            )
            inside = pred.filter(~pl.col("extrapolated"))
            beyond = pred.filter(pl.col("extrapolated"))
            if not inside.is_empty() and not beyond.is_empty():
                beyond = pl.concat([inside.tail(1), beyond])  # join the two line styles
            ax.plot(inside["k"], inside["coverage"], color=s.color, linewidth=1.4)
            ax.plot(beyond["k"], beyond["coverage"], color=s.color, linewidth=1.4, linestyle="--")
        coverage_axis(ax)
        _title(ax, dataset)
        unfitted = part(fits, dataset=dataset).filter(pl.col("note").str.starts_with("no fit"))
        if obs_d.is_empty():
            panel_note(ax, NO_SAMPLES)
        elif unfitted.height:
            models = ", ".join(unfitted["model"].unique(maintain_order=True).to_list())
            ax.text(
                0.03,
                0.97,
                f"no fit: {models}",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
                color="0.35",
            )
    figure_legend(fig)
    return fig


@styled
def alignment_figure(
    curves: pl.DataFrame, alignment: pl.DataFrame, order: Order | None = None
) -> Figure:
    """Family alignment (paper Fig. 6): per dataset, the coverage curves (top) and the curves
    shifted to pass (1, anchor) (bottom: coverage against k / k_anchor).

    `curves`: k, coverage (the coverage_ci table); `alignment`: model, anchor, k_anchor (the
    alignment table)."""
    order, (curves, alignment) = _setup(order, curves, alignment)
    datasets = _columns(order)
    fig, grid = new_figure(2, len(datasets))
    for j, dataset in enumerate(datasets):
        raw, aligned = grid[0][j], grid[1][j]
        c_d, a_d = part(curves, dataset=dataset), part(alignment, dataset=dataset)
        shifts = dict(zip(a_d["model"].to_list(), a_d["k_anchor"].to_list(), strict=True))
        shifted = []
        for s in order.series(c_d):
            c = part(c_d, model=s.model, run=s.run).sort("k")
            k_anchor = shifts.get(s.model)
            if k_anchor is not None and np.isfinite(k_anchor):
                shifted.append(c.with_columns(k=pl.col("k") / k_anchor))
        coverage_lines(raw, c_d, order, markers=False)
        coverage_lines(
            aligned, pl.concat(shifted) if shifted else c_d.clear(), order, markers=False
        )
        coverage_axis(raw)
        coverage_axis(aligned, xlabel="Number of samples, shifted (k / k_anchor)")
        if a_d.height:
            anchor = float(a_d["anchor"][0])
            aligned.axhline(anchor, color="0.4", linewidth=0.8, linestyle=":")
            aligned.plot([1.0], [anchor], marker="o", color="black", zorder=4)
        _title(raw, dataset, "coverage")
        _title(aligned, dataset, "aligned at the anchor")
        if c_d.is_empty():
            panel_note(raw, NO_SAMPLES)
            panel_note(aligned, NO_SAMPLES)
    figure_legend(fig)
    return fig


@styled
def coverage_flops_figure(frame: pl.DataFrame, order: Order | None = None) -> Figure:
    """Coverage vs inference FLOPs (paper Fig. 4): frame with flops and coverage (the cost
    table; rows with unknown FLOPs are left out)."""
    known = frame.filter(pl.col("flops").is_not_null())
    order, (known,) = _setup(order, known)
    order = order.extend(with_labels(frame))
    datasets = _columns(order)
    fig, grid = new_figure(1, len(datasets))
    for ax, dataset in zip(grid[0], datasets, strict=True):
        drawn = coverage_lines(ax, part(known, dataset=dataset), order, x="flops")
        coverage_axis(ax, xlabel="Inference FLOPs")
        _title(ax, dataset)
        if not drawn:
            panel_note(ax, "FLOPs unknown")
    figure_legend(fig)
    return fig


@styled
def precision_figure(table: pl.DataFrame, order: Order | None = None) -> Figure:
    """Success rate vs k of the selection rules under the coverage ceiling (paper Fig. 7): one
    row of panels per model (and run), datasets in columns; rule `coverage` is the dashed
    black ceiling. `table`: rule, k, success (the precision table)."""
    order, (table,) = _setup(order, table)
    datasets = _columns(order)
    # Row r of a model holds its r-th run in each dataset (one row per model unless a dataset
    # has several runs of it).
    rows: list[tuple[str, int]] = []
    for model in order.models or ("",):
        most = max(
            (len(order.series(part(table, dataset=d, model=model))) for d in datasets), default=0
        )
        rows += [(model, r) for r in range(max(most, 1))]
    fig, grid = new_figure(len(rows), len(datasets), width=3.6)
    for i, (model, rank) in enumerate(rows):
        for j, dataset in enumerate(datasets):
            ax = grid[i][j]
            cell = part(table, dataset=dataset, model=model)
            series = order.series(cell)
            drawn = False
            if rank < len(series):
                s = series[rank]
                drawn = _draw_rules(ax, part(cell, run=s.run))
                _title(ax, dataset, s.label)
            else:
                _title(ax, dataset, model)
            coverage_axis(ax, ylabel="Success rate")
            if not drawn:
                panel_note(ax, NO_SAMPLES)
    figure_legend(fig)
    return fig


def _draw_rules(ax: Axes, frame: pl.DataFrame) -> bool:
    ceiling = frame.filter(pl.col("rule") == "coverage").sort("k")
    if not ceiling.is_empty():
        ax.plot(
            ceiling["k"],
            ceiling["success"],
            color="black",
            linestyle="--",
            label=RULE_LABELS["coverage"],
        )
    present = frame["rule"].unique(maintain_order=True).to_list()
    for rule in [r for r in RULE_COLORS if r in present] + [
        r for r in present if r not in RULE_LABELS
    ]:
        f = frame.filter(pl.col("rule") == rule).sort("k")
        ax.plot(
            f["k"],
            f["success"],
            marker="o",
            color=RULE_COLORS.get(rule, "0.5"),
            label=RULE_LABELS.get(rule, rule),
        )
    return frame.height > 0


@styled
def plan_figure(
    frame: pl.DataFrame, order: Order | None = None, units: Sequence[str] | None = None
) -> Figure:
    """Predicted coverage vs budget per problem: one row of panels per budget unit, datasets in
    columns, one line per model with the fit's bootstrap band at the k each budget buys.

    `frame`: dataset, unit, model, budget, coverage, lo, hi (planner rows over a dense range of
    budgets); `units`: the rows (default: the units in `frame`)."""
    order, (frame,) = _setup(order, frame)
    present = frame["unit"].unique().to_list() if "unit" in frame.columns else []
    units = (
        list(units)
        if units
        else [u for u in UNITS if u in present] + sorted(u for u in present if u not in UNITS)
    )
    units = units or ["samples"]
    datasets = _columns(order)
    fig, grid = new_figure(len(units), len(datasets))
    for i, unit in enumerate(units):
        for j, dataset in enumerate(datasets):
            ax = grid[i][j]
            cell = part(frame, dataset=dataset, unit=unit) if frame.height else frame
            drawn = coverage_lines(ax, cell, order, x="budget", band=True, markers=False)
            coverage_axis(ax, xlabel=UNIT_LABELS.get(unit, unit), ylabel="Predicted coverage")
            _title(ax, dataset)
            if not drawn:
                panel_note(
                    ax,
                    "no scaling fit to plan with\n(a fit needs two k with coverage > 0)"
                    if unit == "samples"
                    else f"no scaling fit, or no cost in {unit}",
                )
    figure_legend(fig)
    return fig
