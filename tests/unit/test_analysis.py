"""The analyses (monkeyflow.analysis): compute and draw on in-memory runs, no paths; the runner
that reads the files, writes every table and figure, and checks what an analysis declares."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from monkeyflow.analysis import (
    ANALYSES,
    Analysis,
    RunData,
    Runs,
    alignment,
    cost,
    coverage_ci,
    curve_ks,
    passk,
    plan,
    precision,
    run_analysis,
    scaling,
)
from monkeyflow.analysis.runner import read_architecture, write_html_table
from monkeyflow.config import analysis_settings
from monkeyflow.io import write_jsonl, write_parquet
from monkeyflow.metrics.cost import ModelShape
from monkeyflow.plots.style import Order
from monkeyflow.registry import PluginError
from monkeyflow.stages import VERDICT_SCHEMA

PNG = b"\x89PNG\r\n\x1a\n"
SPEC = {"parameters": 1_000_000, "layers": 2, "d_model": 64, "price": {"input": 1.0, "output": 2.0}}


def settings(**analysis):
    return analysis_settings({"analysis": analysis})


def toy_run(model, rate, problems=5, samples=8, seed=0, tokens=True, logprobs=True, dataset="toy"):
    """A synthetic run in memory: counts, samples and verdicts of `problems` x `samples`."""
    rng = np.random.default_rng(seed)
    sample_rows, verdict_rows = [], []
    for p in range(problems):
        pid = f"{dataset}-{p:05d}"
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
    counts = verdicts.group_by("problem_id").agg(
        n=pl.len().cast(pl.Int64),
        c=(pl.col("status") == "correct").sum().cast(pl.Int64),
        c_strict=(pl.col("status") == "correct").sum().cast(pl.Int64),
    )
    return RunData(
        dataset=dataset,
        model=model,
        run=f"run-{model}",
        spec=SPEC,
        ks=(1, 2, 4, 8),
        counts=counts,
        samples=pl.DataFrame(sample_rows),
        verdicts=verdicts,
        architecture={},
    )


def write_run(folder, run: RunData) -> dict:
    """The run's files (counts, one sample shard, one verdict shard) and its run entry."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "samples.jsonl.zst", run.samples.to_dicts())
    write_parquet(folder / "verdicts.parquet", run.verdicts)
    write_parquet(folder / "counts.parquet", run.counts)
    return {
        **run.labels,
        "counts": str(folder / "counts.parquet"),
        "samples": [str(folder / "samples.jsonl.zst")],
        "verdicts": [str(folder / "verdicts.parquet")],
        "problems": None,
        "manifest": None,
        "spec": dict(run.spec),
        "ks": list(run.ks),
    }


@pytest.fixture
def runs():
    return Runs((toy_run("big", 0.9, seed=1), toy_run("small", 0.5, seed=2)))


def test_settings_have_every_default():
    s = settings(fit={"k_max": 8})
    assert s["fit"] == {"k_min": 1, "k_max": 8, "resamples": 200, "extrapolate_to": None}
    assert s["ci_level"] == 0.95 and s["precision"]["reward_model"] is None
    assert analysis_settings({})["plan"]["samples"] == [1, 10, 100, 1000]


def test_curve_ks():
    assert curve_ks(8, 24) == [1, 2, 3, 4, 5, 6, 7, 8]
    ks = curve_ks(10_000, 24)
    assert ks[0] == 1 and ks[-1] == 10_000 and len(ks) <= 25 and ks == sorted(set(ks))


