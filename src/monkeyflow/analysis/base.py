"""What an analysis is: a declared unit that computes tables from runs and draws a figure.

An `Analysis` says what it reads (per-run inputs such as counts or sample shards, and tables of
other analyses), which `analysis:` settings it uses, which tables it writes and which figure it
draws. Its `compute(runs, settings)` gets the runs already read into memory (`Runs`) and returns
one DataFrame per table; its `draw(tables, settings, order)` returns a matplotlib Figure. Neither
touches a path: `monkeyflow.analysis.runner` reads the inputs and writes every file.

The workflow imports every declaration each time Snakemake parses it (one rule per analysis), so
this module and the analysis modules import polars, matplotlib, scipy and the metrics inside
compute and draw, not at the top: at the top they would cost every `snakemake` call about a
second (tests/unit/test_analysis.py checks that declarations import none of them). Table schemas
are written with Python types (str, int, float, bool, list[float]), which polars maps to String,
Int64, Float64, Boolean and List(Float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from monkeyflow.registry import PluginError, Registry

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.plots.style import Order
    from monkeyflow.records import Problem

# What a run entry may name, and what the runner makes of it:
#   counts    counts.parquet -> RunData.counts (problem_id, n, c, c_strict, ...)
#   samples   sample shards  -> RunData.samples (problem_id, sample_index and `sample_fields`)
#   verdicts  verdict shards -> RunData.verdicts (the verdict table)
#   problems  problems file  -> RunData.problems
#   manifest  the prepared model's manifest -> RunData.architecture (its config.json)
#   spec      the model's config spec (price, parameters, ...) -> RunData.spec
#   ks        the k values `passk:` asks for this run -> RunData.ks
RUN_INPUTS = ("counts", "samples", "verdicts", "problems", "manifest", "spec", "ks")
# The columns of RunData.samples: problem_id, sample_index and the fields an analysis asks for.
SAMPLE_FIELDS = {
    "problem_id": str,
    "sample_index": int,
    "text": str,
    "prompt_tokens": int,
    "completion_tokens": int,
    "cumulative_logprob": float,
}
LABELS = {"dataset": str, "model": str, "run": str}


@dataclass(frozen=True)
class RunData:
    """One experiment's inputs, read into memory; only what its analysis declared is set."""

    dataset: str
    model: str
    run: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    ks: tuple[int, ...] = ()
    counts: pl.DataFrame | None = None
    samples: pl.DataFrame | None = None
    verdicts: pl.DataFrame | None = None
    problems: tuple[Problem, ...] | None = None
    architecture: Mapping[str, Any] | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {"dataset": self.dataset, "model": self.model, "run": self.run}


@dataclass(frozen=True)
class Runs(Sequence[RunData]):
    """The runs an analysis reads (in the config's order) and the tables of other analyses it
    reads (`tables`: name -> DataFrame)."""

    runs: tuple[RunData, ...] = ()
    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)

    def __iter__(self) -> Iterator[RunData]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index):  # type: ignore[override]
        return self.runs[index]


if TYPE_CHECKING:
    Compute = Callable[[Runs, Mapping[str, Any]], Mapping[str, pl.DataFrame]]
    Draw = Callable[[Mapping[str, pl.DataFrame], Mapping[str, Any], Order], Figure]


@dataclass(frozen=True)
class Analysis:
    """One analysis (one rule of the workflow, named `name`).

    - `reads`: per-run inputs (`RUN_INPUTS`); `reads_tables`: tables of other analyses.
    - `settings`: keys of the config's `analysis:` section it uses; compute and draw get exactly
      these (so a change to any other key does not rerun it).
    - `tables`: the tables `compute` returns, each written as parquet; `html`: table -> title
      (formatted with the settings) of the ones rendered as HTML for the report.
    - `figure`: the figure's name (a PNG), drawn by `draw` from the tables it computed and the
      tables it read; `figure_data`: frames `compute` also returns only for the figure (not
      written); `figure_rule`: when set, a separate rule of that name draws the figure from the
      written tables (the coverage figure keeps its rule, plot_coverage).
    - `sample_fields`: the sample columns it needs beyond problem_id and sample_index (texts
      are large: read them only where they are used).
    - `category`: where the report files the figure and tables.
    """

    name: str
    compute: Compute
    tables: tuple[str, ...]
    draw: Draw | None = None
    figure: str | None = None
    figure_data: tuple[str, ...] = ()
    reads: tuple[str, ...] = ("counts",)
    reads_tables: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    html: Mapping[str, str] = field(default_factory=dict)
    sample_fields: tuple[str, ...] = ("prompt_tokens", "completion_tokens")
    category: str = "Analysis"
    figure_rule: str | None = None

    def __post_init__(self) -> None:
        where = f"analysis {self.name!r}"
        unknown = set(self.reads) - set(RUN_INPUTS)
        if unknown:
            raise PluginError(f"{where} reads {sorted(unknown)}; a run offers {list(RUN_INPUTS)}")
        fields = set(self.sample_fields) - set(SAMPLE_FIELDS)
        if fields:
            raise PluginError(
                f"{where}: no sample field {sorted(fields)}; there are {list(SAMPLE_FIELDS)}"
            )
        if not self.tables:
            raise PluginError(f"{where} writes no table")
        if set(self.html) - set(self.tables):
            raise PluginError(
                f"{where} renders tables it does not write: {sorted(set(self.html) - set(self.tables))}"
            )
        if (self.draw is None) != (self.figure is None):
            raise PluginError(f"{where}: give both `draw` and `figure`, or neither")
        if self.figure_rule and self.figure is None:
            raise PluginError(f"{where}: `figure_rule` without a figure")
        if self.figure_data and (self.figure is None or self.figure_rule):
            raise PluginError(
                f"{where}: `figure_data` is for a figure drawn in the same rule as the tables"
            )


def _check(name: str, obj: object) -> Analysis:
    if not isinstance(obj, Analysis):
        raise PluginError(
            f"analysis {name!r} is a {type(obj).__name__}, not a monkeyflow.analysis.Analysis"
        )
    if obj.name != name:
        raise PluginError(f"analysis registered as {name!r} calls itself {obj.name!r}")
    return obj


# Built-in analyses are added in monkeyflow/analysis/__init__.py, one line each; third-party
# packages register theirs in the entry-point group `monkeyflow.analyses`.
ANALYSES: Registry[Analysis] = Registry("analysis", group="monkeyflow.analyses", check=_check)


# -- helpers shared by the analyses --------------------------------------------------------------
def curve_ks(k_max: int, points: int) -> list[int]:
    """About `points` integers log-spaced from 1 to k_max (both included)."""
    if k_max < 1:
        return []
    ks = np.unique(np.round(np.geomspace(1, k_max, max(points, 2))).astype(int))
    return sorted({*map(int, ks), int(k_max)})


def labelled(frame: pl.DataFrame, run: RunData) -> pl.DataFrame:
    """`frame` with the run's dataset, model and run columns."""
    import polars as pl

    return frame.with_columns(**{k: pl.lit(v) for k, v in run.labels.items()})


def stack(frames: Sequence[pl.DataFrame], schema: Mapping[str, Any]) -> pl.DataFrame:
    """Frames concatenated in `schema`'s column order; an empty table of that schema if none."""
    import polars as pl

    if not frames:
        return pl.DataFrame(schema=dict(schema))
    return pl.concat(frames).select(list(schema))
