"""Analysis figures: coverage, scaling fits, family alignment, coverage vs FLOPs, precision.

Each function takes the frames the metrics modules produce and returns a matplotlib Figure
drawn on the Agg canvas (no pyplot, so no global backend or open-figure state) in a
paper style applied only while it draws; save it with `fig.savefig(path)`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    PercentFormatter,
)

# Okabe-Ito: distinguishable for colour-blind readers and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "legend.frameon": False,
}
RULE_LABELS = {
    "coverage": "Coverage (oracle)",
    "majority_vote": "Majority vote",
    "logprob_best_of_n": "Best-of-N (log-prob)",
    "logprob_weighted_vote": "Log-prob weighted vote",
    "reward_best_of_n": "Reward model best-of-N",
    "reward_weighted_vote": "Reward weighted vote",
}


def _figure(panels: int, width: float = 3.4, height: float = 2.8) -> tuple[Figure, list[Axes]]:
    fig, grid = _grid(1, panels, width, height)
    return fig, grid[0]


def _grid(
    rows: int, cols: int, width: float = 3.4, height: float = 2.8
) -> tuple[Figure, list[list[Axes]]]:
    fig = Figure(figsize=(width * cols, height * rows), dpi=200, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [list(row) for row in fig.subplots(rows, cols, squeeze=False)]


def _coverage_axis(ax: Axes, xlabel: str = "Number of samples (k)") -> None:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Coverage (pass@k)")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    ax.grid(True, which="minor", alpha=0.1, linewidth=0.4)
    ax.tick_params(which="both", direction="out")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _log_ticks(ax)


def _log_ticks(ax: Axes) -> None:
    """Plain tick labels (8, not 2^3 or 8x10^0) on the log x axis; over less than two decades
    matplotlib would label minor ticks in scientific form, so place denser major ticks instead:
    powers of two for counts (samples), 1-2-5 for anything else."""
    lo, hi = ax.get_xlim()
    if lo > 0 and hi / lo < 100:
        if lo >= 0.5 and hi < 1e6:
            ax.xaxis.set_major_locator(LogLocator(base=2))
        else:
            narrow = hi / lo < 10  # under a decade even 1-2-5 gives one tick: space them evenly
            ax.xaxis.set_major_locator(
                MaxNLocator(nbins=4) if narrow else LogLocator(base=10, subs=(1.0, 2.0, 5.0))
            )
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _compact(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _compact(value: float) -> str:
    """8, 0.01, 2e12, 1.5e12: short tick labels for counts, dollars and FLOPs alike."""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _legend(ax: Axes, **kwargs) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8, **kwargs)


def _draw_coverage(ax: Axes, tables: Mapping[str, pl.DataFrame]) -> None:
    for i, (label, table) in enumerate(tables.items()):
        color = PALETTE[i % len(PALETTE)]
        t = table.sort("k")
        ax.fill_between(t["k"], t["lo"], t["hi"], color=color, alpha=0.2, linewidth=0)
        ax.plot(t["k"], t["coverage"], marker="o", color=color, label=label)
    _coverage_axis(ax)
    _legend(ax, loc="lower right")


@mpl.rc_context(_STYLE)
def coverage_figure(tables: Mapping[str, pl.DataFrame], title: str | None = None) -> Figure:
    """Coverage vs k with its bootstrap band, one line per label (frames from `coverage_table`)."""
    fig, (ax,) = _figure(1, width=4.2, height=3.0)
    _draw_coverage(ax, tables)
    if title:
        ax.set_title(title)
    return fig


@mpl.rc_context(_STYLE)
def coverage_panels_figure(panels: Mapping[str, Mapping[str, pl.DataFrame]]) -> Figure:
    """`coverage_figure` side by side: panel title (e.g. dataset) -> label -> coverage table."""
    fig, axes = _figure(max(len(panels), 1), width=3.6, height=3.0)
    for ax, (title, tables) in zip(axes, panels.items(), strict=False):
        _draw_coverage(ax, tables)
        ax.set_title(title)
    return fig


@mpl.rc_context(_STYLE)
def scaling_figure(observed: pl.DataFrame, predicted: pl.DataFrame) -> Figure:
    """Power-law fits per dataset panel and model colour (paper Fig. 5 analogue).

    `observed`: dataset, model, k, coverage (measured). `predicted`: dataset, model, k,
    coverage, lo, hi, extrapolated (from `scaling.extrapolate`); the fit is solid over the
    fitted range and dashed beyond it, with the bootstrap band shaded.
    """
    datasets = observed["dataset"].unique(maintain_order=True).to_list()
    models = observed["model"].unique(maintain_order=True).to_list()
    fig, axes = _figure(len(datasets))
    for ax, dataset in zip(axes, datasets, strict=True):
        for i, model in enumerate(models):
            color = PALETTE[i % len(PALETTE)]
            obs = observed.filter((pl.col("dataset") == dataset) & (pl.col("model") == model)).sort(
                "k"
            )
            pred = predicted.filter(
                (pl.col("dataset") == dataset) & (pl.col("model") == model)
            ).sort("k")
            if obs.is_empty():
                continue
            ax.scatter(obs["k"], obs["coverage"], s=14, color=color, zorder=3, label=model)
            if pred.is_empty():
                continue
            ax.fill_between(pred["k"], pred["lo"], pred["hi"], color=color, alpha=0.15, linewidth=0)
            inside = pred.filter(~pl.col("extrapolated"))
            beyond = pred.filter(pl.col("extrapolated"))
            if not inside.is_empty() and not beyond.is_empty():
                beyond = pl.concat([inside.tail(1), beyond])  # join the two line styles
            ax.plot(inside["k"], inside["coverage"], color=color, linewidth=1.4)
            ax.plot(beyond["k"], beyond["coverage"], color=color, linewidth=1.4, linestyle="--")
        _coverage_axis(ax)
        ax.set_title(dataset)
    _legend(axes[0], loc="lower right")
    return fig


@mpl.rc_context(_STYLE)
def alignment_figure(curves: pl.DataFrame, alignment: pl.DataFrame) -> Figure:
    """Family alignment (paper Fig. 6): raw curves, and curves shifted to pass (1, anchor).

    `curves`: model, k, coverage; `alignment`: model, anchor, k_anchor (from
    `scaling.family_alignment`); the right panel plots coverage against k / k_anchor.
    """
    fig, (raw, aligned) = _figure(2)
    _draw_alignment(raw, aligned, curves, alignment)
    return fig


@mpl.rc_context(_STYLE)
def alignment_panels_figure(curves: pl.DataFrame, alignment: pl.DataFrame) -> Figure:
    """`alignment_figure` with one row of panels per dataset (both frames carry `dataset`)."""
    datasets = curves["dataset"].unique(maintain_order=True).to_list()
    fig, grid = _grid(max(len(datasets), 1), 2)
    for (raw, aligned), dataset in zip(grid, datasets, strict=False):
        _draw_alignment(
            raw,
            aligned,
            curves.filter(pl.col("dataset") == dataset),
            alignment.filter(pl.col("dataset") == dataset),
        )
        raw.set_title(f"{dataset}: coverage")
        aligned.set_title(f"{dataset}: aligned at the anchor")
    return fig


def _draw_alignment(
    raw: Axes, aligned: Axes, curves: pl.DataFrame, alignment: pl.DataFrame
) -> None:
    shifts = dict(zip(alignment["model"].to_list(), alignment["k_anchor"].to_list(), strict=True))
    for i, model in enumerate(curves["model"].unique(maintain_order=True).to_list()):
        color = PALETTE[i % len(PALETTE)]
        c = curves.filter(pl.col("model") == model).sort("k")
        raw.plot(c["k"], c["coverage"], color=color, label=model)
        k_anchor = shifts.get(model)
        if k_anchor is not None and np.isfinite(k_anchor):
            aligned.plot(c["k"].to_numpy() / k_anchor, c["coverage"], color=color, label=model)
    _coverage_axis(raw)
    _coverage_axis(aligned, xlabel="Number of samples, shifted (k / k_anchor)")
    if alignment.height:
        anchor = float(alignment["anchor"][0])
        aligned.axhline(anchor, color="0.4", linewidth=0.8, linestyle=":")
        aligned.plot([1.0], [anchor], marker="o", color="black", zorder=4)
    raw.set_title("Coverage")
    aligned.set_title("Aligned at the anchor")
    _legend(raw, loc="lower right")


@mpl.rc_context(_STYLE)
def coverage_flops_figure(frame: pl.DataFrame) -> Figure:
    """Coverage vs inference FLOPs, one line per model, one panel per dataset (paper Fig. 4).

    `frame`: model, flops, coverage, and optionally dataset.
    """
    if "dataset" not in frame.columns:
        frame = frame.with_columns(dataset=pl.lit(""))
    datasets = frame["dataset"].unique(maintain_order=True).to_list()
    models = frame["model"].unique(maintain_order=True).to_list()
    fig, axes = _figure(len(datasets))
    for ax, dataset in zip(axes, datasets, strict=True):
        for i, model in enumerate(models):
            f = frame.filter((pl.col("dataset") == dataset) & (pl.col("model") == model)).sort(
                "flops"
            )
            if not f.is_empty():
                ax.plot(
                    f["flops"],
                    f["coverage"],
                    marker="o",
                    color=PALETTE[i % len(PALETTE)],
                    label=model,
                )
        _coverage_axis(ax, xlabel="Inference FLOPs")
        if dataset:
            ax.set_title(dataset)
    _legend(axes[0], loc="lower right")
    return fig


@mpl.rc_context(_STYLE)
def precision_figure(frame: pl.DataFrame, title: str | None = None) -> Figure:
    """Success rate vs k of selection rules under the coverage ceiling (paper Fig. 7).

    `frame`: rule, k, success (from `precision.selection_curves`); rule `coverage` is drawn as
    the dashed black ceiling.
    """
    fig, (ax,) = _figure(1, width=4.2, height=3.0)
    _draw_precision(ax, frame)
    if title:
        ax.set_title(title)
    return fig


@mpl.rc_context(_STYLE)
def precision_panels_figure(frames: Mapping[str, pl.DataFrame]) -> Figure:
    """`precision_figure` side by side: panel title (e.g. dataset and model) -> rule curves."""
    fig, axes = _figure(max(len(frames), 1), width=3.8, height=3.0)
    for ax, (title, frame) in zip(axes, frames.items(), strict=False):
        _draw_precision(ax, frame)
        ax.set_title(title)
    return fig


def _draw_precision(ax: Axes, frame: pl.DataFrame) -> None:
    rules = [r for r in frame["rule"].unique(maintain_order=True).to_list() if r != "coverage"]
    ceiling = frame.filter(pl.col("rule") == "coverage").sort("k")
    if not ceiling.is_empty():
        ax.plot(
            ceiling["k"],
            ceiling["success"],
            color="black",
            linestyle="--",
            label=RULE_LABELS["coverage"],
        )
    for i, rule in enumerate(rules):
        f = frame.filter(pl.col("rule") == rule).sort("k")
        ax.plot(
            f["k"],
            f["success"],
            marker="o",
            color=PALETTE[i % len(PALETTE)],
            label=RULE_LABELS.get(rule, rule),
        )
    _coverage_axis(ax)
    ax.set_ylabel("Success rate")
    _legend(ax, loc="best")


UNIT_LABELS = {
    "samples": "Budget (samples per problem)",
    "flops": "Budget (inference FLOPs per problem)",
    "dollars": "Budget ($ per problem)",
}


@mpl.rc_context(_STYLE)
def plan_figure(frame: pl.DataFrame) -> Figure:
    """Predicted coverage vs budget, one panel per budget unit, one line per dataset and model.

    `frame`: unit, label, budget, coverage, lo, hi (from `planner.plan_budgets` rows); the band
    is the fit's bootstrap band at the k each budget buys.
    """
    units = frame["unit"].unique(maintain_order=True).to_list()
    fig, axes = _figure(max(len(units), 1), width=3.6, height=3.0)
    for ax, unit in zip(axes, units, strict=False):
        part = frame.filter(pl.col("unit") == unit)
        for i, label in enumerate(part["label"].unique(maintain_order=True).to_list()):
            color = PALETTE[i % len(PALETTE)]
            f = part.filter(pl.col("label") == label).sort("budget")
            ax.fill_between(f["budget"], f["lo"], f["hi"], color=color, alpha=0.15, linewidth=0)
            ax.plot(f["budget"], f["coverage"], color=color, label=label)
        _coverage_axis(ax, xlabel=UNIT_LABELS.get(unit, unit))
        ax.set_ylabel("Predicted coverage")
        _legend(ax, loc="lower right")
    return fig


@mpl.rc_context(_STYLE)
def message_figure(text: str) -> Figure:
    """A figure that only says why there is nothing to draw (keeps every report entry present)."""
    fig = Figure(figsize=(4.2, 1.6), dpi=200)
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig
