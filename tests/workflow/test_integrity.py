"""Results on disk: damaged files are named (by the job that reads them and by `monkeyflow
check`), and reruns follow content, not modification times. Runs the real workflow on the toy
plugin (no model: seconds)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO, make_project, parse_jobs, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

CONFIG = {
    "datasets": {"toy-arith": {}},
    "models": {"echo": {"backend": "toy-echo", "path": "none", "every": 3}},
    "sampling": {"num_samples": 6, "shard_size": 2},
}
MONKEYFLOW = str(Path(sys.executable).with_name("monkeyflow"))


def check(folder: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MONKEYFLOW, "check", str(folder / "results")],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=folder,
    )  # fmt: skip


@pytest.fixture()
def project(tmp_path, plugin_env):
    folder = make_project(tmp_path / "p", CONFIG)
    snakemake(folder, env=plugin_env)
    return folder


def run_folder(folder: Path) -> Path:
    (run,) = (folder / "results" / "toy-arith" / "echo").iterdir()
    return run


def damage(path: Path, how: str) -> None:
    """Truncate or garble a file in place, keeping its modification time (as bit rot would)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_check_passes_a_good_tree_and_files_honour_the_umask(project, plugin_env):
    result = check(project, plugin_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 with problems" in result.stderr
    for path in (project / "results").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # umask 022 in the tests


@pytest.mark.parametrize(
    "target, how, reader, rerun",
    [
        ("samples/shard-1.jsonl.zst", "truncate", "verify_shard", "verdicts/shard-1.parquet"),
        ("samples/shard-2.jsonl.zst", "garble", "verify_shard", "verdicts/shard-2.parquet"),
        ("verdicts/shard-0.parquet", "garble", "aggregate", "counts.parquet"),
        ("verdicts/shard-1.parquet", "truncate", "aggregate", "counts.parquet"),
    ],
)
def test_a_damaged_file_is_named_by_check_and_by_the_job_that_reads_it(
    project, plugin_env, target, how, reader, rerun
):
    run = run_folder(project)
    damage(run / target, how)
    result = check(project, plugin_env)
    assert result.returncode == 1
    assert "PROBLEM" in result.stdout and target in result.stdout
    # the file keeps its old mtime, so Snakemake sees nothing to do; once its reader must run
    # (here: its output is gone and asked for), the job fails naming the file and what to do
    for name in (rerun, "counts.parquet"):
        (run / name).unlink(missing_ok=True)
    counts = str((run / "counts.parquet").relative_to(project))
    result = snakemake(project, counts, check=False, env=plugin_env)
    assert result.returncode != 0
    log = next((project / "logs" / reader).rglob("*.log")) if reader == "aggregate" else None
    text = result.stdout + result.stderr + (log.read_text() if log else "")
    assert (
        str(target) in text
        and f"delete it and run `snakemake {run.relative_to(project) / target}`" in text
    )


def test_touched_scripts_and_copied_folders_plan_nothing(project, plugin_env, tmp_path):
    assert planned_jobs(project, env=plugin_env) == {}
    # a fresh copy of the workflow (new mtimes on every script and rule file)
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    for part in (
        "Snakefile",
        "rules",
        "workflow_scripts",
        "schemas",
        "profiles",
        "src",
        "envs",
        "containers",
        "report",
    ):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workflow / part)
    # and a copied project folder: new mtimes in copy order, no .snakemake metadata
    copy = tmp_path / "copy"
    shutil.copytree(
        project, copy, copy_function=shutil.copy, ignore=shutil.ignore_patterns(".snakemake")
    )
    (copy / "results" / "summary" / "passk.parquet").touch()
    for folder in (project, copy):
        cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(workflow / "Snakefile"), "-d", str(folder),
               "--cores", "1", "-n", "--quiet", "rules"]  # fmt: skip
        result = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **plugin_env}
        )
        assert result.returncode == 0, result.stderr
        text = result.stdout + result.stderr
        if folder == project:
            assert "Nothing to be done" in text, text
        else:
            # without .snakemake's records the copy's cheap tables may be remade (seconds); nothing
            # is sampled or verified again
            assert not {"sample_shard", "verify_shard"} & set(parse_jobs(text)), text
    # a real change of a cheap rule's code reruns it (and what depends on it)
    script = workflow / "workflow_scripts" / "analysis.py"
    script.write_text(script.read_text() + "\n# changed\n")
    cmd[4] = str(project)
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **plugin_env})
    text = result.stdout + result.stderr
    jobs = parse_jobs(text)
    assert "passk" in jobs and not {"sample_shard", "verify_shard"} & set(jobs), text