def test_coverage_ci_warns_about_problems_short_of_samples(runs):
    short = runs[1].counts.with_columns(
        n=pl.when(pl.col("problem_id") == "toy-00002").then(4).otherwise(pl.col("n")),
        c=pl.when(pl.col("problem_id") == "toy-00002")
        .then(pl.min_horizontal("c", 4))
        .otherwise(pl.col("c")),
    )
    runs = Runs((runs[0], replace(runs[1], counts=short)))
    with pytest.warns(UserWarning, match=r"toy-00002 \(n=4\)"):
        table = coverage_ci.compute(runs, settings(resamples=100))["coverage_ci"]
    assert table.filter(pl.col("model") == "small")["k"].max() == 4
    assert table.filter(pl.col("model") == "big")["k"].max() == 8
    assert ((table["lo"] <= table["coverage"]) & (table["coverage"] <= table["hi"])).all()


def test_coverage_ci_ignores_the_order_of_the_counts(runs):
    shuffled = Runs(tuple(replace(r, counts=r.counts.reverse()) for r in runs))
    s = settings(resamples=50)
    assert coverage_ci.compute(shuffled, s)["coverage_ci"].equals(
        coverage_ci.compute(runs, s)["coverage_ci"]
    )


def test_scaling_fits_round_trip_and_no_fit_note(runs):
    zero = runs[1].counts.with_columns(c=pl.lit(0, pl.Int64))
    runs = Runs((runs[0], replace(runs[1], counts=zero)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = scaling.compute(runs, settings(fit={"resamples": 20, "extrapolate_to": 100}))
    fits = tables["fits"]
    big, small = fits.row(0, named=True), fits.row(1, named=True)
    assert big["a"] < 0 and big["extrapolate_to"] == 100
    assert big["lo"] <= big["coverage_at_extrapolate"] <= big["hi"]
    assert small["a"] is None and small["note"].startswith("no fit")
    loaded = scaling.fits_of(fits)
    assert list(loaded) == [("toy", "big")] and loaded[("toy", "big")].a_boot.size == 20
    assert loaded[("toy", "big")].predict([1])[0] == pytest.approx(np.exp(big["a"]))
    curve = tables["extrapolation"]
    assert curve["k"].max() == pytest.approx(100) and curve["extrapolated"].any()


def test_alignment_per_dataset(runs):
    table = coverage_ci.compute(runs, settings(resamples=10))["coverage_ci"]
    aligned = alignment.compute(Runs(tables={"coverage_ci": table}), settings())["alignment"]
    big, small = aligned.row(0, named=True), aligned.row(1, named=True)
    assert aligned["dataset"].to_list() == ["toy", "toy"] and big["anchor"] == small["anchor"]
    assert big["k_anchor"] == 1.0 and small["k_anchor"] > 1.0  # the best pass@1 is the anchor


def test_model_shape_from_spec_or_architecture():
    assert cost.model_shape_for({"parameters": 10, "layers": 2, "d_model": 4}, None)[
        0
    ] == ModelShape(10, 2, 4)
    arch = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "vocab_size": 100,
        "num_attention_heads": 4,
        "tie_word_embeddings": True,
    }
    shape, _ = cost.model_shape_for({}, arch)
    assert (shape.layers, shape.d_model) == (2, 64) and shape.parameters > 100 * 64
    assert cost.model_shape_for({"parameters": 5}, arch)[0].parameters == 5
    shape, why = cost.model_shape_for({}, {})
    assert shape is None and "parameters, layers and d_model" in why


def test_architecture_read_from_the_manifest(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"hidden_size": 64}))
    manifest = {"path": str(folder), "kind": "local", "weights": str(folder)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "model.json").write_text(json.dumps(manifest))  # as model_manifest writes it
    assert read_architecture(folder) == read_architecture(tmp_path / "model.json")
    assert read_architecture(folder) == {"hidden_size": 64}
    assert read_architecture(None) == {}
    assert read_architecture(tmp_path / "missing.json") == {}
    assert "cannot read the architecture" in capsys.readouterr().err


