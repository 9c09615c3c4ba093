"""Benchmark: how long `snakemake -n --profile profiles/slurm` takes to plan a large experiment.

5 datasets x 4 models (vLLM, 1-8 GPUs each) x 100 shards of 100 samples per problem: about 4,000
sample and verification jobs. The goal is a plan in under 30 s. The experiment is planned, not
run: no model, GPU or cluster is needed (the SLURM plugin only has to be installed).
Run: python bench/dag.py [--shards 100]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GOAL_S = 30.0
DATASETS = ["gsm8k", "math", "humaneval", "apps", "codecontests"]
MODELS = {
    "llama-3-8b": {"path": "meta-llama/Meta-Llama-3-8B-Instruct", "tensor_parallel_size": 1},
    "gemma-2b": {"path": "google/gemma-2b-it", "tensor_parallel_size": 1},
    "llama-3-70b": {"path": "meta-llama/Meta-Llama-3-70B-Instruct", "tensor_parallel_size": 4},
    "deepseek-coder": {
        "path": "deepseek-ai/deepseek-coder-33b-instruct",
        "tensor_parallel_size": 2,
    },
}


def bench_config(shards: int, shard_size: int = 100) -> dict:
    return {
        "datasets": {name: {"limit": 128} for name in DATASETS},
        "models": {name: {"backend": "vllm", **spec} for name, spec in MODELS.items()},
        "sampling": {
            "num_samples": shards * shard_size,
            "shard_size": shard_size,
            "max_tokens": 1024,
        },
    }


def plan(folder: Path) -> tuple[float, dict[str, int], str]:
    """Seconds, rule -> job count, and output of one dry run with the SLURM profile."""
    cmd = [
        SNAKEMAKE,
        "-n",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--quiet",
        "rules",
    ]
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - started
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{text[-4000:]}")
    jobs = {}
    for line in text.split("Job stats:", 1)[-1].splitlines():
        m = re.match(r"^([A-Za-z_]\w*)\s+(\d+)$", line.strip())
        if m:
            jobs[m.group(1)] = int(m.group(2))
    return elapsed, jobs, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=100, help="shards per dataset x model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monkeyflow-dag-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(
            yaml.safe_dump(bench_config(args.shards), sort_keys=False)
        )
        elapsed, jobs, _ = plan(folder)
    total = jobs.pop("total", sum(jobs.values()))
    print(
        f"{len(DATASETS)} datasets x {len(MODELS)} models x {args.shards} shards: "
        f"planned {total} jobs in {elapsed:.1f} s with --profile profiles/slurm "
        f"(goal < {GOAL_S:.0f} s: {'met' if elapsed < GOAL_S else 'MISSED'})"
    )
    for rule, count in sorted(jobs.items(), key=lambda kv: -kv[1]):
        print(f"  {rule:<16} {count}")
    if elapsed >= GOAL_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
