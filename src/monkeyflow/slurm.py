"""The SLURM site profile: what `monkeyflow slurm-profile` writes for `snakemake --profile slurm`.

A site profile holds what belongs to the cluster, not to a workflow: the executor, how job
status is checked, requeueing, file-system latency, partition and account. The workflow's own
resources (memory, runtime, GPUs, groups) are in its workflow profile, `profiles/default`, which
Snakemake loads beside it and which wins for the keys it sets.

Snakemake finds `--profile slurm` in the current folder, then in `$XDG_CONFIG_HOME/snakemake/`
(default `~/.config/snakemake/`), then in `/etc/xdg/snakemake/`.

The status command: snakemake-executor-plugin-slurm defaults to `sacct`, which waits forever on
clusters without SLURM accounting. The command asks SLURM (`scontrol show config`, a `sacct`
query) when they answer and chooses `sacct` only when accounting works, else `squeue`, which
sees finished jobs for `MinJobAge` seconds (it needs >= 120; SLURM's default is 300).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from monkeyflow.io import write_bytes_atomic

PROFILE_NAME = "slurm"
# Files Snakemake may read from a profile folder (profile.yaml since 9.19, config.yaml before;
# an optional `.vN+` suffix): a second one beside ours could be read instead of it.
PROFILE_FILE = re.compile(r"(profile|config)(\.v\d+\+)?\.yaml")
# Partition and account names as sbatch takes them (an account may be a comma-separated list).
NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*")
MIN_JOB_AGE_FOR_SQUEUE = 120
COMMAND_TIMEOUT_S = 15


class SlurmProfileError(ValueError):
    """A site profile that cannot be written; the message says what to do."""


def default_dest() -> Path:
    """`$XDG_CONFIG_HOME/snakemake/slurm` (default `~/.config/snakemake/slurm`), the folder
    Snakemake searches for `--profile slurm` after the current folder."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "snakemake" / PROFILE_NAME


def _ask(cmd: list[str]) -> subprocess.CompletedProcess | None:
    """Run a SLURM query; None when the command is missing or does not answer in time."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def parse_config(text: str) -> dict[str, str]:
    """`Key = Value` lines of `scontrol show config`."""
    settings = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            settings[key.strip()] = value.strip()
    return settings


def parse_seconds(value: str) -> int | None:
    """MinJobAge as scontrol prints it (`300 sec`, `5 min`, `1 hour`, `300`); None if unknown."""
    m = re.match(r"^(\d+)\s*([a-zA-Z]*)", value.strip())
    if not m:
        return None
    unit = m.group(2).lower()
    scale = {"": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1}
    scale |= {"min": 60, "mins": 60, "minute": 60, "minutes": 60}
    scale |= {"h": 3600, "hour": 3600, "hours": 3600}
    return int(m.group(1)) * scale[unit] if unit in scale else None


@dataclass
class Detection:
    """What SLURM said about accounting and job ages, and the status command chosen from it."""

    status_command: str
    accounting: bool | None  # None: nobody answered
    min_job_age: int | None
    notes: list[str] = field(default_factory=list)
    partitions: list[str] | None = None  # None: sinfo did not answer


def detect() -> Detection:
    """Ask `scontrol show config`, `sacct` and `sinfo`, where they answer."""
    notes = []
    config = _ask(["scontrol", "show", "config"])
    settings = parse_config(config.stdout) if config is not None and config.returncode == 0 else {}
    if config is None:
        notes.append("`scontrol show config` did not answer (missing or timed out)")
    elif config.returncode != 0:
        notes.append(f"`scontrol show config` failed: {_first_line(config.stderr)}")
    storage = settings.get("AccountingStorageType")
    min_job_age = parse_seconds(settings["MinJobAge"]) if "MinJobAge" in settings else None

    accounting: bool | None = None
    if storage is not None and storage.endswith("/none"):
        accounting = False
        notes.append(f"accounting is off (AccountingStorageType={storage})")
    else:
        sacct = _ask(["sacct", "--noheader", "--allocations", "--format=JobID", "--starttime=now"])
        if sacct is None:
            notes.append("`sacct` did not answer (missing or timed out)")
        elif sacct.returncode == 0:
            accounting = True
            notes.append("`sacct` answers: accounting works")
        else:
            message = _first_line(sacct.stderr or sacct.stdout)
            if "accounting storage is disabled" in message.lower():
                accounting = False
            notes.append(f"`sacct` fails: {message}")

    if accounting:
        status = "sacct"
    else:
        status = "squeue"
        why = "accounting is off" if accounting is False else "sacct does not answer here"
        notes.append(f"status command squeue ({why}; the plugin's default, sacct, would hang)")
    if min_job_age is not None:
        notes.append(f"MinJobAge = {min_job_age} s")

    sinfo = _ask(["sinfo", "--noheader", "--format=%P"])
    partitions = None
    if sinfo is not None and sinfo.returncode == 0:
        partitions = [p.rstrip("*") for p in sinfo.stdout.split()]
    return Detection(status, accounting, min_job_age, notes, partitions)


def _quoted_resource(value: str) -> str:
    """A string resource as a profile value: YAML string holding a Python string literal
    (Snakemake evaluates resource values; a bare word would be a name)."""
    return f"\"'{value}'\""


def render(
    *,
    status_command: str,
    partition: str | None,
    account: str | None,
    no_account: bool,
    jobs: int,
    latency_wait: int,
    retries: int,
    notes: list[str],
) -> str:
    """The profile's text, with comments saying where each choice came from."""
    lines = [
        "# SLURM site profile for snakemake-executor-plugin-slurm, written by",
        "# `monkeyflow slurm-profile`. Use it from any workflow folder: `snakemake --profile slurm`.",
        "# Only site settings live here; a workflow's own resources come from its workflow profile",
        "# (monkeyflow: profiles/default), which wins for the keys it sets. The command line wins",
        "# over both.",
        "#",
        "# What SLURM said when this was written:",
        *[f"#   {note}" for note in notes],
        "executor: slurm",
        f"jobs: {jobs}",
        f"slurm-status-command: {status_command}",
        "slurm-init-seconds-before-status-checks: 20",
        "seconds-between-status-checks: 15",
        "# preempted or node-failed jobs go back to the queue; a failed job is resubmitted",
        "slurm-requeue: true",
        f"retries: {retries}",
        "# seconds to wait for a job's outputs to appear on the shared file system",
        f"latency-wait: {latency_wait}",
        "keep-going: true",
    ]
    if no_account:
        lines += ["# no accounting: submit without an account (no guessing with sacct)"]
        lines += ["slurm-no-account: true"]
    lines += [
        "# for rules the workflow profile does not size",
        "default-resources:",
    ]
    if partition:
        lines.append(f"  slurm_partition: {_quoted_resource(partition)}")
    if account:
        lines.append(f"  slurm_account: {_quoted_resource(account)}")
    lines += ["  mem_mb: 4000", "  runtime: 60"]
    return "\n".join(lines) + "\n"


