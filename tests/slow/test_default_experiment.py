"""The default config as a user runs it: plain `snakemake` in a fresh project folder, the model
obtained and converted by the prepare_model rule."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
import yaml

from ..workflow.helpers import REPO, planned_jobs, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.workflow, pytest.mark.model]


def test_default_config_runs_end_to_end_then_nothing_to_do(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, timeout=1800)
    passk = pl.read_parquet(tmp_path / "results/summary/passk.parquet")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert sorted(passk["dataset"].unique()) == sorted(config["datasets"])
    assert passk["k"].max() == config["sampling"]["num_samples"]
    assert (tmp_path / "results/figures/coverage.png").stat().st_size > 10_000
    for figure in ("coverage_ci", "scaling", "alignment", "coverage_flops", "precision", "plan"):
        png = (tmp_path / f"results/figures/{figure}.png").read_bytes()
        # plan.png is a short text figure when no run has a fit (a 135M model may solve nothing)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 3_000, figure
    manifest = json.loads(next((tmp_path / "models").glob("*/manifest.json")).read_text())
    assert manifest["kind"] == "embedded" and manifest["gguf_sha256"]
    assert planned_jobs(tmp_path) == {}
    snakemake(tmp_path, "--report", "report.html")
    assert "scaling.png" in (tmp_path / "report.html").read_text()