def test_cost_tables_and_unknown_costs(runs):
    blind = toy_run("blind", 0.7, seed=3, tokens=False)
    tables = cost.compute(Runs((*runs, blind)), settings(cost={"targets": [0.3]}))
    table, reach = tables["cost"], tables["cost_to_reach"]
    big = table.filter(pl.col("model") == "big")
    assert big["flops"].is_not_null().all() and np.all(np.diff(big["flops"].to_numpy()) > 0)
    # FLOPs at k = fixed + k * per-sample, per problem, times the problems
    k8 = big.filter(pl.col("k") == 8).row(0, named=True)
    assert k8["flops"] == pytest.approx(5 * (k8["flops_fixed"] + 8 * k8["flops_per_sample"]))
    assert table.filter(pl.col("model") == "blind")["note"][0].startswith("token counts unknown")
    assert set(reach["model"]) == {"big", "small", "blind"}
    assert reach.filter(pl.col("model") == "blind")["flops"].is_null().all()
    assert reach["relative_flops"].min() == pytest.approx(1.0)


def test_precision_rules_follow_the_columns_present(runs):
    table = precision.compute(runs, settings(precision={"draws": 20}))["precision"]
    assert set(table["rule"]) == {
        "coverage",
        "majority_vote",
        "logprob_best_of_n",
        "logprob_weighted_vote",
    }
    assert (table["success"] <= 1).all()
    ceiling = table.filter(pl.col("rule") == "coverage").sort("k")["success"].to_numpy()
    vote = table.filter(pl.col("rule") == "majority_vote").sort("k")["success"].to_numpy()
    assert np.all(vote <= ceiling[: len(vote)] + 1e-9)  # the ceiling bounds every rule
    no_lp = toy_run("nolp", 0.5, logprobs=False)
    frame = precision.selection_frame(no_lp.verdicts, no_lp.samples)
    assert frame.columns == ["problem_id", "correct", "extracted"]


def test_plan_from_the_fits_and_cost_tables(runs):
    s = settings(fit={"resamples": 20}, plan={"samples": [2, 20], "flops": [1e9], "dollars": []})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = {**scaling.compute(runs, s), **cost.compute(runs, s)}
    table = plan.compute(Runs(tables=tables), s)["plan"]
    assert set(table["unit"]) == {"samples", "flops"}
    top = table.filter((pl.col("unit") == "samples") & (pl.col("rank") == 1))
    assert top["model"][0] == "big" and top["k"].to_list() == [2, 20]
    assert ((table["lo"] <= table["coverage"] + 1e-12) | (table["k"] == 0)).all()


def test_passk_table_at_the_runs_ks(runs):
    table = passk.compute(runs, {})["passk"]
    assert table.columns == [
        "dataset",
        "model",
        "run",
        "k",
        "pass_at_k",
        "pass_at_k_strict",
        "problems",
        "problems_total",
        "errors_excluded",
    ]
    assert table["k"].to_list() == [1, 2, 4, 8] * 2 and (table["problems"] == 5).all()


