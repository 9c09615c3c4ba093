"""The analysis end to end on replayed samples: no model, a tiny released dataset the test writes
in the monkey_business layout, every summary table, figure and `snakemake --report`."""

from __future__ import annotations

import polars as pl
import pytest

from monkeyflow.cli import main
from monkeyflow.data import DatasetSpec, get_dataset

from ..monkey_business import released_rows, tiny_reward_model, tiny_tokenizer, write_released
from .helpers import make_project, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TABLES = [
    "coverage_ci",
    "fits",
    "extrapolation",
    "alignment",
    "cost",
    "cost_to_reach",
    "precision",
    "plan",
]
FIGURES = ["coverage_ci", "scaling", "alignment", "coverage_flops", "precision", "plan"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis")
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=4, subset_seed=0)).problems()
    write_released(folder / "released", "GSM8K_Strong", released_rows(problems, 16, 0.5, seed=1))
    write_released(folder / "released", "GSM8K_Weak", released_rows(problems, 16, 0.25, seed=2))
    tokenizer = tiny_tokenizer(folder / "tokenizer")
    reward = tiny_reward_model(folder / "reward")
    replay = {"backend": "replay", "path": str(folder / "released"), "tokenizer": str(tokenizer)}
    config = {
        "datasets": {"gsm8k": {"limit": 4, "subset_seed": 0}},
        "models": {
            "strong": {
                **replay,
                "config": "GSM8K_Strong",
                "parameters": 8_000_000_000,
                "layers": 32,
                "d_model": 4096,
                "price": {"input": 0.2, "output": 0.6},
            },
            # no price, no architecture: its FLOPs and dollars are unknown, not an error
            "weak": {**replay, "config": "GSM8K_Weak"},
        },
        "sampling": {"num_samples": 16, "shard_size": 8},
        "analysis": {
            "resamples": 200,
            "fit": {"resamples": 50},
            "precision": {"draws": 50, "reward_model": str(reward)},
            "plan": {"samples": [1, 10, 100], "flops": [1e12, 1e14], "dollars": [1e-4, 1e-2]},
        },
    }
    make_project(folder, config)
    snakemake(folder)
    return folder


def test_every_table_and_figure_and_then_nothing_to_do(project):
    for name in TABLES:
        assert pl.read_parquet(project / f"results/summary/{name}.parquet").height > 0, name
    for name in FIGURES:
        png = (project / f"results/figures/{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
    assert planned_jobs(project) == {}


def test_replayed_labels_decide_correctness(project):
    verdicts = pl.concat(
        [pl.read_parquet(p) for p in project.glob("results/gsm8k/strong/*/verdicts/*.parquet")]
    )
    assert verdicts.height == 4 * 16
    assert verdicts["detail"].str.starts_with("status from the sample's label").all()
    assert verdicts["extracted"].is_not_null().all()  # answers still extracted, for voting


def test_analysis_tables(project):
    coverage = pl.read_parquet(project / "results/summary/coverage_ci.parquet")
    assert coverage["k"].max() == 16
    assert (
        (coverage["lo"] <= coverage["coverage"]) & (coverage["coverage"] <= coverage["hi"])
    ).all()
    fits = pl.read_parquet(project / "results/summary/fits.parquet")
    assert (
        sorted(fits["model"]) == ["strong", "weak"]
        and (fits["a"] < 0).all()
        and (fits["mae"] < 0.2).all()
    )
    assert fits["a_boot"].list.len().to_list() == [50, 50]
    cost = pl.read_parquet(project / "results/summary/cost.parquet")
    strong, weak = (cost.filter(pl.col("model") == m) for m in ("strong", "weak"))
    assert strong["flops"].is_not_null().all() and strong["dollars"].is_not_null().all()
    assert weak["flops"].is_null().all() and "architecture unknown" in weak["note"][0]
    rules = set(pl.read_parquet(project / "results/summary/precision.parquet")["rule"])
    # replayed samples carry no log-probabilities: only the vote and the reward rules run
    assert rules == {"coverage", "majority_vote", "reward_best_of_n", "reward_weighted_vote"}
    plan = pl.read_parquet(project / "results/summary/plan.parquet")
    assert set(plan["unit"]) == {"samples", "flops", "dollars"}
    assert set(plan.filter(pl.col("unit") == "dollars")["model"]) == {"strong"}


def test_report_holds_every_figure_and_table(project):
    snakemake(project, "--report", "report.html")
    html = (project / "report.html").read_text()
    for name in FIGURES:
        assert f"{name}.png" in html
    for name in ["coverage_ci", "fits", "alignment", "cost_to_reach", "precision", "plan"]:
        assert f"{name}.html" in html
    assert "paper Fig. 5" in html and "paper Table 1" in html


def test_plan_command(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["plan", "--budget", "4", "64"]) == 0
    out = capsys.readouterr().out
    assert "strong" in out and "weak" in out
    assert main(["plan", "--budget", "0.01", "--unit", "dollars", "--dataset", "math"]) == 2
