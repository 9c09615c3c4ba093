"""`snakemake --profile slurm`, literally, on a real local SLURM cluster.

The site profile is installed the way a user installs it (`monkeyflow slurm-profile`, into a
temporary XDG_CONFIG_HOME, detecting accounting from the live cluster); the workflow's own
resources come from the auto-loaded workflow profile (profiles/default), unchanged. The test
node advertises 16 CPUs, 256 GB and 2 GPUs (conftest.py) so the workflow's full-size requests
are accepted; what each job asked for is read back from SLURM's own job records
(`scontrol show job`, which keeps finished jobs for MinJobAge = 300 s). The only command-line
additions are faster status checks.
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
import yaml

from monkeyflow.config import load_config
from monkeyflow.data import DatasetSpec, get_dataset

from ..monkey_business import released_rows, write_released
from ..workflow.helpers import REPO, SNAKEMAKE, make_project, snakemake, write_config

pytestmark = [pytest.mark.cluster, pytest.mark.model, pytest.mark.usefixtures("slurm_cluster")]

MONKEYFLOW = str(Path(SNAKEMAKE).with_name("monkeyflow"))
FAST_STATUS = [
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
]


def base_config(released: Path) -> dict:
    return {
        "datasets": {"gsm8k": {"limit": 2, "subset_seed": 0}},
        "models": {
            # one shard of a real CPU model (a second would only add minutes of sampling)
            "smol": {
                "backend": "transformers",
                "path": "embedded:smollm2-135m",
                "sampling": {"num_samples": 2},
            },
            # released samples, sampled "on one GPU": a cheap job that asks SLURM for a GPU
            "onegpu": {
                "backend": "replay",
                "path": str(released),
                "config": "GSM8K_Test",
                "gpus": 1,
            },
        },
        "sampling": {"num_samples": 4, "shard_size": 2, "max_tokens": 8, "temperature": 0.8},
    }


def scontrol_jobs() -> list[dict[str, str]]:
    """Every job SLURM still knows, as `scontrol show job -o` key=value fields."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    ).stdout
    jobs = []
    for line in out.splitlines():
        if not line.startswith("JobId="):
            continue
        fields = {}
        # values never contain spaces except Comment/Command, which come last or are unused
        for item in re.findall(r"(\w[\w:/]*)=(\S*)", line):
            fields.setdefault(item[0], item[1])
        jobs.append(fields)
    return jobs


def mem_mb(value: str) -> float:
    """scontrol's memory (`4000M`, `62.50G`) in MB."""
    number, unit = float(value[:-1]), value[-1]
    return number * {"M": 1, "G": 1024, "T": 1024 * 1024}[unit]


def last_slurm_job() -> int:
    return max((int(j["JobId"]) for j in scontrol_jobs()), default=0)


def describe(comment: str) -> str:
    """`sample_shard:<model>:<shard>`, `group:verify` or the rule name, from the job comment the
    plugin sets (`rule_<rule>_wildcards_<values joined by _>`)."""
    if comment.startswith("rule_sample_shard_wildcards_"):
        _, model, _, shard = comment.removeprefix("rule_sample_shard_wildcards_").split("_")
        return f"sample_shard:{model}:{shard}"
    if m := re.match(r"rule_([a-z_]+?)_wildcards_", comment):
        return m.group(1)
    if comment.startswith("rule_verify"):  # a group job: the group's id, then its members
        return "group:verify"
    return comment.removeprefix("rule_")


def slurm_jobs(folder: Path, after: int) -> list[dict[str, str]]:
    """The jobs submitted from `folder` with an id above `after`, each with `what` added."""
    jobs = []
    for job in scontrol_jobs():
        if int(job["JobId"]) <= after or Path(job["WorkDir"]).resolve() != folder.resolve():
            continue
        jobs.append({**job, "what": describe(job.get("Comment", ""))})
    return sorted(jobs, key=lambda j: j["what"])