def _check_name(what: str, value: str | None) -> None:
    if value is not None and not NAME.fullmatch(value):
        raise SlurmProfileError(
            f"{what} {value!r}: use letters, digits and . _ + - (accounts may be comma-separated)"
        )


def write_profile(
    dest: Path | None = None,
    *,
    partition: str | None = None,
    account: str | None = None,
    status_command: str = "auto",
    force: bool = False,
    jobs: int = 200,
    latency_wait: int = 60,
    retries: int = 2,
) -> tuple[Path, str, list[str]]:
    """Write `dest/config.yaml` (default: the user's `slurm` profile); returns the path, the
    text written and warnings. Never overwrites an existing profile unless `force`."""
    _check_name("partition", partition)
    _check_name("account", account)
    for what, value in (("jobs", jobs), ("latency wait", latency_wait), ("retries", retries)):
        if value < 0 or (what == "jobs" and value == 0):
            raise SlurmProfileError(f"{what} must be {'positive' if what == 'jobs' else '>= 0'}")
    if status_command not in ("auto", "sacct", "squeue"):
        raise SlurmProfileError(f"status command {status_command!r}: use auto, sacct or squeue")
    folder = Path(dest) if dest is not None else default_dest()
    if folder.exists() and not folder.is_dir():
        raise SlurmProfileError(f"{folder} exists and is not a folder")
    path = folder / "config.yaml"
    others = sorted(
        p.name
        for p in (folder.iterdir() if folder.is_dir() else [])
        if PROFILE_FILE.fullmatch(p.name) and p.name != "config.yaml"
    )
    if others:
        raise SlurmProfileError(
            f"{folder} holds {', '.join(others)}, which Snakemake may read instead of config.yaml: "
            "move it away first"
        )
    if path.exists() and not force:
        raise SlurmProfileError(f"{path} exists; pass --force to overwrite it")

    found = detect()
    warnings = []
    chosen = found.status_command if status_command == "auto" else status_command
    notes = list(found.notes)
    if status_command != "auto":
        notes.append(f"status command {chosen}: chosen with --status-command")
        if chosen == "sacct" and found.accounting is False:
            warnings.append(
                "sacct chosen but accounting is off here: Snakemake would wait forever for jobs"
            )
    if chosen == "squeue" and found.min_job_age is not None:
        if found.min_job_age < MIN_JOB_AGE_FOR_SQUEUE:
            warnings.append(
                f"MinJobAge is {found.min_job_age} s: squeue forgets finished jobs before "
                f"Snakemake asks (it needs >= {MIN_JOB_AGE_FOR_SQUEUE} s); ask the admins for a "
                "longer MinJobAge or accounting"
            )
    if partition and found.partitions is not None and partition not in found.partitions:
        raise SlurmProfileError(
            f"no partition {partition!r} on this cluster; sinfo lists: {', '.join(found.partitions)}"
        )
    no_account = account is None and found.accounting is False
    text = render(
        status_command=chosen,
        partition=partition,
        account=account,
        no_account=no_account,
        jobs=jobs,
        latency_wait=latency_wait,
        retries=retries,
        notes=notes,
    )
    write_bytes_atomic(path, text.encode())
    return path, text, warnings
