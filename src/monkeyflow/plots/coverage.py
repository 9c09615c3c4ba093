"""Coverage (pass@k) against the number of samples k: one panel per dataset, one line per model."""

from __future__ import annotations

import os

import polars as pl
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monkeyflow.io import atomic_path


def coverage_figure(passk: pl.DataFrame, strict: bool = False) -> Figure:
    """`passk`: rows of dataset, model, run, k, pass_at_k (and pass_at_k_strict)."""
    column = "pass_at_k_strict" if strict else "pass_at_k"
    datasets = sorted(passk["dataset"].unique().to_list()) or ["(no data)"]
    fig = Figure(figsize=(4.2 * len(datasets), 3.6), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        part = passk.filter(pl.col("dataset") == dataset)
        runs = part.select("model", "run").unique().sort(["model", "run"]).rows()
        several = {m for m, _ in runs if sum(1 for mm, _ in runs if mm == m) > 1}
        for model, run in runs:
            line = part.filter((pl.col("model") == model) & (pl.col("run") == run)).sort("k")
            label = f"{model} ({run[:6]})" if model in several else model
            ax.plot(
                line["k"].to_list(), line[column].to_list(), marker="o", ms=3, lw=1.6, label=label
            )
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylim(0, 1)
        ax.set_xlabel("number of samples k")
        ax.set_ylabel("coverage (pass@k)" + (", strict" if strict else ""))
        ax.set_title(dataset)
        ax.grid(True, which="both", alpha=0.3)
        if runs:
            ax.legend(fontsize=8, loc="upper left")
    return fig


def save_figure(fig: Figure, out: str | os.PathLike, dpi: int = 150) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