@pytest.fixture(scope="package")
def site_profile(tmp_path_factory) -> Path:
    """`monkeyflow slurm-profile --partition debug` into a fresh XDG_CONFIG_HOME."""
    xdg = tmp_path_factory.mktemp("xdg")
    result = subprocess.run(
        [MONKEYFLOW, "slurm-profile", "--partition", "debug"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(xdg)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    path = xdg / "snakemake" / "slurm" / "config.yaml"
    profile = yaml.safe_load(path.read_text())
    # the local cluster runs without accounting: the command chose squeue by asking it
    assert profile["slurm-status-command"] == "squeue", path.read_text()
    assert profile["executor"] == "slurm" and profile["slurm-requeue"] is True
    return xdg


def run_slurm(folder: Path, xdg: Path, cache: Path, *targets: str) -> tuple[list[dict], float, str]:
    """`snakemake --profile slurm` from the checkout, on project folder `folder`."""
    before = last_slurm_job()
    env = {**os.environ, "XDG_CONFIG_HOME": str(xdg), "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    cmd = [SNAKEMAKE, "--profile", "slurm", "--directory", str(folder), *FAST_STATUS, *targets]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    elapsed = time.monotonic() - started
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{text[-8000:]}")
    assert "slurm and workflow specific profile profiles/default" in text, text[:2000]
    return slurm_jobs(folder, before), elapsed, text


def shards(folder: Path, model: str = "smol") -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob(f"results/*/{model}/*/samples/*.jsonl.zst"))
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("output-cache")


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("released")
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=2, subset_seed=0)).problems()
    write_released(folder, "GSM8K_Test", released_rows(problems, 8, 0.5, seed=3))
    return folder


@pytest.fixture(scope="module")
def slurm_project(tmp_path_factory, embedded_model, cache_dir, site_profile, released):
    folder = make_project(
        tmp_path_factory.mktemp("slurm-project"), base_config(released), embedded_model
    )
    # through aggregation (the analyses add nothing here and cost a minute of login-node time)
    targets = [f"{e.folder}/counts.parquet" for e in load_config(base_config(released))]
    jobs, elapsed, _ = run_slurm(folder, site_profile, cache_dir, *targets)
    print(f"first SLURM run: {elapsed:.0f} s, SLURM jobs {[j['what'] for j in jobs]}")
    return folder, jobs


