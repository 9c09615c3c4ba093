"""FLOPs and dollar cost of repeated sampling, checked on hand-computed cases."""

import numpy as np
import polars as pl
import pytest

from monkeyflow.metrics.cost import (
    ModelShape,
    cost_table,
    cost_to_reach,
    dollar_cost,
    dollars_at_k,
    flops_at_k,
    flops_per_token,
    model_shape,
    parameter_count,
    sequence_flops,
    total_flops,
)

SHAPE = ModelShape(parameters=1000, layers=2, d_model=10)


def test_flops_hand_computed():
    # Per token at context t: 2 (1000 + 2*2*10*t) = 2000 + 80 t.
    assert flops_per_token(SHAPE, 5) == 2400.0
    prompt, completion = sequence_flops(SHAPE, [3], [2])
    assert prompt[0] == (2080 + 2160 + 2240)  # positions 1, 2, 3
    assert completion[0] == (2320 + 2400)  # positions 4, 5
    samples = pl.DataFrame(
        {"problem_id": ["p", "p", "q"], "prompt_tokens": [3, 3, 1], "completion_tokens": [2, 0, 1]}
    )
    # p: prompt 6480 once + completions 4720 + 0; q: prompt 2080 + completion at t=2: 2160.
    assert total_flops(SHAPE, samples) == 6480 + 4720 + 2080 + 2160
    assert total_flops(SHAPE, samples, share_prompt=False) == 2 * 6480 + 4720 + 2080 + 2160
    # k samples per problem: prompts once, k x mean completion (p: 2360, q: 2160).
    assert flops_at_k(SHAPE, samples, [1, 4]).tolist() == [
        6480 + 2080 + 4520,
        6480 + 2080 + 4 * 4520,
    ]
    assert flops_at_k(SHAPE, samples, [2], share_prompt=False).tolist() == [
        2 * (6480 + 2080 + 4520)
    ]


LLAMA3_8B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}


def test_parameter_count_of_known_models():
    assert parameter_count(LLAMA3_8B) == 8_030_261_248  # Meta-Llama-3-8B
    smollm2 = {
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "intermediate_size": 1536,
        "vocab_size": 49152,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "tie_word_embeddings": True,
    }
    assert parameter_count(smollm2) == 134_515_008  # SmolLM2-135M
    shape = model_shape(LLAMA3_8B)
    assert (shape.layers, shape.d_model) == (32, 4096)
    assert model_shape(LLAMA3_8B, parameters=7).parameters == 7
    assert parameter_count({"num_parameters": 12}) == 12
    with pytest.raises(ValueError, match="hidden_size"):
        parameter_count({"n_embd": 8})


@pytest.mark.parametrize(
    "variant",
    [
        {"tie_word_embeddings": True},
        {"tie_word_embeddings": False, "attention_bias": True, "mlp_bias": True},
        {"tie_word_embeddings": False, "head_dim": 12},
    ],
)
def test_parameter_count_matches_transformers(variant):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "intermediate_size": 48,
        "vocab_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        **variant,
    }
    model = LlamaForCausalLM(LlamaConfig(**config))
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_dollar_cost():
    assert dollar_cost([600, 400], [300, 200], 3.0, 15.0) == pytest.approx(0.0105)
    samples = pl.DataFrame(
        {
            "problem_id": ["p", "p", "q"],
            "prompt_tokens": [100, 100, 50],
            "completion_tokens": [10, 30, 40],
        }
    )
    # Per sample of each problem: p 100 in + 20 out, q 50 in + 40 out.
    per_k = (150 * 2.0 + 60 * 10.0) / 1e6
    assert dollars_at_k(samples, [1, 5], 2.0, 10.0) == pytest.approx([per_k, 5 * per_k])


def test_cost_to_reach_and_table():
    ks = [1, 2, 4, 8]
    k, cost = cost_to_reach(ks, [0.1, 0.2, 0.4, 0.8], [15, 25, 45, 85], 0.3)
    assert k == pytest.approx(np.sqrt(8)) and cost == pytest.approx(5 + 10 * np.sqrt(8))
    assert all(np.isnan(cost_to_reach(ks, [0.1, 0.2, 0.4, 0.5], [1, 2, 3, 4], 0.9)))
    # Already above the target at the smallest k: reached there (not "never").
    assert cost_to_reach(ks, [0.6, 0.7, 0.8, 0.9], [15, 25, 45, 85], 0.3) == (1.0, 15.0)
    table = cost_table(
        {
            "big": ([1, 2], [0.5, 0.7], [10.0, 20.0]),
            "small": ([1, 4], [0.2, 0.5], [1.0, 4.0]),
            "weak": ([1], [0.1], [1.0]),
        },
        target=0.5,
    )
    assert table["model"].to_list() == ["small", "big", "weak"]
    assert table["cost"].to_list()[:2] == [4.0, 10.0]
    assert table["relative_cost"].to_list()[:2] == [1.0, 2.5]
    assert np.isnan(table["k"][2])
