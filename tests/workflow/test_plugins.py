"""Third-party plugins and re-verification without re-sampling, on the real workflow.

A toy package (tests/plugins/toy_plugin.py) registers a dataset, a verifier and a backend only
through entry points; it is put on PYTHONPATH with its metadata, as `pip install` would, and the
workflow runs on it without any edit to monkeyflow. Its backend needs no model, so these runs
take seconds."""

from __future__ import annotations

import copy
import re

import polars as pl
import pytest

from .helpers import make_project, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

CONFIG = {
    "datasets": {"toy-arith": {}, "math": {"limit": 2}},
    "models": {
        "echo": {
            "backend": "toy-echo",
            "path": "none",
            "every": 2,
            "template": "Final Answer: The final answer is {answer}. I hope it is correct.",
        }
    },
    "sampling": {"num_samples": 4, "shard_size": 2},
    "toy-exact": {"case_sensitive": True},
}
ANALYSIS = {
    "coverage_ci": 1,
    "scaling_fit": 1,
    "family_alignment": 1,
    "cost": 1,
    "precision": 1,
    "plan": 1,
}
DOWNSTREAM = {"passk": 1, "plot_coverage": 1, "all": 1, **ANALYSIS}


@pytest.fixture(scope="module")
def project(tmp_path_factory, plugin_env):
    folder = make_project(tmp_path_factory.mktemp("plugins"), CONFIG)
    snakemake(folder, env=plugin_env)
    return folder


def test_a_plugin_package_runs_the_whole_workflow(project, plugin_env):
    passk = pl.read_parquet(project / "results/summary/passk.parquet")
    toy = {
        r["k"]: r["pass_at_k"]
        for r in passk.filter(pl.col("dataset") == "toy-arith").iter_rows(named=True)
    }
    # samples 0 and 2 of every problem are right: n=4, c=2
    assert toy[1] == pytest.approx(0.5) and toy[2] == pytest.approx(1 - 1 / 6) and toy[4] == 1.0
    math = {
        r["k"]: r["pass_at_k"]
        for r in passk.filter(pl.col("dataset") == "math").iter_rows(named=True)
    }
    assert math[1] == pytest.approx(0.5)
    assert planned_jobs(project, env=plugin_env) == {}


def test_runtime_options_plan_nothing(project, plugin_env):
    config = copy.deepcopy(CONFIG)
    config["toy-exact"]["workers"] = 3
    config["models"]["echo"]["speed"] = 5
    config["math"] = {"isolation": "process"}
    write_config(project, config)
    try:
        assert planned_jobs(project, env=plugin_env) == {}
    finally:
        write_config(project, CONFIG)


def test_a_verifier_version_bump_reverifies_without_resampling(project, plugin_env):
    bumped = {**plugin_env, "TOY_VERIFIER_VERSION": "2"}
    assert planned_jobs(project, env=bumped) == {"verify_shard": 2, "aggregate": 1, **DOWNSTREAM}
    before = (project / "results").glob("toy-arith/echo/*/samples/*.jsonl.zst")
    before = {p: p.read_bytes() for p in before}
    snakemake(project, env=bumped)
    logs = [p.read_text() for p in (project / "logs/verify_shard/toy-arith").rglob("shard-*.log")]
    assert len(logs) == 2 and all("toy-exact 2:" in log for log in logs)
    # The cache holds all 16 distinct verdicts of version 1: none of them may be reused.
    checked = [int(re.search(r"(\d+) checked", log).group(1)) for log in logs]
    assert sum(checked) >= 16, logs
    assert {p: p.read_bytes() for p in before} == before
    assert planned_jobs(project, env=bumped) == {}
    assert planned_jobs(project, env=plugin_env) == {
        "verify_shard": 2,
        "aggregate": 1,
        **DOWNSTREAM,
    }
    snakemake(project, env=plugin_env)  # back to version 1 for the tests below


def test_verifier_options_rerun_exactly_that_verifiers_jobs(project, plugin_env):
    config = copy.deepcopy(CONFIG)
    config["math"] = {"timeout_s": 7}
    write_config(project, config)
    try:
        assert planned_jobs(project, env=plugin_env) == {
            "verify_shard": 2,
            "aggregate": 1,
            **DOWNSTREAM,
        }
        config["datasets"]["toy-arith"]["verify"] = {"case_sensitive": False}
        write_config(project, config)
        assert planned_jobs(project, env=plugin_env) == {
            "verify_shard": 4,
            "aggregate": 2,
            **DOWNSTREAM,
        }
    finally:
        write_config(project, CONFIG)


def test_plugin_options_are_validated_and_name_the_key(project, plugin_env):
    config = copy.deepcopy(CONFIG)
    config["models"]["echo"]["every"] = 0
    write_config(project, config)
    try:
        result = snakemake(project, "-n", check=False, env=plugin_env)
        assert result.returncode != 0
        assert "config error at models.echo.every" in result.stdout + result.stderr
    finally:
        write_config(project, CONFIG)