def test_the_workflow_profile_resources_reach_sbatch(slurm_project):
    _, jobs = slurm_project
    assert all(j["JobState"] == "COMPLETED" for j in jobs), jobs
    by_what = {j["what"]: j for j in jobs}
    # sample_shard, CPU model: the rule's 2 threads, the workflow profile's 64 GB and 240 min
    for shard in ("0",):
        job = by_what[f"sample_shard:smol:{shard}"]
        assert job["NumCPUs"] == "2" and mem_mb(job["MinMemoryNode"]) == 64000, job
        assert job["TimeLimit"] == "04:00:00", job
        assert "gpu" not in job.get("TresPerJob", ""), job
    # sample_shard, model with `gpus: 1`: --gpus=1 --cpus-per-gpu=8
    for shard in ("0", "1"):
        job = by_what[f"sample_shard:onegpu:{shard}"]
        assert job["TresPerJob"] == "gres:gpu:1", job
        assert job["CpusPerTres"] == "gres:gpu:8" and job["NumCPUs"] == "8", job
        assert mem_mb(job["MinMemoryNode"]) == 64000 and job["TimeLimit"] == "04:00:00", job
    # the three verify_shard jobs as one group job, asking for what they need side by side: as
    # many at once as `cores: all` (this login node's CPUs) allows, 1 CPU and 2000 MB (the
    # verifier's resources) each, 30 min per job run one after another
    group = by_what["group:verify"]
    side_by_side = min(3, len(os.sched_getaffinity(0)))
    rounds = -(-3 // side_by_side)
    assert group["NumCPUs"] == str(side_by_side), group
    assert mem_mb(group["MinMemoryNode"]) == 2000 * side_by_side, group
    assert group["TimeLimit"] == f"{rounds * 30 // 60:02d}:{rounds * 30 % 60:02d}:00", group
    assert {j["Partition"] for j in jobs} == {"debug"}
    submitted = Counter(j["what"] for j in jobs)
    assert submitted["group:verify"] == 1 and "verify_shard" not in submitted
    # problems, run descriptions and aggregation ran on the login node
    assert set(submitted) == {
        "sample_shard:smol:0",
        "sample_shard:onegpu:0",
        "sample_shard:onegpu:1",
        "group:verify",
    }, submitted


def test_shards_match_a_local_run(slurm_project, tmp_path, embedded_model, released):
    folder, _ = slurm_project
    assert len(shards(folder)) == 1
    # one shard is enough (and half the time): a plain local run, the workflow profile only
    first = sorted(shards(folder))[0]
    local = make_project(tmp_path / "local", base_config(released), embedded_model)
    snakemake(local, first)
    assert shards(local) == {first: shards(folder)[first]}


def test_raising_num_samples_submits_only_the_new_shards(
    slurm_project, cache_dir, site_profile, released
):
    """num_samples 4 -> 8 for the replayed model (the CPU model's shards would add minutes of
    sampling and nothing new): exactly its two new shards and one verification group job."""
    folder, _ = slurm_project
    bigger = copy.deepcopy(base_config(released))
    bigger["sampling"]["num_samples"] = 8
    write_config(folder, bigger)
    before = shards(folder, "onegpu")
    (exp,) = [e for e in load_config(bigger) if e.model == "onegpu"]
    jobs, elapsed, text = run_slurm(folder, site_profile, cache_dir, f"{exp.folder}/counts.parquet")
    print(
        f"raised num_samples under SLURM: {elapsed:.0f} s, SLURM jobs {[j['what'] for j in jobs]}"
    )
    submitted = Counter(j["what"] for j in jobs)
    assert submitted == {
        "sample_shard:onegpu:2": 1,
        "sample_shard:onegpu:3": 1,
        "group:verify": 1,
    }, jobs
    after = shards(folder, "onegpu")
    assert len(after) == 4 and {k: after[k] for k in before} == before
    assert re.search(r"localrule aggregate:", text)
    counts = pl.read_parquet(folder / exp.folder / "counts.parquet")
    assert (counts["n"] + counts["n_error"] == 8).all()


def test_a_second_project_with_the_cache_samples_nothing(
    slurm_project, cache_dir, site_profile, tmp_path, embedded_model, released
):
    """Every verdict file of the first project (after the test above: the CPU model's shard 0,
    the replayed model's 0-3), asked for in a second project folder."""
    folder, _ = slurm_project
    bigger = copy.deepcopy(base_config(released))
    bigger["sampling"]["num_samples"] = 8
    other = make_project(tmp_path / "second", bigger, embedded_model)
    targets = sorted(str(p.relative_to(folder)) for p in folder.glob("results/*/*/*/verdicts/*"))
    assert len(targets) >= 3, targets  # 5 after the test above
    jobs, elapsed, _ = run_slurm(other, site_profile, cache_dir, *targets)
    print(f"second project with the cache: {elapsed:.0f} s, SLURM jobs {[j['what'] for j in jobs]}")
    for model in ("smol", "onegpu"):
        assert shards(other, model) == shards(folder, model)
    # Snakemake consults the cache inside each job (the plugin cannot skip the submission): every
    # shard came from the cache, so no sampling script ran and no model was loaded.
    for rule in ("sample_shard", "verify_shard"):
        logs = list((other / "logs" / rule).rglob("*.log"))
        assert logs and all(p.stat().st_size == 0 for p in logs), (
            f"a {rule} job ran instead of using the cache"
        )
    for path in (other / "results").rglob("shard-*"):
        assert path.is_symlink() and Path(os.readlink(path)).is_relative_to(cache_dir), path
