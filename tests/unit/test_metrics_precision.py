"""Selection rules (votes, best-of-N) on hand-built cases, their tie rule, and reward scoring."""

from itertools import combinations

import numpy as np
import polars as pl
import pytest

from monkeyflow.metrics.passk import pass_at_k
from monkeyflow.metrics.precision import (
    answer_ids,
    best_of_n_success,
    draw_subsets,
    reward_scores,
    selection_curves,
    vote_success,
)


def subsets_for(n, k_max, draws=4000, seed=0):
    return draw_subsets(n, k_max, draws, np.random.default_rng(seed))


def vote(answers, correct, ks, weights=None, draws=4000):
    codes, _ = answer_ids(answers)
    w = np.ones(len(answers)) if weights is None else np.asarray(weights, dtype=float)
    return vote_success(
        codes, np.asarray(correct, bool), w, ks, subsets_for(len(answers), max(ks), draws)
    )


def test_draw_subsets_are_uniform_without_replacement():
    subsets = subsets_for(10, 4, draws=20000)
    assert subsets.shape == (20000, 4)
    assert all(len(set(row)) == 4 for row in subsets[:500])
    inclusion = np.bincount(subsets.ravel(), minlength=10) / 20000
    assert np.allclose(inclusion, 0.4, atol=0.02)
    assert subsets_for(5, 5, draws=3).shape == (3, 5)


def test_majority_vote_known_answers():
    # All three samples: A (2 votes, correct) beats B.
    assert vote(["A", "A", "B"], [1, 1, 0], [3]) == pytest.approx([1.0])
    # k=2: {A,A} (1/3 of subsets) -> 1; {A,B} -> tie -> 1/2; expected 2/3. k=1: 2/3.
    assert vote(["A", "A", "B"], [1, 1, 0], [1, 2], draws=20000) == pytest.approx(
        [2 / 3, 2 / 3], abs=0.015
    )
    # The more common wrong answer wins.
    assert vote(["A", "B", "B", "B"], [1, 0, 0, 0], [4]) == pytest.approx([0.0])


def test_tie_rule_is_expected_value_over_tied_answers():
    # A single sample each: every 2-subset is a tie, scored exactly 1/2 with no randomness.
    assert vote(["A", "B"], [1, 0], [2], draws=7) == [0.5]
    assert vote(["A", "B", "C"], [1, 0, 0], [3], draws=7) == [pytest.approx(1 / 3)]
    # Weighted totals tie despite floating-point rounding (0.1 + 0.2 vs 0.3).
    assert vote(["A", "A", "B"], [1, 1, 0], [3], weights=[0.1, 0.2, 0.3], draws=7) == [0.5]
    scores = np.array([0.5, 0.5, 0.1])
    got = best_of_n_success(
        scores, np.array([1, 0, 1], bool), np.ones(3, bool), [3], subsets_for(3, 3, draws=7)
    )
    assert got == [0.5]


def test_weighted_vote_and_best_of_n():
    assert vote(["A", "B", "B"], [1, 0, 0], [3], weights=[3.0, 1.0, 1.0]) == [1.0]
    assert vote(["A", "B", "B"], [1, 0, 0], [3], weights=[1.5, 1.0, 1.0]) == [0.0]
    correct = np.array([0, 1, 0], bool)
    subsets = subsets_for(3, 3)
    assert best_of_n_success(
        np.array([0.1, 0.9, 0.5]), correct, np.ones(3, bool), [3], subsets
    ) == [1.0]
    # k=1 picks a random sample: 1/3; k=2 wins whenever sample 1 is in the subset: 2/3.
    got = best_of_n_success(
        np.array([0.1, 0.9, 0.5]), correct, np.ones(3, bool), [1, 2], subsets_for(3, 2, 20000)
    )
    assert got == pytest.approx([1 / 3, 2 / 3], abs=0.015)


