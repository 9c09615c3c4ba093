"""One look for every figure: rc style, colours, panel order, axes helpers, saving.

Every figure puts datasets in columns, left to right in the config's order, and gives each model
the same colour in every figure (`Order`, built once from the runs of the workflow). Figures are
drawn on the Agg canvas (no pyplot, so no global backend or open-figure state) under `STYLE`,
applied only while a figure function runs (`@styled`), and saved with `save_figure`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
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

from monkeyflow.io import atomic_path

# Okabe-Ito: distinguishable for colour-blind readers and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
# A second run of the same model in one dataset (e.g. two temperatures) keeps the model's colour
# and gets the next marker and line style.
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")
STYLE = {
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
PANEL_WIDTH, PANEL_HEIGHT = 3.4, 2.8  # inches per panel
DPI = 150  # saved PNGs
LABELS = ("dataset", "model", "run")


def styled(draw):
    """Decorator: apply `STYLE` while a figure function draws."""
    return mpl.rc_context(STYLE)(draw)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class Series:
    """How one (model, run) line looks: its legend label, colour, marker and line style."""

    model: str
    run: str
    label: str
    color: str
    marker: str
    linestyle: str


@dataclass(frozen=True)
class Order:
    """Datasets, models and runs in the order of the workflow's runs (the config's order).

    Names a figure meets that are not here (a figure drawn outside the workflow) come after the
    known ones, in the order they appear in the figure's frame (`extend`)."""

    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[Mapping[str, Any]]) -> Order:
        """The order of run entries (dicts with dataset, model, run)."""
        entries = list(entries)
        return cls(
            _unique(e["dataset"] for e in entries),
            _unique(e["model"] for e in entries),
            _unique(e["run"] for e in entries),
        )

    def extend(self, frame: pl.DataFrame) -> Order:
        """This order plus the datasets, models and runs of `frame` it does not know yet."""

        def more(known: tuple[str, ...], column: str) -> tuple[str, ...]:
            if column not in frame.columns:
                return known
            return _unique([*known, *frame[column].cast(pl.String).drop_nulls().to_list()])

        return Order(
            more(self.datasets, "dataset"), more(self.models, "model"), more(self.runs, "run")
        )

    def color(self, model: str) -> str:
        """The model's colour: the same in every figure of the workflow."""
        models = self.models if model in self.models else (*self.models, model)
        return PALETTE[models.index(model) % len(PALETTE)]

    def series(self, frame: pl.DataFrame) -> list[Series]:
        """The (model, run) lines of `frame` in model order, then run order, with their looks.

        A model with one run in `frame` is labelled by its name; with several, by name and the
        run key's first six digits (and the runs get distinct markers and line styles)."""
        frame = with_labels(frame)
        pairs = frame.select("model", "run").unique().rows()
        pairs.sort(key=lambda p: (_index(self.models, p[0]), _index(self.runs, p[1]), p))
        out = []
        for model, run in pairs:
            runs = [r for m, r in pairs if m == model]
            rank = runs.index(run)
            label = f"{model} ({run[:6]})" if len(runs) > 1 else model
            out.append(
                Series(
                    model,
                    run,
                    label,
                    self.color(model),
                    MARKERS[rank % len(MARKERS)],
                    LINESTYLES[rank % len(LINESTYLES)],
                )
            )
        return out


def _index(known: Sequence[str], name: str) -> int:
    return known.index(name) if name in known else len(known)


def with_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with dataset, model and run columns ("" where it has none)."""
    missing = {c: pl.lit("") for c in LABELS if c not in frame.columns}
    return frame.with_columns(**missing) if missing else frame


def part(frame: pl.DataFrame, **labels: str) -> pl.DataFrame:
    """The rows of `frame` with the given label values."""
    out = frame
    for column, value in labels.items():
        out = out.filter(pl.col(column) == value)
    return out


def new_figure(
    rows: int, cols: int, width: float = PANEL_WIDTH, height: float = PANEL_HEIGHT
) -> tuple[Figure, list[list[Axes]]]:
    """A figure of rows x cols panels (inches per panel) on the Agg canvas."""
    fig = Figure(figsize=(width * cols, height * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [list(row) for row in fig.subplots(rows, cols, squeeze=False)]


def coverage_axis(
    ax: Axes, xlabel: str = "Number of samples (k)", ylabel: str = "Coverage (pass@k)"
) -> None:
    """Log x, 0-100% y, light grid: the axes of every coverage-like panel."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    ax.grid(True, which="minor", alpha=0.1, linewidth=0.4)
    ax.tick_params(which="both", direction="out")
    log_ticks(ax)


def log_ticks(ax: Axes) -> None:
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
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: compact(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def compact(value: float) -> str:
    """8, 0.01, 2e12, 1.5e12: short tick labels for counts, dollars and FLOPs alike."""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def panel_note(ax: Axes, text: str) -> None:
    """Say inside an empty panel why it is empty (the panel keeps its place in the grid)."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.35",
        fontsize=8,
        wrap=True,
    )
    ax.set_xticks([])


def figure_legend(fig: Figure) -> None:
    """One legend for the whole figure, below the panels: colours mean the same in every panel,
    so it lists each label once."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncols=min(len(handles), 4),
            frameon=False,
        )


@styled
def message_figure(text: str) -> Figure:
    """A figure that only says why there is nothing to draw (keeps every report entry present)."""
    fig = Figure(figsize=(4.2, 1.6), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def save_figure(fig: Figure, out: str | os.PathLike, dpi: int = DPI) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
