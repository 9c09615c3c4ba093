"""The transformers backend on the embedded model: counts, determinism, stop strings."""

from __future__ import annotations

import pytest

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.sampling import ModelSpec, SamplingParams, ShardRequest, get_backend

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend(embedded_model):
    return get_backend(
        ModelSpec("smol", "transformers", str(embedded_model), {"batch_size": 8}),
        str(embedded_model),
    )


def test_samples_are_complete_and_reproducible(backend):
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=2)).problems()
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=12, stop=("Question:",), seed=3)
    requests = [ShardRequest(p, 4, 3) for p in problems]
    first = backend.generate(requests, params, "run-a")
    assert [(s.problem_id, s.sample_index) for s in first] == [
        (p.problem_id, i) for p in problems for i in (4, 5, 6)
    ]
    assert all(
        s.finish_reason in ("stop", "length") and 1 <= s.completion_tokens <= 12 for s in first
    )
    assert all(s.cumulative_logprob < 0 and s.prompt_tokens > 50 for s in first)
    assert backend.generate(requests, params, "run-a") == first
    other = backend.generate(requests, params, "run-b")
    assert [s.text for s in other] != [s.text for s in first]


def test_greedy_is_one_text_and_stop_strings_cut(backend):
    (problem,) = get_dataset(DatasetSpec(name="gsm8k", limit=1)).problems()
    greedy = backend.generate(
        [ShardRequest(problem, 0, 2)], SamplingParams(temperature=0, max_tokens=10), "r"
    )
    assert greedy[0].text == greedy[1].text
    # Cut at the first space: every sample that produced one stops before it.
    cut = backend.generate(
        [ShardRequest(problem, 0, 4)],
        SamplingParams(temperature=1.0, max_tokens=16, stop=(" ",)),
        "r",
    )
    assert all(" " not in s.text for s in cut)
    assert any(s.finish_reason == "stop" for s in cut)
