"""The analysis stages over files (monkeyflow.analysis): tables, figures, unknown costs, planner."""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest

from monkeyflow import analysis
from monkeyflow.config import analysis_settings
from monkeyflow.io import write_jsonl, write_parquet
from monkeyflow.metrics.cost import ModelShape
from monkeyflow.stages import VERDICT_SCHEMA

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(folder, model, rate, problems=5, samples=8, seed=0, tokens=True, logprobs=True):
    """Counts, one sample shard and one verdict shard of a synthetic run; returns its runs entry."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sample_rows, verdict_rows = [], []
    for p in range(problems):
        pid = f"toy-{p:05d}"
        for i in range(samples):
            ok = bool(rng.random() < rate * (p + 1) / problems)
            answer = "42" if ok else str(40 + int(rng.integers(2)))
            sample_rows.append(
                {
                    "problem_id": pid,
                    "sample_index": i,
                    "text": f"#### {answer}",
                    "prompt_tokens": 50 + p if tokens else None,
                    "completion_tokens": 10 + i if tokens else None,
                    "cumulative_logprob": float(-rng.random() * 5) if logprobs else None,
                }
            )
            verdict_rows.append(
                {
                    "problem_id": pid,
                    "sample_index": i,
                    "status": "correct" if ok else "incorrect",
                    "extracted": answer,
                    "method": "marker",
                    "detail": "",
                }
            )
    verdicts = pl.DataFrame(verdict_rows, schema=VERDICT_SCHEMA)
    write_jsonl(folder / "samples.jsonl.zst", sample_rows)
    write_parquet(folder / "verdicts.parquet", verdicts)
    counts = verdicts.group_by("problem_id").agg(
        n=pl.len().cast(pl.Int64), c=(pl.col("status") == "correct").sum().cast(pl.Int64)
    )
    write_parquet(folder / "counts.parquet", counts)
    return {
        "dataset": "toy",
        "model": model,
        "run": f"run-{model}",
        "counts": str(folder / "counts.parquet"),
        "samples": [str(folder / "samples.jsonl.zst")],
        "verdicts": [str(folder / "verdicts.parquet")],
        "problems": None,
        "manifest": None,
        "spec": {
            "parameters": 1_000_000,
            "layers": 2,
            "d_model": 64,
            "price": {"input": 1.0, "output": 2.0},
        },
    }


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path / "big", "big", 0.9, seed=1),
        make_run(tmp_path / "small", "small", 0.5, seed=2),
    ]


def test_settings_have_every_default():
    settings = analysis_settings({"analysis": {"fit": {"k_max": 8}}})
    assert settings["fit"] == {"k_min": 1, "k_max": 8, "resamples": 200, "extrapolate_to": None}
    assert settings["ci_level"] == 0.95 and settings["precision"]["reward_model"] is None
    assert analysis_settings({})["plan"]["samples"] == [1, 10, 100, 1000]


def test_curve_ks():
    assert analysis.curve_ks(8, 24) == [1, 2, 3, 4, 5, 6, 7, 8]
    ks = analysis.curve_ks(10_000, 24)
    assert ks[0] == 1 and ks[-1] == 10_000 and len(ks) <= 25 and ks == sorted(set(ks))


def test_coverage_ci_warns_about_problems_short_of_samples(runs, tmp_path):
    short = pl.read_parquet(runs[1]["counts"]).with_columns(
        n=pl.when(pl.col("problem_id") == "toy-00002").then(4).otherwise(pl.col("n")),
        c=pl.when(pl.col("problem_id") == "toy-00002")
        .then(pl.min_horizontal("c", 4))
        .otherwise(pl.col("c")),
    )
    write_parquet(runs[1]["counts"], short)
    with pytest.warns(UserWarning, match=r"toy-00002 \(n=4\)"):
        table = analysis.coverage_ci(
            runs, tmp_path / "c.parquet", tmp_path / "c.html", tmp_path / "c.png", resamples=100
        )
    assert table.filter(pl.col("model") == "small")["k"].max() == 4
    assert table.filter(pl.col("model") == "big")["k"].max() == 8
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    assert "<table>" in (tmp_path / "c.html").read_text()


def test_scaling_fits_round_trip_and_no_fit_note(runs, tmp_path):
    zero = pl.read_parquet(runs[1]["counts"]).with_columns(c=pl.lit(0, pl.Int64))
    write_parquet(runs[1]["counts"], zero)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = analysis.scaling_fits(
            runs,
            tmp_path / "f.parquet",
            tmp_path / "e.parquet",
            None,
            tmp_path / "s.png",
            resamples=20,
            extrapolate_to=100,
        )
    big, small = fits.row(0, named=True), fits.row(1, named=True)
    assert (
        big["a"] < 0
        and big["extrapolate_to"] == 100
        and big["lo"] <= big["coverage_at_extrapolate"] <= big["hi"]
    )
    assert small["a"] is None and small["note"].startswith("no fit")
    loaded = analysis.load_fits(tmp_path / "f.parquet")
    assert list(loaded) == [("toy", "big")] and loaded[("toy", "big")].a_boot.size == 20
    assert loaded[("toy", "big")].predict([1])[0] == pytest.approx(np.exp(big["a"]))
    curve = pl.read_parquet(tmp_path / "e.parquet")
    assert curve["k"].max() == pytest.approx(100) and curve["extrapolated"].any()


def test_alignment_per_dataset(runs, tmp_path):
    analysis.coverage_ci(runs, tmp_path / "c.parquet", resamples=10)
    table = analysis.alignment(
        tmp_path / "c.parquet", tmp_path / "a.parquet", None, tmp_path / "a.png"
    )
    big, small = table.row(0, named=True), table.row(1, named=True)
    assert table["dataset"].to_list() == ["toy", "toy"] and big["anchor"] == small["anchor"]
    assert big["k_anchor"] == 1.0 and small["k_anchor"] > 1.0  # the best pass@1 is the anchor
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG


def test_model_shape_from_spec_config_json_or_unknown(tmp_path):
    assert analysis.model_shape_for({"parameters": 10, "layers": 2, "d_model": 4}, None)[
        0
    ] == ModelShape(10, 2, 4)
    folder = tmp_path / "model"
    folder.mkdir()
    config = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "vocab_size": 100,
        "num_attention_heads": 4,
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "manifest.json").write_text(
        json.dumps({"path": str(folder), "kind": "local", "weights": str(folder)})
    )
    shape, _ = analysis.model_shape_for({}, folder)
    assert (shape.layers, shape.d_model) == (2, 64) and shape.parameters > 100 * 64
    assert analysis.model_shape_for({"parameters": 5}, folder)[0].parameters == 5
    (tmp_path / "model.json").write_text(
        (folder / "manifest.json").read_text()
    )  # as model_manifest writes it
    assert analysis.model_shape_for({}, tmp_path / "model.json")[0] == shape
    shape, why = analysis.model_shape_for({}, None)
    assert shape is None and "parameters, layers and d_model" in why


def test_cost_tables_and_unknown_costs(runs, tmp_path):
    unknown = make_run(tmp_path / "blind", "blind", 0.7, seed=3, tokens=False)
    table, reach = analysis.cost(
        runs + [unknown],
        tmp_path / "cost.parquet",
        tmp_path / "reach.parquet",
        tmp_path / "reach.html",
        tmp_path / "flops.png",
        targets=[0.3],
    )
    big = table.filter(pl.col("model") == "big")
    assert big["flops"].is_not_null().all() and np.all(np.diff(big["flops"].to_numpy()) > 0)
    # FLOPs at k = fixed + k * per-sample, per problem, times the problems
    k8 = big.filter(pl.col("k") == 8).row(0, named=True)
    assert k8["flops"] == pytest.approx(5 * (k8["flops_fixed"] + 8 * k8["flops_per_sample"]))
    assert table.filter(pl.col("model") == "blind")["note"][0].startswith("token counts unknown")
    assert set(reach["model"]) == {"big", "small", "blind"}
    assert reach.filter(pl.col("model") == "blind")["flops"].is_null().all()
    assert reach["relative_flops"].min() == pytest.approx(1.0)
    assert (tmp_path / "flops.png").read_bytes()[:8] == PNG


def test_precision_rules_follow_the_columns_present(runs, tmp_path):
    table = analysis.precision(runs, tmp_path / "p.parquet", None, tmp_path / "p.png", draws=20)
    assert set(table["rule"]) == {
        "coverage",
        "majority_vote",
        "logprob_best_of_n",
        "logprob_weighted_vote",
    }
    assert (table["success"] <= 1).all()
    ceiling = table.filter(pl.col("rule") == "coverage").sort("k")["success"].to_numpy()
    vote = table.filter(pl.col("rule") == "majority_vote").sort("k")["success"].to_numpy()
    assert (
        np.all(vote <= ceiling[: len(vote)] + 1e-9) or vote.size == 0
    )  # the ceiling bounds every rule
    no_lp = make_run(tmp_path / "nolp", "nolp", 0.5, logprobs=False)
    frame = analysis.selection_frame(no_lp["verdicts"], no_lp["samples"])
    assert frame.columns == ["problem_id", "correct", "extracted"]


def test_plan_from_the_stage_tables(runs, tmp_path):
    analysis.scaling_fits(runs, tmp_path / "f.parquet", tmp_path / "e.parquet", resamples=20)
    analysis.cost(runs, tmp_path / "cost.parquet", tmp_path / "reach.parquet")
    table = analysis.plan_stage(
        tmp_path / "f.parquet",
        tmp_path / "cost.parquet",
        tmp_path / "plan.parquet",
        tmp_path / "plan.html",
        tmp_path / "plan.png",
        {"samples": [2, 20], "flops": [1e9], "dollars": []},
    )
    assert set(table["unit"]) == {"samples", "flops"}
    top = table.filter((pl.col("unit") == "samples") & (pl.col("rank") == 1))
    assert top["model"][0] == "big" and top["k"].to_list() == [2, 20]
    assert ((table["lo"] <= table["coverage"] + 1e-12) | (table["k"] == 0)).all()
    assert (tmp_path / "plan.png").read_bytes()[:8] == PNG


def test_html_table_escapes_and_formats(tmp_path):
    frame = pl.DataFrame(
        {"model": ["<b>"], "value": [1 / 3], "missing": [None], "boot": [[1.0]]},
        schema={
            "model": pl.String,
            "value": pl.Float64,
            "missing": pl.Float64,
            "boot": pl.List(pl.Float64),
        },
    )
    analysis.write_html_table(frame, tmp_path / "t.html", "T")
    text = (tmp_path / "t.html").read_text()
    assert "&lt;b&gt;" in text and "0.3333" in text and "boot" not in text and "–" in text
