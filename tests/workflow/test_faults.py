"""The fault suite: what a user whose jobs die, whose disks fill and who runs things twice at
once meets. Real Snakemake on the toy plugin (no model), so every case takes seconds. The README's
"When things go wrong" table lists these cases and what happens."""

from __future__ import annotations

import copy
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from .helpers import REPO, SNAKEMAKE, make_project, snakemake

pytestmark = pytest.mark.workflow

CONFIG = {
    "datasets": {"toy-arith": {}},
    "models": {"echo": {"backend": "toy-echo", "path": "none", "every": 3}},
    "sampling": {"num_samples": 8, "shard_size": 2},
}
MONKEYFLOW = str(Path(sys.executable).with_name("monkeyflow"))
# sampling and verification are what faults can damage; the tables after them are not needed here
UNTIL = ("--until", "verify_shard")


def shards(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob("results/*/*/*/*/shard-*"))
        if p.suffix in (".zst", ".parquet")
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, plugin_env):
    """Shards of an undisturbed run, to compare the disturbed ones with."""
    folder = make_project(tmp_path_factory.mktemp("clean"), CONFIG)
    snakemake(folder, *UNTIL, env=plugin_env)
    return shards(folder)


def slow_config(delay: float) -> dict:
    config = copy.deepcopy(CONFIG)
    config["models"]["echo"]["delay_s"] = delay  # a runtime option: not in the run key
    return config


def start(folder: Path, env: dict, *args: str) -> subprocess.Popen:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(folder), "--cores", "2", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def running_shard_scripts(folder: Path) -> list[int]:
    """PIDs of this project's running sample_shard jobs (Snakemake runs a copy of the script
    from the project's .snakemake/scripts/)."""
    pattern = f"{folder}/.snakemake/scripts/.*sample_shard"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_kill_9_of_snakemake_mid_shard_then_rerun_gives_identical_shards(
    tmp_path, plugin_env, reference
):
    folder = make_project(tmp_path / "p", slow_config(1.5))
    proc = start(folder, plugin_env, *UNTIL)
    wait_for(lambda: running_shard_scripts(folder))
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
    proc.wait()
    # the lock it held says what to do; after --unlock the rerun redoes the incomplete shards
    # (rerun-incomplete is on in the workflow profile)
    locked = snakemake(folder, *UNTIL, check=False, env=plugin_env)
    assert (
        "Directory cannot be locked" in locked.stdout + locked.stderr
        and "--unlock" in locked.stdout + locked.stderr
    )
    snakemake(folder, "--unlock", env=plugin_env)
    snakemake(folder, *UNTIL, env=plugin_env)
    assert shards(folder) == reference


def test_kill_9_of_a_job_fails_the_run_and_a_rerun_repairs_it(tmp_path, plugin_env, reference):
    folder = make_project(tmp_path / "p", slow_config(1.5))
    proc = start(folder, plugin_env, *UNTIL)
    wait_for(lambda: running_shard_scripts(folder))
    os.kill(running_shard_scripts(folder)[0], signal.SIGKILL)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "Error in rule sample_shard" in output
    assert not list(folder.glob("results/**/.*.tmp"))  # no half-written file left behind
    snakemake(folder, *UNTIL, env=plugin_env)
    assert shards(folder) == reference


def test_two_snakemake_runs_in_one_folder(tmp_path, plugin_env, reference):
    folder = make_project(tmp_path / "p", slow_config(1.5))
    first = start(folder, plugin_env, *UNTIL)
    wait_for(
        lambda: (
            (folder / ".snakemake" / "locks").is_dir()
            and any((folder / ".snakemake" / "locks").iterdir())
        )
    )
    second = snakemake(folder, *UNTIL, check=False, env=plugin_env)
    assert second.returncode != 0 and "Directory cannot be locked" in second.stdout + second.stderr
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert shards(folder) == reference


