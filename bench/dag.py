"""Benchmark: what planning costs with monkeyflow's Snakefile against a minimal Snakefile.

Planning: `snakemake -n --profile profiles/slurm` (as users run it) on a large experiment,
5 datasets x 4 models (vLLM, 1-8 GPUs each) x S shards (S = 100: ~4,000 jobs; S = 500: ~20,000),
against a minimal Snakefile written by this bench with the same shape and job count
(problems -> sample_shard -> verify_shard -> aggregate -> summary), run the same way: same
profiles, same rule names (so the profile's resources, threads and groups apply to both). The
measure is CPU time of the snakemake process (children's rusage: user + sys), which a busy machine
distorts less than wall time. Goal: ratio <= 1.5 at every size.

No-op: `snakemake` on a finished project (nothing to do) with the default experiment's config
(config.yaml of this checkout) against the minimal Snakefile's finished project with the same job
count. The project is finished quickly by sampling with the replay backend (released-sample layout
written by this bench) instead of the transformers model: the same datasets, problems, shards,
verifiers and analyses, minus the model-preparation jobs (the minimal one matches that count).
Goal: ratio <= 2.

Nothing runs on a cluster and no model is loaded: the experiment is only planned (the SLURM plugin
only has to be installed). Run: python bench/dag.py [--sizes 100 500] [--skip-noop]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PLAN_GOAL = 1.5
NOOP_GOAL = 2.0
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
# The stages of the minimal Snakefile, in order; every job not in the first four is a summary job.
STAGES = ("prepare_problems", "sample_shard", "verify_shard", "aggregate")


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


def minimal_snakefile(datasets: list[str], models: list[str], shards: int, summaries: int) -> str:
    """A Snakefile with monkeyflow's shape and rule names and nothing else: one problem file per
    dataset, `shards` sample and verdict shards per dataset x model, one count file per pair and
    `summaries` summary jobs (each reading every count file), then `all`."""
    return f"""\
DATASETS = {datasets!r}
MODELS = {models!r}
SHARDS = range({shards})
SUMMARIES = range({summaries})


rule all:
    input:
        expand("results/summary/table-{{i}}.txt", i=SUMMARIES),


rule prepare_problems:
    output:
        "data/problems/{{dataset}}.jsonl",
    shell:
        "touch {{output}}"


rule sample_shard:
    input:
        "data/problems/{{dataset}}.jsonl",
    output:
        samples="results/{{dataset}}/{{model}}/samples/shard-{{shard}}.jsonl",
        stats="results/{{dataset}}/{{model}}/samples/shard-{{shard}}.stats.json",
    threads: 2
    shell:
        "touch {{output}}"


rule verify_shard:
    input:
        problems="data/problems/{{dataset}}.jsonl",
        samples="results/{{dataset}}/{{model}}/samples/shard-{{shard}}.jsonl",
    output:
        "results/{{dataset}}/{{model}}/verdicts/shard-{{shard}}.parquet",
    shell:
        "touch {{output}}"


rule aggregate:
    input:
        expand("results/{{{{dataset}}}}/{{{{model}}}}/verdicts/shard-{{shard}}.parquet", shard=SHARDS),
    output:
        "results/{{dataset}}/{{model}}/counts.parquet",
    shell:
        "touch {{output}}"


rule summary:
    input:
        expand("results/{{dataset}}/{{model}}/counts.parquet", dataset=DATASETS, model=MODELS),
    output:
        "results/summary/table-{{i}}.txt",
    shell:
        "touch {{output}}"
