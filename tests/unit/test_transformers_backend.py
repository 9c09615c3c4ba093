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


def test_continuous_batching_refills_slots_and_is_reproducible(embedded_model):
    # 3 slots for 2 x 4 rows: freed slots are refilled from the waiting rows in shard order.
    small = get_backend(
        ModelSpec("smol", "transformers", str(embedded_model), {"batch_size": 3}),
        str(embedded_model),
    )
    assert small.decoder is not None
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=2)).problems()
    params = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=10, seed=1)
    requests = [ShardRequest(p, 0, 4) for p in problems]
    first = small.generate(requests, params, "run")
    assert [(s.problem_id, s.sample_index) for s in first] == [
        (p.problem_id, i) for p in problems for i in range(4)
    ]
    assert all(1 <= s.completion_tokens <= 10 and s.cumulative_logprob < 0 for s in first)
    assert len({s.text for s in first}) > 2
    assert small.generate(requests, params, "run") == first


def test_decoder_logits_match_the_model(backend):
    import torch

    decoder, model = backend.decoder, backend.model
    a = list(range(100, 190))
    b = list(range(100, 160)) + list(range(500, 520))

    def reference(ids):
        with torch.inference_mode():
            return model(input_ids=torch.tensor([ids])).logits[0, -1].float()

    with torch.inference_mode():
        prefix, _ = decoder.prefill(a[:50], None)
        own_a, logits_a = decoder.prefill(a[50:], prefix)
        own_b, logits_b = decoder.prefill(b[50:], prefix)
        cache = decoder.new_cache(3, 64)
        decoder.load(cache, 0, own_a)
        decoder.load(cache, 1, own_b)
        lengths = torch.tensor([len(a) - 50, len(b) - 50])
        step = decoder.step(torch.tensor([7, 9]), lengths, prefix, cache)
        # slot 1 moves into slot 0 (a row left): its cache goes with it
        decoder.move(cache, 1, 0, len(b) - 50 + 1)
        moved = decoder.step(torch.tensor([5]), torch.tensor([len(b) - 50 + 1]), prefix, cache)
    for got, ids in [
        (logits_a, a),
        (logits_b, b),
        (step[0], a + [7]),
        (step[1], b + [9]),
        (moved[0], b + [9, 5]),
    ]:
        assert (got - reference(ids)).abs().max() < 1e-3


def test_a_rows_draw_depends_on_its_generator_alone_and_stays_in_the_nucleus():
    import torch

    from monkeyflow.sampling.transformers_backend import _sample

    torch.manual_seed(0)
    logits = torch.randn(4, 1000) * 3
    logits[3] = 0.0  # flat: 64 candidates hold < top_p, the full ranking is used
    params = SamplingParams(temperature=0.7, top_p=0.8, seed=0)

    def gens():
        return [torch.Generator().manual_seed(s) for s in (11, 12, 13, 14)]

    together, logprobs = _sample(torch, logits, gens(), params)
    alone = [_sample(torch, logits[j : j + 1], [g], params)[0][0] for j, g in enumerate(gens())]
    assert together == alone
    probs = torch.softmax(logits / 0.7, dim=-1)
    for j, tok in enumerate(together):
        ranked, order = torch.sort(probs[j], descending=True)
        nucleus = order[: int(((ranked.cumsum(0) - ranked) <= 0.8).sum())].tolist()
        assert tok in nucleus
        assert abs(logprobs[j] - float(torch.log_softmax(logits[j], -1)[tok])) < 1e-4
    draws = {
        _sample(torch, logits[:1], [torch.Generator().manual_seed(s)], params)[0][0]
        for s in range(40)
    }
    assert len(draws) > 1  # it does sample
    greedy = _sample(torch, logits, gens(), SamplingParams(temperature=0))[0]
    assert greedy == logits.argmax(-1).tolist()


def test_models_the_decoder_loop_cannot_run_use_the_batched_model_path(backend, monkeypatch):
    problems = get_dataset(DatasetSpec(name="gsm8k", limit=1)).problems()
    params = SamplingParams(temperature=0.8, max_tokens=6, seed=2)
    requests = [ShardRequest(problems[0], 0, 3)]
    monkeypatch.setattr(backend, "decoder", None)
    first = backend.generate(requests, params, "r")
    assert len(first) == 3 and all(1 <= s.completion_tokens <= 6 for s in first)
    assert backend.generate(requests, params, "r") == first
