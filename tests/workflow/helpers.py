"""Run the real Snakefile on tiny configs in temporary project folders."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def make_project(folder: Path, config: dict, model_dir: Path | None = None) -> Path:
    """A project folder with `config.yaml`; `model_dir` (a prepared embedded model) is linked in
    so that tests do not convert the model again (one test does convert it through the rule)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if model_dir is not None:
        (folder / "models").mkdir(exist_ok=True)
        link = folder / "models" / "smollm2-135m"
        if not link.exists():
            link.symlink_to(model_dir, target_is_directory=True)
    return folder


def write_config(folder: Path, config: dict) -> None:
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(
    folder: Path, *args: str, check: bool = True, timeout: int = 1800, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real Snakefile on `folder` (`env`: extra environment variables)."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(folder), "--cores", "2", *args]
    full_env = {**os.environ, **env} if env else None
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def planned_jobs(folder: Path, env: dict | None = None) -> dict[str, int]:
    """Rule -> job count from a dry run (empty when nothing is to be done)."""
    result = snakemake(folder, "-n", "--quiet", "rules", env=env)
    return parse_jobs(result.stdout + result.stderr)


def parse_jobs(text: str) -> dict[str, int]:
    """Rule -> job count from the output of `snakemake -n --quiet rules`."""
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[-1] if "Job stats:" in text else text
    jobs = {}
    for line in table.splitlines():
        m = re.match(r"^([A-Za-z_][\w]*)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def tree_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """path -> (sha256, mtime_ns) of every file below `folder`."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