"""


def write_minimal(folder: Path, datasets: list[str], models: list[str], shards: int, jobs: int):
    """The minimal project in `folder` with `jobs` jobs in all (the count of the real plan), the
    workflow profile copied beside it so that both are run with the same profiles."""
    pairs = len(datasets) * len(models)
    fixed = len(datasets) + 2 * pairs * shards + pairs + 1  # + 1: rule all
    summaries = jobs - fixed
    if summaries < 1:
        raise SystemExit(
            f"the real plan has {jobs} jobs, fewer than the minimal shape's {fixed + 1}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(minimal_snakefile(datasets, models, shards, summaries))
    shutil.copytree(REPO / "profiles" / "default", folder / "profiles" / "default")
    return folder / "Snakefile"


def snakemake(snakefile: Path, folder: Path, *args: str) -> tuple[float, float, str]:
    """CPU seconds (user + sys of the snakemake process and its children), wall seconds and
    output of one snakemake call."""
    cmd = [SNAKEMAKE, "-s", str(snakefile), "-d", str(folder), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=folder)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{text[-4000:]}")
    return cpu, wall, text


def job_stats(text: str) -> dict[str, int]:
    """Rule -> job count from `snakemake -n --quiet rules` output (empty: nothing to do)."""
    if "Job stats:" not in text:
        return {}
    jobs = {}
    for line in text.split("Job stats:", 1)[-1].splitlines():
        m = re.match(r"^([A-Za-z_]\w*)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def ratio_line(what: str, real: float, minimal: float, goal: float) -> tuple[str, bool]:
    ratio = real / minimal
    ok = ratio <= goal
    return (
        f"{what}: monkeyflow {real:.2f} s CPU, minimal {minimal:.2f} s CPU: {ratio:.2f}x "
        f"(goal <= {goal}x: {'met' if ok else 'MISSED'})",
        ok,
    )


def bench_plan(shards: int, repeat: int) -> bool:
    """Dry runs with the SLURM profile of the bench experiment and of its minimal twin."""
    profile = ["--profile", str(REPO / "profiles" / "slurm")]
    dry = ["-n", "--quiet", "rules", *profile]
    with tempfile.TemporaryDirectory(prefix="monkeyflow-dag-") as tmp:
        real_dir, minimal_dir = Path(tmp) / "real", Path(tmp) / "minimal"
        real_dir.mkdir()
        config = bench_config(shards)
        (real_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        real_cpu, real_wall, text = snakemake(REPO / "Snakefile", real_dir, *dry)
        jobs = job_stats(text)
        total = sum(jobs.values())
        snakefile = write_minimal(minimal_dir, DATASETS, list(MODELS), shards, total)
        minimal_cpu, minimal_wall, text = snakemake(snakefile, minimal_dir, *dry)
        minimal_total = sum(job_stats(text).values())
        if minimal_total != total:
            raise SystemExit(f"the minimal Snakefile plans {minimal_total} jobs, not {total}")
        # more rounds, alternating, keep each side's least CPU (the least disturbed run)
        for _ in range(repeat - 1):
            real_cpu = min(real_cpu, snakemake(REPO / "Snakefile", real_dir, *dry)[0])
            minimal_cpu = min(minimal_cpu, snakemake(snakefile, minimal_dir, *dry)[0])
    line, ok = ratio_line(
        f"plan, {len(DATASETS)} datasets x {len(MODELS)} models x {shards} shards = {total} jobs "
        f"(snakemake -n --profile profiles/slurm)",
        real_cpu,
        minimal_cpu,
        PLAN_GOAL,
    )
    print(line)
    print(f"  wall: monkeyflow {real_wall:.1f} s, minimal {minimal_wall:.1f} s (first round)")
    for rule, count in sorted(jobs.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  {rule:<16} {count}")
    return ok


def replay_config(folder: Path) -> dict:
    """The default experiment's config (this checkout's config.yaml) sampled by the replay
    backend: each dataset x model pair gets a replay model of its own reading released rows that
    this writes into `folder/released/<dataset>` (half of each problem's samples labelled
    correct). Datasets, problems, shards, verifiers and analyses stay those of the default."""
    sys.path.insert(0, str(REPO / "src"))
    from monkeyflow.config import dataset_spec, load_config
    from monkeyflow.data import get_dataset
    from monkeyflow.io import write_jsonl

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiments = load_config(copy.deepcopy(config))
    models, pairs = {}, []
    for e in experiments:
        problems = get_dataset(dataset_spec(config, e.dataset)).problems()
        rows = [
            {
                "gt_answer": p.reference,
                "samples": [f"The answer is {p.reference}." for _ in range(e.num_samples)],
                "is_corrects": [i % 2 == 0 for i in range(e.num_samples)],
                # the replay backend's match: metadata row, else the id's number
                "orig_dset_idx": int(p.metadata.get("row", p.problem_id.rsplit("-", 1)[-1])),
            }
            for p in problems
        ]
        name = f"{e.model}-{e.dataset}"
        write_jsonl(folder / "released" / name / "test.jsonl", rows)
        models[name] = {"backend": "replay", "path": str(folder / "released"), "config": name}
        sampling = {"num_samples": e.num_samples, "shard_size": e.shard_size}
        pairs.append({"dataset": e.dataset, "model": name, "sampling": sampling})
    return {**config, "models": models, "experiments": pairs}


def bench_noop(repeat: int) -> bool:
    """`snakemake` with nothing to do on the finished default experiment and its minimal twin."""
    cores = ["--cores", "2"]
    with tempfile.TemporaryDirectory(prefix="monkeyflow-noop-") as tmp:
        real_dir, minimal_dir = Path(tmp) / "real", Path(tmp) / "minimal"
        real_dir.mkdir()
        config = replay_config(real_dir)
        (real_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _, _, text = snakemake(REPO / "Snakefile", real_dir, "-n", "--quiet", "rules", *cores)
        jobs = job_stats(text)
        total = sum(jobs.values())
        started = time.perf_counter()
        snakemake(REPO / "Snakefile", real_dir, *cores)
        run_wall = time.perf_counter() - started
        _, _, text = snakemake(REPO / "Snakefile", real_dir, "-n", *cores)
        if "Nothing to be done" not in text:
            raise SystemExit(f"the finished default experiment still plans jobs:\n{text[-3000:]}")
        # the minimal twin: one model per pair in the same count (pairs = datasets here)
        datasets = sorted({pair["dataset"] for pair in config["experiments"]})
        pairs = len(config["experiments"])
        models = [f"m{i}" for i in range(pairs // len(datasets))]
        shards = jobs.get("sample_shard", 0) // pairs
        snakefile = write_minimal(minimal_dir, datasets, models, shards, total)
        snakemake(snakefile, minimal_dir, *cores)
        real_cpu = minimal_cpu = float("inf")
        for _ in range(repeat):
            real_cpu = min(real_cpu, snakemake(REPO / "Snakefile", real_dir, *cores)[0])
            cpu, _, text = snakemake(snakefile, minimal_dir, *cores)
            if "Nothing to be done" not in text:
                raise SystemExit(f"the finished minimal project still plans jobs:\n{text[-3000:]}")
            minimal_cpu = min(minimal_cpu, cpu)
    line, ok = ratio_line(
        f"no-op snakemake, default experiment finished ({total} jobs; finished in {run_wall:.0f} s "
        f"with the replay backend)",
        real_cpu,
        minimal_cpu,
        NOOP_GOAL,
    )
    print(line)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[100, 500],
        help="shards per dataset x model (none: only the no-op)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds per measurement (min kept)")
    parser.add_argument("--skip-noop", action="store_true", help="only the planning benchmark")
    args = parser.parse_args()
    # this checkout's library first, for the workflow scripts too (also from a fresh clone)
    paths = [str(REPO / "src"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    ok = all([bench_plan(shards, args.repeat) for shards in args.sizes])
    if not args.skip_noop:
        ok = bench_noop(max(1, args.repeat)) and ok
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
