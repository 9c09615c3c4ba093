"""The figures build from the metrics' frames and save as PNG, in one style: datasets in the
order's columns, one colour per model in every figure."""

import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from monkeyflow.metrics.bootstrap import coverage_table
from monkeyflow.metrics.precision import selection_curves
from monkeyflow.metrics.scaling import extrapolate, family_alignment, fit_scaling
from monkeyflow.plots.analysis import (
    alignment_figure,
    coverage_ci_figure,
    coverage_flops_figure,
    passk_figure,
    plan_figure,
    precision_figure,
    scaling_figure,
)
from monkeyflow.plots.style import PALETTE, Order, save_figure

KS = [1, 2, 4, 8, 16, 32, 64]


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    out = {}
    for model, a in [("small", 0.2), ("large", 0.6)]:
        p = rng.beta(a, 2.0, size=40)
        out[model] = (np.full(40, 64), rng.binomial(64, p))
    return out


def save(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    save_figure(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def coverage_frame(counts, datasets=("GSM8K",)):
    return pl.concat(
        [
            coverage_table(n, c, KS, resamples=100).with_columns(
                dataset=pl.lit(d), model=pl.lit(m), run=pl.lit(f"{m}-run")
            )
            for d in datasets
            for m, (n, c) in counts.items()
        ]
    )


def line_colors(ax):
    return {line.get_label(): to_hex(line.get_color()).upper() for line in ax.get_lines()}


def test_coverage_and_flops_figures(counts, tmp_path):
    table = coverage_frame(counts)
    save(coverage_ci_figure(table), tmp_path, "coverage")
    save(coverage_ci_figure(table.drop("dataset", "run")), tmp_path, "coverage_single")
    flops = table.with_columns(flops=pl.col("k") * 1e12 * (1 + 3 * (pl.col("model") == "large")))
    save(coverage_flops_figure(flops), tmp_path, "flops")
    save(coverage_flops_figure(flops.drop("dataset")), tmp_path, "flops_single")


def test_scaling_and_alignment_figures(counts, tmp_path):
    observed = coverage_frame(counts, ("GSM8K", "MATH"))
    predicted, curves = [], {}
    for dataset in ["GSM8K", "MATH"]:
        for model, (n, c) in counts.items():
            fit = fit_scaling(n, c, KS, resamples=50)
            ks = np.unique(np.geomspace(1, 1000, 30).round())
            predicted.append(
                extrapolate(fit, ks).with_columns(
                    dataset=pl.lit(dataset), model=pl.lit(model), run=pl.lit(f"{model}-run")
                )
            )
    save(scaling_figure(observed, pl.concat(predicted, how="diagonal")), tmp_path, "scaling")
    gsm8k = observed.filter(pl.col("dataset") == "GSM8K")
    for (model,), g in gsm8k.group_by(["model"], maintain_order=True):
        curves[model] = (g["k"].to_numpy(), g["coverage"].to_numpy())
    aligned = family_alignment(curves)
    save(alignment_figure(gsm8k.drop("dataset"), aligned), tmp_path, "alignment")


def test_precision_figure(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {"problem_id": f"p{p}", "extracted": str(rng.integers(0, 4)), "mean_logprob": -rng.random()}
        for p in range(5)
        for _ in range(16)
    ]
    frame = pl.DataFrame(rows).with_columns(correct=pl.col("extracted") == "0")
    curves = selection_curves(frame, [1, 2, 4, 8, 16], draws=100)
    save(precision_figure(curves.with_columns(dataset=pl.lit("MATH"))), tmp_path, "precision")


def test_one_order_and_one_colour_per_model_in_every_figure(counts):
    """Datasets are columns in the order's order; a model keeps its colour in every figure,
    even one where another model is missing."""
    order = Order(datasets=("math", "gsm8k"), models=("small", "large"))
    table = coverage_frame(counts, ("gsm8k", "math"))
    passk = table.rename({"coverage": "pass_at_k"})
    only_large = table.filter(pl.col("model") == "large").with_columns(flops=pl.col("k") * 1e12)
    figures = [
        coverage_ci_figure(table, order),
        passk_figure(passk, order),
        coverage_flops_figure(only_large, order),
    ]
    for fig in figures:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["math", "gsm8k"]
        colors = line_colors(fig.axes[0])
        assert colors["large"] == PALETTE[1]
        if "small" in colors:
            assert colors["small"] == PALETTE[0]
        assert [t.get_text() for t in fig.legends[0].get_texts()] == list(colors)


def test_a_missing_dataset_keeps_its_column_with_a_note(counts):
    order = Order(datasets=("gsm8k", "math", "humaneval"))
    fig = coverage_ci_figure(coverage_frame(counts, ("gsm8k", "humaneval")), order)
    assert [ax.get_title() for ax in fig.axes] == ["gsm8k", "math", "humaneval"]
    assert [t.get_text() for t in fig.axes[1].texts] == ["no judged samples"]
    fig = plan_figure(pl.DataFrame(schema={"dataset": pl.String, "unit": pl.String}), order)
    assert len(fig.axes) == 3 and all(ax.texts for ax in fig.axes)


def test_several_runs_of_a_model_share_its_colour_and_differ_in_style(counts):
    table = coverage_frame({"small": counts["small"]})
    second = table.with_columns(run=pl.lit("abcdef123456"), coverage=pl.col("coverage") / 2)
    fig = coverage_ci_figure(pl.concat([table, second]))
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["small (small-)", "small (abcdef)"]
    assert lines[0].get_color() == lines[1].get_color()
    assert lines[0].get_marker() != lines[1].get_marker()
