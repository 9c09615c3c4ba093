"""The workflow through `snakemake --profile profiles/slurm` on a real local SLURM cluster.

Test-sized overrides on the command line (1 CPU per job, small memory, fast status checks);
everything else is the profile as a user gets it, partition from MONKEYFLOW_SLURM_PARTITION and
the between-workflow cache from SNAKEMAKE_OUTPUT_CACHE. Submissions are counted from SLURM's own
job records (`squeue --states=all`, which keeps finished jobs for MinJobAge = 300 s).
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from monkeyflow.config import load_config

from ..workflow.helpers import REPO, SNAKEMAKE, make_project, snakemake, write_config

pytestmark = [pytest.mark.cluster, pytest.mark.model, pytest.mark.usefixtures("slurm_cluster")]

CONFIG = {
    "datasets": {"gsm8k": {"limit": 2, "subset_seed": 0}},
    "models": {"smol": {"backend": "transformers", "path": "embedded:smollm2-135m"}},
    "sampling": {"num_samples": 4, "shard_size": 2, "max_tokens": 8, "temperature": 0.8},
}
TEST_SIZED = [
    "--cores",
    "2",
    # 1 thread per job, so the 2-CPU node runs two at once; the local run below uses the same
    # (torch's CPU floats depend on the thread count)
    "--set-threads",
    "sample_shard=1",
    "verify_shard=1",
    "--set-resources",
    "sample_shard:mem_mb=3000",
    "sample_shard:runtime=10",
    "verify_shard:mem_mb=1000",
    "verify_shard:runtime=10",
    "prepare_model:mem_mb=4000",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
]


def last_slurm_job() -> int:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    return max((int(x.split("_")[0]) for x in out.split()), default=0)


def slurm_jobs(folder: Path, after: int) -> list[tuple[str, str]]:
    """(what, state) of every SLURM job submitted from `folder` with an id above `after`; `what`
    is the rule and shard (`sample_shard:0`), or `group:<id>` for a group job."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%k|%Z|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        jobid, comment, workdir, state = line.split("|")
        if int(jobid.split("_")[0]) <= after or Path(workdir).resolve() != folder.resolve():
            continue
        if comment.startswith("rule_sample_shard_wildcards_"):
            what = "sample_shard:" + comment.rsplit("_", 1)[1]
        elif m := re.match(r"rule_([a-z_]+?)_wildcards_", comment):
            what = m.group(1)
        elif comment.startswith("rule_verify"):  # a group job: the group's id, then its members
            what = "group:verify"
        else:
            what = comment.removeprefix("rule_")
        jobs.append((what, state))
    return sorted(jobs)


def run_slurm(folder: Path, cache: Path, *args: str) -> tuple[list[tuple[str, str]], float, str]:
    """Run the workflow under SLURM; returns the SLURM jobs it submitted, seconds, output."""
    before = last_slurm_job()
    env = {
        **os.environ,
        "MONKEYFLOW_SLURM_PARTITION": "debug",
        "SNAKEMAKE_OUTPUT_CACHE": str(cache),
    }
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--profile",
        str(REPO / "profiles" / "slurm"),
        *TEST_SIZED,
        *args,
    ]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    elapsed = time.monotonic() - started
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{text[-8000:]}")
    return slurm_jobs(folder, before), elapsed, text


def shards(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob("results/*/*/*/samples/*.jsonl.zst"))
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("output-cache")


@pytest.fixture(scope="module")
def slurm_project(tmp_path_factory, embedded_model, cache_dir):
    folder = make_project(tmp_path_factory.mktemp("slurm-project"), CONFIG, embedded_model)
    jobs, elapsed, _ = run_slurm(folder, cache_dir)
    print(f"first SLURM run: {elapsed:.0f} s, SLURM jobs {jobs}")
    return folder, jobs


def test_the_default_workflow_runs_under_slurm_and_matches_a_local_run(
    slurm_project, tmp_path, embedded_model
):
    folder, jobs = slurm_project
    assert all(state == "COMPLETED" for _, state in jobs), jobs
    submitted = Counter(what for what, _ in jobs)
    # sampling and verification went to SLURM (the two verify jobs as one group job); the
    # aggregation rules ran locally
    assert {
        k: v for k, v in submitted.items() if k.startswith(("sample_shard", "group:", "verify"))
    } == {"sample_shard:0": 1, "sample_shard:1": 1, "group:verify": 1}
    assert not {"aggregate", "passk", "plot_coverage", "describe_run", "model_manifest"} & set(
        submitted
    )
    assert (folder / "results/summary/passk.parquet").exists() and (
        folder / "results/figures/coverage.png"
    ).exists()
    local = make_project(tmp_path / "local", CONFIG, embedded_model)
    snakemake(local, "--until", "sample_shard", "--set-threads", "sample_shard=1")
    assert len(shards(folder)) == 2
    assert shards(local) == shards(folder)


def test_raising_num_samples_submits_only_the_new_shards(slurm_project, cache_dir):
    folder, _ = slurm_project
    bigger = copy.deepcopy(CONFIG)
    bigger["sampling"]["num_samples"] = 8
    write_config(folder, bigger)
    before = shards(folder)
    (exp,) = load_config(bigger)
    jobs, elapsed, text = run_slurm(
        folder, cache_dir, f"{exp.folder}/counts.parquet"
    )  # through aggregation
    print(f"raised num_samples under SLURM: {elapsed:.0f} s, SLURM jobs {jobs}")
    submitted = Counter(what for what, _ in jobs)
    new_shard_jobs = {
        k: v for k, v in submitted.items() if k.startswith(("sample_shard", "group:", "verify"))
    }
    assert new_shard_jobs == {"sample_shard:2": 1, "sample_shard:3": 1, "group:verify": 1}, jobs
    assert not {"prepare_problems", "prepare_model", "describe_run"} & set(submitted)
    after = shards(folder)
    assert len(after) == 4 and {k: after[k] for k in before} == before
    # aggregation ran again (locally) over all four shards
    assert re.search(r"localrule aggregate:", text)
    counts = pl.read_parquet(folder / exp.folder / "counts.parquet")
    assert (counts["n"] + counts["n_error"] == 8).all()


def test_a_second_project_with_the_cache_samples_nothing(
    slurm_project, cache_dir, tmp_path, embedded_model
):
    folder, _ = slurm_project
    bigger = copy.deepcopy(CONFIG)
    bigger["sampling"]["num_samples"] = 8
    other = make_project(tmp_path / "second", bigger, embedded_model)
    jobs, elapsed, text = run_slurm(other, cache_dir, "--until", "verify_shard")
    print(f"second project with the cache: {elapsed:.0f} s, SLURM jobs {jobs}")
    assert shards(other) == shards(folder)
    # Snakemake consults the cache inside each job (the plugin cannot skip the submission): every
    # shard came from the cache, so no sampling script ran and no model was loaded.
    for rule in (
        "sample_shard",
        "verify_shard",
    ):  # Snakemake touches the log; the script never wrote to it
        logs = list((other / "logs" / rule).rglob("*.log"))
        assert all(p.stat().st_size == 0 for p in logs), (
            f"a {rule} job ran instead of using the cache"
        )
    for path in (other / "results").rglob("shard-*"):
        assert path.is_symlink() and Path(os.readlink(path)).is_relative_to(cache_dir), path
