"""Analysis figures build from the metrics' frames and save as PNG."""

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from monkeyflow.metrics.bootstrap import coverage_table
from monkeyflow.metrics.precision import selection_curves
from monkeyflow.metrics.scaling import extrapolate, family_alignment, fit_scaling
from monkeyflow.plots.analysis import (
    alignment_figure,
    coverage_figure,
    coverage_flops_figure,
    precision_figure,
    scaling_figure,
)

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
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_coverage_and_flops_figures(counts, tmp_path):
    tables = {m: coverage_table(n, c, KS, resamples=200) for m, (n, c) in counts.items()}
    save(coverage_figure(tables, title="GSM8K"), tmp_path, "coverage")
    flops = pl.concat(
        [
            t.select("k", "coverage").with_columns(
                model=pl.lit(m),
                dataset=pl.lit("GSM8K"),
                flops=pl.col("k") * 1e12 * (1 + 3 * (m == "large")),
            )
            for m, t in tables.items()
        ]
    )
    save(coverage_flops_figure(flops), tmp_path, "flops")
    save(coverage_flops_figure(flops.drop("dataset")), tmp_path, "flops_single")


def test_scaling_and_alignment_figures(counts, tmp_path):
    observed, predicted, curves = [], [], {}
    for dataset in ["GSM8K", "MATH"]:
        for model, (n, c) in counts.items():
            table = coverage_table(n, c, KS, resamples=100)
            observed.append(
                table.select("k", "coverage").with_columns(
                    dataset=pl.lit(dataset), model=pl.lit(model)
                )
            )
            fit = fit_scaling(n, c, KS, resamples=50)
            ks = np.unique(np.geomspace(1, 1000, 30).round())
            predicted.append(
                extrapolate(fit, ks).with_columns(dataset=pl.lit(dataset), model=pl.lit(model))
            )
            curves[model] = (table["k"].to_numpy(), table["coverage"].to_numpy())
    save(
        scaling_figure(pl.concat(observed, how="diagonal"), pl.concat(predicted, how="diagonal")),
        tmp_path,
        "scaling",
    )
    alignment = family_alignment(curves)
    frame = pl.concat(
        [pl.DataFrame({"model": m, "k": k, "coverage": c}) for m, (k, c) in curves.items()]
    )
    save(alignment_figure(frame, alignment), tmp_path, "alignment")


def test_precision_figure(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {"problem_id": f"p{p}", "extracted": str(rng.integers(0, 4)), "mean_logprob": -rng.random()}
        for p in range(5)
        for _ in range(16)
    ]
    frame = pl.DataFrame(rows).with_columns(correct=pl.col("extracted") == "0")
    curves = selection_curves(frame, [1, 2, 4, 8, 16], draws=100)
    save(precision_figure(curves, title="MATH"), tmp_path, "precision")
