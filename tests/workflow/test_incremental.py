"""The acceptance runs of the workflow: real Snakemake, the embedded model, tiny configs."""

from __future__ import annotations

import copy

import polars as pl
import pytest

from monkeyflow.config import load_config

from .helpers import make_project, planned_jobs, snakemake, tree_digest, write_config

pytestmark = [pytest.mark.workflow, pytest.mark.model]

TINY = {
    "datasets": {"gsm8k": {"limit": 2, "subset_seed": 0}, "math": {"limit": 2, "subset_seed": 0}},
    "models": {"smol": {"backend": "transformers", "path": "embedded:smollm2-135m"}},
    "sampling": {"num_samples": 4, "shard_size": 2, "max_tokens": 16, "temperature": 0.8},
}


# Every analysis rule reads all runs, so any new shard replans each of them once.
ANALYSIS_JOBS = {
    "coverage_ci": 1,
    "scaling_fit": 1,
    "family_alignment": 1,
    "cost": 1,
    "precision": 1,
    "plan": 1,
}


def shards(folder, kind="samples"):
    pattern = "*.jsonl.zst" if kind == "samples" else "*.parquet"
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob(f"results/*/*/*/{kind}/{pattern}"))
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory, embedded_model):
    folder = make_project(tmp_path_factory.mktemp("project"), TINY, embedded_model)
    snakemake(folder)
    return folder


def test_first_run_makes_summary_and_figure_and_then_nothing_to_do(project):
    passk = pl.read_parquet(project / "results/summary/passk.parquet")
    assert sorted(passk["dataset"].unique()) == ["gsm8k", "math"]
    assert sorted(passk["k"].unique()) == [1, 2, 4]
    assert passk["pass_at_k"].is_between(0, 1).all()
    png = (project / "results/figures/coverage.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert len(shards(project)) == 4 and len(shards(project, "verdicts")) == 4
    for exp in load_config(TINY):
        counts = pl.read_parquet(project / exp.folder / "counts.parquet")
        assert counts.height == 2 and (counts["n"] + counts["n_error"] == 4).all()
    assert planned_jobs(project) == {}


def test_same_config_in_a_fresh_folder_gives_identical_shards(project, tmp_path, embedded_model):
    other = make_project(tmp_path / "other", TINY, embedded_model)
    snakemake(other, "--until", "sample_shard")
    assert shards(other) == shards(project)


def test_raising_num_samples_runs_only_new_shards(project):
    before = shards(project)
    bigger = copy.deepcopy(TINY)
    bigger["sampling"]["num_samples"] = 8
    write_config(project, bigger)
    assert planned_jobs(project) == {
        "sample_shard": 4,
        "verify_shard": 4,
        "aggregate": 2,
        "passk": 1,
        "plot_coverage": 1,
        "all": 1,
        **ANALYSIS_JOBS,
    }
    snakemake(project)
    after = shards(project)
    assert len(after) == 8
    assert {k: after[k] for k in before} == before
    assert sorted(pl.read_parquet(project / "results/summary/passk.parquet")["k"].unique()) == [
        1,
        2,
        4,
        8,
    ]
    assert planned_jobs(project) == {}


def test_adding_a_model_plans_only_its_jobs(project):
    config = copy.deepcopy(TINY)
    config["sampling"]["num_samples"] = 8
    config["models"]["smol-copy"] = {
        "backend": "transformers",
        "path": "embedded:smollm2-135m",
        "dtype": "float32",
    }
    write_config(project, config)
    try:
        assert planned_jobs(project) == {
            "describe_run": 2,
            "sample_shard": 8,
            "verify_shard": 8,
            "aggregate": 2,
            "passk": 1,
            "plot_coverage": 1,
            "all": 1,
            **ANALYSIS_JOBS,
        }
    finally:
        config["models"].pop("smol-copy")
        write_config(project, config)


def test_changing_temperature_makes_a_new_run_and_keeps_the_old(project):
    config = copy.deepcopy(TINY)
    config["sampling"]["num_samples"] = 8
    write_config(project, config)
    old_runs = {e.folder for e in load_config(config)}
    before = tree_digest(project / "results")
    config["sampling"]["temperature"] = 0.3
    config["sampling"]["num_samples"] = 2
    write_config(project, config)
    new_runs = {e.folder for e in load_config(config)}
    assert not new_runs & old_runs
    snakemake(project)
    after = tree_digest(project / "results")
    for path, digest in before.items():
        if any(path.startswith(run[len("results/") :]) for run in old_runs):
            assert after[path] == digest, path
    for run in new_runs:
        assert (project / run / "counts.parquet").exists()
