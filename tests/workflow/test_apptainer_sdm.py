"""`snakemake --sdm apptainer` runs each job in the image the lock pins.

No Apptainer here: a fake `apptainer` on PATH records the command line Snakemake builds and runs
the job's command on the host. A replayed model keeps it fast (no weights).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from monkeyflow.config import load_config
from monkeyflow.containers import image_path, load_lock
from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.sampling.base import BACKENDS
from monkeyflow.verify import VERIFIERS

from ..monkey_business import released_rows, write_released
from .helpers import REPO, make_project, snakemake

pytestmark = pytest.mark.workflow

# `exec --home H [--bind ...] [--pwd ...] IMAGE SHELL -c CMD`: log it, then run CMD here
FAKE = """#!/bin/bash
printf '%s\\n' "$*" >> "{log}"
[ "$1" = "--version" ] && {{ echo "apptainer version 1.3.6"; exit 0; }}
[ "$1" = "exec" ] || {{ echo "fake apptainer: only exec" >&2; exit 2; }}
args=("$@")
for ((i = 1; i < ${{#args[@]}}; i++)); do
  case "${{args[$i]}}" in *.sif) exec "${{args[$((i + 1))]}}" -c "${{args[$((i + 3))]}}" ;; esac
done
echo "fake apptainer: no image" >&2; exit 2
"""


def test_jobs_run_in_the_pinned_images(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apptainer.calls"
    (bin_dir / "apptainer").write_text(FAKE.format(log=log))
    (bin_dir / "apptainer").chmod(0o755)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the image's
    (bin_dir / "python").chmod(0o755)
    images_dir = tmp_path / "images"
    folder = tmp_path / "project"
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=2, subset_seed=0)).problems()
    write_released(folder / "released", "GSM8K_Test", released_rows(problems, 4, 0.5, seed=1))
    config = {
        "datasets": {"gsm8k": {"limit": 2, "subset_seed": 0}},
        "models": {
            "replayed": {
                "backend": "replay",
                "path": str(folder / "released"),
                "config": "GSM8K_Test",
            }
        },
        "sampling": {"num_samples": 4, "shard_size": 4},
    }
    make_project(folder, config)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MONKEYFLOW_CONTAINERS": str(images_dir),
    }
    snakemake(folder, "--sdm", "apptainer", "--until", "verify_shard", env=env)
    calls = [line for line in log.read_text().splitlines() if line.startswith("exec ")]
    lock = load_lock(REPO / "containers" / "images.lock.yaml")
    (exp,) = load_config(config)
    expected = {
        "prepare_problems": image_path("analysis", images_dir, lock),
        "sample_shard": image_path(BACKENDS.get("replay").container, images_dir, lock),
        "verify_shard": image_path(VERIFIERS.get(exp.verifier).container, images_dir, lock),
    }
    ran = {}
    for call in calls:
        words = call.split()
        image = next(w for w in words if w.endswith(".sif"))
        script = words[-1].rsplit(".", 2)[-2]  # .snakemake/scripts/tmpXXXX.<rule>.py
        ran[script] = image
        assert words[:2] == ["exec", "--home"] and words[words.index(image) + 1] == "bash", call
    assert ran == expected, calls
    assert list(folder.glob("results/gsm8k/replayed/*/verdicts/shard-0.parquet"))
    # nothing was built here, so no digest: the versioned file name
    assert Path(expected["prepare_problems"]).name == "monkeyflow-analysis-0.1.0.sif"