def _fsize_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_fails_the_job_and_leaves_no_partial_file(tmp_path, plugin_env, reference):
    folder = make_project(tmp_path / "p", CONFIG)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(folder), "--cores", "1", *UNTIL]
    # every file a job writes may hold at most 600 bytes: sample shards do not fit
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, **plugin_env},
        preexec_fn=_fsize_limit(600),
    )
    assert result.returncode != 0
    assert not list(folder.glob("results/*/*/*/samples/shard-*.jsonl.zst"))
    assert not list(folder.glob("results/**/.*.tmp"))
    snakemake(folder, *UNTIL, env=plugin_env)  # room again: the rerun completes
    assert shards(folder) == reference


def write_samples(path: Path, problems: int, per_problem: int) -> None:
    rows = (
        json.dumps({"problem_id": f"toy-{p:02d}", "sample_index": i, "text": f" {(p + i) % 19}"})
        for p in range(problems)
        for i in range(per_problem)
    )
    path.write_text("".join(r + "\n" for r in rows))


def test_cli_on_a_full_disk_is_one_error_line(tmp_path, plugin_env):
    samples = tmp_path / "s.jsonl"
    write_samples(samples, 10, 50)
    out = tmp_path / "v.parquet"
    cmd = [MONKEYFLOW, "verify", "toy-arith", str(samples), "-o", str(out)]
    env = {**os.environ, **plugin_env}
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=env, preexec_fn=_fsize_limit(2000)
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    assert subprocess.run(cmd, capture_output=True, env=env).returncode == 0


def test_cli_with_an_unwritable_cache_warns_and_keeps_every_verdict(tmp_path, plugin_env):
    samples = tmp_path / "s.jsonl"
    write_samples(samples, 10, 50)
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    out = tmp_path / "v.parquet"
    cmd = [MONKEYFLOW, "verify", "toy-arith", str(samples), "-o", str(out), "--cache", str(blocked)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **plugin_env})
    assert result.returncode == 0, result.stderr
    assert "continuing without caching" in result.stderr
    assert pl.read_parquet(out).height == 500


def test_concurrent_cli_runs_share_one_cache(tmp_path, plugin_env):
    samples = tmp_path / "s.jsonl"
    write_samples(samples, 10, 200)
    env = {**os.environ, **plugin_env}
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [
                MONKEYFLOW,
                "verify",
                "toy-arith",
                str(samples),
                "-o",
                str(tmp_path / f"v{i}.parquet"),
                "--cache",
                str(cache),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    frames = [pl.read_parquet(tmp_path / f"v{i}.parquet") for i in range(4)]
    assert all(f.equals(frames[0]) for f in frames) and frames[0].height == 2000


def test_a_100000_sample_shard_in_bounded_memory(tmp_path, plugin_env):
    problems = tmp_path / "problems.jsonl"
    samples = tmp_path / "samples.jsonl.zst"
    make = f"""
from monkeyflow.io import write_jsonl
from monkeyflow.stages import prepare_problems
from monkeyflow.data import DatasetSpec
prepare_problems(DatasetSpec(name="toy-arith"), {str(problems)!r})
write_jsonl({str(samples)!r}, ({{"problem_id": f"toy-{{p:02d}}", "sample_index": i,
             "text": " " + str((p * 7 + i) % 23) + " because " + "x" * (i % 200)}}
             for p in range(10) for i in range(10_000)))
"""
    verify = f"""
import json
from monkeyflow.logs import peak_rss_mb
from monkeyflow.stages import verify_shard
stats = verify_shard({str(problems)!r}, {str(samples)!r}, "toy-exact", {str(tmp_path / "v.parquet")!r})
print(json.dumps({{"stats": stats, "peak_mb": peak_rss_mb()}}))
"""
    env = {**os.environ, **plugin_env}
    for code in (make, verify):  # a fresh process measures verification alone
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"100,000-sample shard: peak RSS {report['peak_mb']:.0f} MB, {report['stats']}")
    assert report["stats"]["samples"] == 100_000
    verdicts = pl.read_parquet(tmp_path / "v.parquet")
    assert verdicts.height == 100_000
    assert verdicts.equals(verdicts.sort(["problem_id", "sample_index"]))
    assert report["peak_mb"] < 600  # measured here: see the README
