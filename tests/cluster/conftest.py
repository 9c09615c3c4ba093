"""A real single-node SLURM cluster on localhost for the cluster tests (cluster/start_slurm.sh).

Started once for this folder's tests and stopped after them, unless it was already running
(then it is left as it was; the tests' node size, TEST_NODE, is undone). Stopping moves /etc/slurm/slurm.conf aside: with a slurm.conf and no
controller, every later `snakemake` call would wait ~9 s for the SLURM plugin's `scontrol`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The node advertises what the workflow profile asks for at full size (64 GB and 8 CPUs per GPU
# for sample_shard), so the tests submit its real requests; jobs still run on the real cores.
TEST_NODE = {"SLURM_NODE_CPUS": "16", "SLURM_NODE_MEM_MB": "256000", "SLURM_NODE_GPUS": "2"}


def _controller_running() -> bool:
    pidfile = Path("/run/slurm/slurmctld.pid")
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="package")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the cluster tests install (apt) and start SLURM daemons: they need root")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip(
            "SLURM is not installed and there is no apt-get to install it (cluster/start_slurm.sh)"
        )
    was_running = _controller_running()
    result = subprocess.run(
        ["bash", str(REPO / "cluster" / "start_slurm.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **TEST_NODE},
    )
    if result.returncode != 0:
        pytest.fail(
            f"cluster/start_slurm.sh failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    yield
    if was_running:  # leave it as it was: the real hardware unless SLURM_NODE_* said otherwise
        subprocess.run(
            ["bash", str(REPO / "cluster" / "start_slurm.sh")],
            capture_output=True,
            text=True,
            timeout=300,
        )
    else:
        subprocess.run(
            ["bash", str(REPO / "cluster" / "stop_slurm.sh")],
            capture_output=True,
            text=True,
            timeout=300,
        )