def test_none_answers_never_win():
    assert vote(["A", None, None], [1, 0, 0], [3]) == [1.0]
    assert vote([None, None], [0, 0], [1, 2]).tolist() == [0.0, 0.0]
    # Best-of-N skips the top-scoring sample that has no answer.
    candidate = np.array([False, True])
    assert best_of_n_success(
        np.array([10.0, 1.0]), np.array([0, 1], bool), candidate, [2], subsets_for(2, 2)
    ) == [1.0]


def test_random_subsets_match_enumeration():
    answers = ["A", "B", "A", "C", "B", "B"]
    correct = [1, 0, 1, 0, 0, 0]
    k = 3
    exact = []
    for subset in combinations(range(6), k):
        counts = {}
        for i in subset:
            counts[answers[i]] = counts.get(answers[i], 0) + 1
        top = max(counts.values())
        tied = [a for a, v in counts.items() if v == top]
        exact.append(np.mean([a == "A" for a in tied]))
    assert vote(answers, correct, [k], draws=40000) == pytest.approx([np.mean(exact)], abs=0.01)


def test_selection_curves_frame():
    rng = np.random.default_rng(3)
    rows = []
    for p in range(4):
        for s in range(8):
            answer = None if s == 7 else str(rng.integers(0, 3))
            rows.append(
                {
                    "problem_id": f"p{p}",
                    "extracted": answer,
                    "correct": answer == "0",
                    "mean_logprob": float(-rng.random()),
                    "reward": float(rng.normal()),
                }
            )
    frame = pl.DataFrame(rows)
    with pytest.warns(UserWarning, match="dropped k = \\[16\\]"):
        curves = selection_curves(frame, [1, 2, 4, 8, 16], draws=300, seed=1)
    assert set(curves["rule"]) == {
        "majority_vote",
        "logprob_best_of_n",
        "logprob_weighted_vote",
        "reward_best_of_n",
        "reward_weighted_vote",
        "coverage",
    }
    assert sorted(set(curves["k"])) == [1, 2, 4, 8]
    n = frame.group_by("problem_id", maintain_order=True).agg(pl.len(), pl.col("correct").sum())
    ceiling = pass_at_k(n["len"].to_numpy(), n["correct"].to_numpy(), [1, 2, 4, 8]).mean(axis=0)
    assert curves.filter(pl.col("rule") == "coverage")["success"].to_numpy() == pytest.approx(
        ceiling
    )
    ceiling_by_k = dict(zip([1, 2, 4, 8], ceiling, strict=True))
    for row in curves.filter(pl.col("rule") != "coverage").iter_rows(named=True):
        assert 0.0 <= row["success"] <= ceiling_by_k[row["k"]] + 1e-12  # no rule beats the oracle
    assert selection_curves(frame, [4], draws=300, seed=1).equals(
        selection_curves(frame, [4], draws=300, seed=1)
    )
    with pytest.raises(ValueError, match="reward"):
        selection_curves(frame.drop("reward"), [1], rules=["reward_best_of_n"])


def _tiny_reward_model(path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    words = ["<pad>", "<unk>", "<eos>", *"the answer is so yes no 0 1 2 3 4 5 6 7 8 9".split()]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    ).save_pretrained(path)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(words),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        num_labels=1,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=2,
    )
    model = GPT2ForSequenceClassification(config).eval()
    model.save_pretrained(path)
    return model


def test_reward_scores_on_tiny_model(tmp_path):
    import torch
    from transformers import AutoTokenizer

    model = _tiny_reward_model(tmp_path)
    texts = ["the answer is 4", "so the answer is 1 2 3 4 5 yes", "no", "unknown words 7"]
    batched = reward_scores(texts, str(tmp_path), batch_size=3)
    single = reward_scores(texts, str(tmp_path), batch_size=1)
    assert batched.shape == (4,) and np.all(np.isfinite(batched))
    assert batched == pytest.approx(single, abs=1e-5)  # padding does not change a score
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    with torch.no_grad():
        direct = model(**tokenizer(texts[1], return_tensors="pt")).logits[0, 0].item()
    assert batched[1] == pytest.approx(direct, abs=1e-5)
    assert len(set(np.round(batched, 6))) == 4