def all_tables(runs, s):
    """Every analysis's tables, computed in memory in the workflow's order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = {**passk.compute(runs, s), **coverage_ci.compute(runs, s)}
        tables |= scaling.compute(runs, s) | cost.compute(runs, s) | precision.compute(runs, s)
        tables |= alignment.compute(Runs(tables=tables), s) | plan.compute(Runs(tables=tables), s)
    return tables


def test_every_analysis_draws_from_in_memory_tables():
    runs = Runs(
        (
            toy_run("big", 0.9, seed=1, dataset="gsm8k"),
            toy_run("small", 0.5, seed=2, dataset="gsm8k"),
            toy_run("big", 0.6, seed=3, dataset="math"),
        )
    )
    s = settings(resamples=20, fit={"resamples": 10}, precision={"draws": 10})
    tables = all_tables(runs, s)
    order = Order.of([r.labels for r in runs])
    panels = {  # rows x dataset columns
        "passk": 2,
        "coverage_ci": 2,
        "scaling_fit": 2,
        "cost": 2,
        "family_alignment": 4,
        "precision": 4,
        "plan": 6,
    }
    for name, count in panels.items():
        analysis = ANALYSES.get(name)
        fig = analysis.draw(tables, {k: s[k] for k in analysis.settings}, order)
        assert isinstance(fig, Figure), name
        axes = [ax for ax in fig.axes if ax.get_title()]
        assert len(axes) == count, name
        assert axes[0].get_title().startswith("gsm8k") and axes[1].get_title().startswith("math")


# -- the runner ----------------------------------------------------------------------------------
def outputs_of(analysis: Analysis, folder) -> dict[str, str]:
    out = {t: str(folder / f"{t}.parquet") for t in analysis.tables}
    out |= {f"{t}_html": str(folder / f"{t}.html") for t in analysis.html}
    if analysis.figure:
        out["figure"] = str(folder / f"{analysis.figure}.png")
    return out


def test_runner_writes_every_file_from_the_runs_on_disk(runs, tmp_path):
    entries = [write_run(tmp_path / r.model, r) for r in runs]
    s = settings(resamples=30, fit={"resamples": 10}, precision={"draws": 10})
    expected = all_tables(runs, s)
    out = tmp_path / "out"
    order = ["passk", "coverage_ci", "scaling_fit", "cost", "precision", "family_alignment", "plan"]
    for name in order:
        analysis = ANALYSES.get(name)
        inputs = {t: str(out / f"{t}.parquet") for t in analysis.reads_tables}
        outputs = outputs_of(analysis, out)
        if analysis.figure_rule:
            outputs.pop("figure")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tables = run_analysis(name, entries, s, inputs, outputs)
        for table, frame in tables.items():
            on_disk = pl.read_parquet(out / f"{table}.parquet")
            assert on_disk.equals(frame) and frame.equals(expected[table]), table
        for table in analysis.html:
            assert "<table>" in (out / f"{table}.html").read_text()
        if "figure" in outputs:
            png = (out / f"{analysis.figure}.png").read_bytes()
            assert png[:8] == PNG and len(png) > 10_000, name
    assert "Coverage with 95% bootstrap intervals" in (out / "coverage_ci.html").read_text()
    assert not (out / "observed.parquet").exists()  # figure data of scaling_fit, not a table
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file behind


def test_runner_draws_a_figure_rule_from_the_written_table(runs, tmp_path):
    entries = [write_run(tmp_path / r.model, r) for r in runs]
    run_analysis("passk", entries, {}, {}, {"passk": tmp_path / "passk.parquet"})
    assert not (tmp_path / "coverage.png").exists()
    before = (tmp_path / "passk.parquet").stat().st_mtime_ns
    # the plot_coverage rule: the table is an input, only the figure is written
    labels = [{k: e[k] for k in ("dataset", "model", "run")} for e in entries]
    run_analysis(
        "passk", labels, {}, {"passk": tmp_path / "passk.parquet"}, {"figure": tmp_path / "c.png"}
    )
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    assert (tmp_path / "passk.parquet").stat().st_mtime_ns == before


def recording_analysis(seen, **overrides):
    def compute(runs, s):
        seen["settings"] = dict(s)
        seen["runs"] = list(runs)
        return {"echo": pl.DataFrame({"dataset": [r.dataset for r in runs]})}

    fields = {
        "name": "echo",
        "compute": compute,
        "tables": ("echo",),
        "settings": ("seed",),
        "reads": ("counts",),
    }
    return Analysis(**(fields | overrides))


def test_runner_passes_only_the_declared_settings_and_inputs(runs, tmp_path):
    entries = [write_run(tmp_path / r.model, r) for r in runs]
    seen = {}
    run_analysis(
        recording_analysis(seen), entries, settings(), {}, {"echo": tmp_path / "e.parquet"}
    )
    assert seen["settings"] == {"seed": 0}  # nothing else: a change elsewhere cannot matter
    first = seen["runs"][0]
    assert first.counts.height == 5 and first.samples is None and first.verdicts is None
    with pytest.raises(ValueError, match=r"uses the settings \['seed'\]"):
        run_analysis(recording_analysis({}), entries, {}, {}, {"echo": tmp_path / "e.parquet"})


def test_runner_refuses_what_an_analysis_does_not_declare(runs, tmp_path):
    entries = [write_run(tmp_path / r.model, r) for r in runs]
    out = {"echo": tmp_path / "e.parquet"}
    with pytest.raises(ValueError, match=r"writes no \['figure'\]"):
        run_analysis(recording_analysis({}), entries, settings(), {}, out | {"figure": "x.png"})
    wrong = recording_analysis({}, compute=lambda runs, s: {"other": pl.DataFrame()})
    with pytest.raises(ValueError, match=r"computed the tables \['other'\] but declares"):
        run_analysis(wrong, entries, settings(), {}, out)
    no_counts = [{k: v for k, v in e.items() if k != "counts"} for e in entries]
    with pytest.raises(ValueError, match="reads 'counts'"):
        run_analysis(recording_analysis({}), no_counts, settings(), {}, out)
    with pytest.raises(ValueError, match=r"reads the tables \['fits', 'cost'\]"):
        run_analysis("plan", entries, settings(), {}, {"plan": tmp_path / "p.parquet"})
    assert not (tmp_path / "e.parquet").exists() and not (tmp_path / "p.parquet").exists()


def test_an_analysis_declaration_is_checked():
    with pytest.raises(PluginError, match="reads"):
        recording_analysis({}, reads=("count",))
    with pytest.raises(PluginError, match="renders tables it does not write"):
        recording_analysis({}, html={"other": "T"})
    with pytest.raises(PluginError, match="both `draw` and `figure`"):
        recording_analysis({}, figure="echo")
    with pytest.raises(PluginError, match="`figure_data` is for a figure"):
        recording_analysis({}, figure_data=("points",))


def test_a_new_analysis_is_one_module_and_one_line(runs, tmp_path, monkeypatch):
    module = tmp_path / "my_analysis.py"
    module.write_text(
        "import polars as pl\n"
        "from monkeyflow.analysis import Analysis\n"
        "def compute(runs, settings):\n"
        "    rows = [{**r.labels, 'problems': r.counts.height} for r in runs]\n"
        "    return {'problem_counts': pl.DataFrame(rows)}\n"
        "ANALYSIS = Analysis(name='problem_counts', compute=compute, tables=('problem_counts',))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ANALYSES, "_lazy", dict(ANALYSES._lazy))
    monkeypatch.setattr(ANALYSES, "_items", dict(ANALYSES._items))
    ANALYSES.add("problem_counts", "my_analysis:ANALYSIS")  # the one line
    assert "problem_counts" in ANALYSES.names()
    entries = [write_run(tmp_path / r.model, r) for r in runs]
    out = tmp_path / "problem_counts.parquet"
    run_analysis("problem_counts", entries, settings(), {}, {"problem_counts": out})
    assert pl.read_parquet(out)["problems"].to_list() == [5, 5]
    ANALYSES.add("misnamed", "my_analysis:ANALYSIS")
    with pytest.raises(PluginError, match="calls itself 'problem_counts'"):
        ANALYSES.get("misnamed")


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
    write_html_table(frame, tmp_path / "t.html", "T")
    text = (tmp_path / "t.html").read_text()
    assert "&lt;b&gt;" in text and "0.3333" in text and "boot" not in text and "–" in text


def test_declarations_import_no_heavy_library():
    """Snakemake imports every declaration to parse the workflow: polars, matplotlib and scipy
    at the top of an analysis module would cost every `snakemake` call about a second."""
    code = (
        "import sys\n"
        "from monkeyflow.analysis import ANALYSES\n"
        "for name in ANALYSES.names():\n"
        "    ANALYSES.get(name)\n"
        "print(sorted({'polars', 'matplotlib', 'scipy'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", "import them inside compute and draw instead"
