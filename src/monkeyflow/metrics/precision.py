"""Precision of selection rules vs the coverage ceiling (paper Fig. 7).

Given N samples per problem, a rule picks one answer out of a subset of k samples; its success
rate at k is the chance that the pick is correct, estimated over `draws` random k-subsets of the
N samples (drawn without replacement, seeded; the subsets for every k are prefixes of one random
ordering per draw, shared by all rules of a problem so they are compared on the same subsets).

Candidates: only samples with an extracted answer (not None) can be picked or win a vote; a
subset without any yields failure. An answer's correctness is the fraction of all N samples
carrying it that are correct (1 or 0 whenever the verifier is consistent).

Tie rule: when several answers (votes) or samples (best-of-N) tie for the top, the rule scores
the *expected* success of a uniformly random pick among them, i.e. the mean correctness of the
tied candidates, without drawing. Totals tie when equal within a relative 1e-9.

Rules: majority vote (weight 1 per sample); best-of-N by mean token log-probability;
likelihood-weighted vote (weight exp(mean token log-prob), the geometric-mean token
probability); reward-model best-of-N; reward-weighted vote (weight sigmoid(reward), the
Bradley-Terry probability of beating a zero-reward answer, so weights are positive).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from monkeyflow.metrics.bootstrap import supported_ks
from monkeyflow.metrics.passk import pass_at_k

TIE_RTOL = 1e-9
RULES = (
    "majority_vote",
    "logprob_best_of_n",
    "logprob_weighted_vote",
    "reward_best_of_n",
    "reward_weighted_vote",
)
_RULE_COLUMN = {
    "majority_vote": None,
    "logprob_best_of_n": "mean_logprob",
    "logprob_weighted_vote": "mean_logprob",
    "reward_best_of_n": "reward",
    "reward_weighted_vote": "reward",
}


def draw_subsets(samples: int, k_max: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Random ordered subsets without replacement: array [draws, k_max] of sample indices."""
    if not 1 <= k_max <= samples:
        raise ValueError(f"need 1 <= k_max <= samples, got k_max={k_max}, samples={samples}")
    keys = rng.random((draws, samples))
    if k_max < samples:
        # The k_max smallest random keys form a uniform subset; sorting them orders it uniformly.
        top = np.argpartition(keys, k_max - 1, axis=1)[:, :k_max]
        return np.take_along_axis(
            top, np.argsort(np.take_along_axis(keys, top, axis=1), axis=1), axis=1
        )
    return np.argsort(keys, axis=1)


def _tied(values: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    masked = np.where(candidate, values, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    any_candidate = np.isfinite(top[:, 0])
    tied = candidate & np.isclose(masked, top, rtol=TIE_RTOL, atol=0.0)
    return tied, any_candidate


def answer_ids(answers: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer code per sample (-1 for None) and the distinct answers: ([samples], [answers])."""
    vocabulary: dict[str, int] = {}
    codes = np.array(
        [-1 if a is None else vocabulary.setdefault(a, len(vocabulary)) for a in answers],
        dtype=np.int64,
    )
    return codes, list(vocabulary)


def vote_success(
    codes: np.ndarray,
    correct: np.ndarray,
    weights: np.ndarray,
    ks: Sequence[int],
    subsets: np.ndarray,
) -> np.ndarray:
    """Expected success of a weighted vote at each k: array [len(ks)].

    `codes` [N] answer codes (-1: no answer), `correct` [N] bools, `weights` [N] >= 0 per-sample
    vote weights, `subsets` [draws, >= max(ks)] sample indices (prefix of length k is the subset).
    """
    codes = np.asarray(codes, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if np.any(weights < 0) or not np.all(np.isfinite(weights[codes >= 0])):
        raise ValueError("vote weights must be finite and >= 0 for every sample with an answer")
    n_answers = int(codes.max()) + 1 if codes.size else 0
    if n_answers == 0:
        return np.zeros(len(ks))
    has = codes >= 0
    answer_correct = np.bincount(
        codes[has], weights=correct[has], minlength=n_answers
    ) / np.bincount(codes[has], minlength=n_answers)
    draws = subsets.shape[0]
    chunk = max(1, 2_000_000 // n_answers)  # bound the [draws, answers] tables' memory
    out = np.zeros(len(ks))
    for j, k in enumerate(ks):
        total = 0.0
        for start in range(0, draws, chunk):
            sub = subsets[start : start + chunk, :k]
            rows = sub.shape[0]
            ids, w = codes[sub], weights[sub]
            valid = ids >= 0
            flat = (np.arange(rows)[:, None] * n_answers + ids)[valid]
            size = rows * n_answers
            totals = np.bincount(flat, weights=w[valid], minlength=size).reshape(rows, n_answers)
            present = np.bincount(flat, minlength=size).reshape(rows, n_answers) > 0
            tied, any_candidate = _tied(totals, present)
            wins = (tied * answer_correct).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
            total += float(np.where(any_candidate, wins, 0.0).sum())
        out[j] = total / draws
    return out


def best_of_n_success(
    scores: np.ndarray,
    correct: np.ndarray,
    candidate: np.ndarray,
    ks: Sequence[int],
    subsets: np.ndarray,
) -> np.ndarray:
    """Expected success of picking the top-scoring candidate sample at each k: array [len(ks)].

    `scores` [N] (higher is better), `correct` [N] bools, `candidate` [N] bools (has an answer),
    `subsets` as in `vote_success`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=bool)
    if not np.all(np.isfinite(scores[candidate])):
        raise ValueError("best-of-N needs a finite score for every sample with an answer")
    out = np.zeros(len(ks))
    for j, k in enumerate(ks):
        sub = subsets[:, :k]
        tied, any_candidate = _tied(scores[sub], candidate[sub])
        wins = (tied * correct[sub]).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
        out[j] = float(np.where(any_candidate, wins, 0.0).mean())
    return out


def mean_token_logprob(cumulative_logprob: np.ndarray, completion_tokens: np.ndarray) -> np.ndarray:
    """Mean natural-log probability per completion token: array [samples] (NaN for 0 tokens)."""
    tokens = np.asarray(completion_tokens, dtype=np.float64)
    return np.asarray(cumulative_logprob, dtype=np.float64) / np.where(tokens > 0, tokens, np.nan)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def selection_curves(
    samples: pl.DataFrame,
    ks: Sequence[int],
    rules: Sequence[str] | None = None,
    draws: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """Success rate vs k of each rule, plus the `coverage` ceiling: rows rule, k, success, problems.

    `samples` has one row per sample: problem_id, correct (bool), extracted (str or None) and,
    for the rules that need them, mean_logprob (nats/token) and reward. Without `rules`, every
    rule whose column is present runs. Only k <= the fewest samples of any problem are reported.
    """
    if rules is None:
        rules = [r for r in RULES if _RULE_COLUMN[r] is None or _RULE_COLUMN[r] in samples.columns]
    unknown = [r for r in rules if r not in _RULE_COLUMN]
    if unknown:
        raise ValueError(f"unknown selection rule(s) {unknown}; choose from {list(RULES)}")
    missing = sorted(
        {
            _RULE_COLUMN[r]
            for r in rules
            if _RULE_COLUMN[r] and _RULE_COLUMN[r] not in samples.columns
        }
    )
    if missing:
        raise ValueError(f"rules {list(rules)} need column(s) {missing} in the samples frame")
    groups = samples.partition_by("problem_id", maintain_order=True, as_dict=False)
    n = np.array([g.height for g in groups])
    c = np.array([int(g["correct"].sum()) for g in groups])
    ids = [g["problem_id"][0] for g in groups]
    kept = supported_ks(n, ks, ids)
    if not kept:
        return pl.DataFrame(
            schema={"rule": pl.String, "k": pl.Int64, "success": pl.Float64, "problems": pl.Int64}
        )
    success = {rule: np.zeros(len(kept)) for rule in rules}
    for index, group in enumerate(groups):
        rng = np.random.default_rng([seed, index])
        subsets = draw_subsets(group.height, max(kept), draws, rng)
        codes, _ = answer_ids(group["extracted"].to_list())
        correct = group["correct"].to_numpy().astype(bool)
        candidate = codes >= 0
        for rule in rules:
            column = _RULE_COLUMN[rule]
            score = group[column].cast(pl.Float64).fill_null(np.nan).to_numpy() if column else None
            if rule == "majority_vote":
                result = vote_success(codes, correct, np.ones(group.height), kept, subsets)
            elif rule.endswith("best_of_n"):
                result = best_of_n_success(score, correct, candidate, kept, subsets)
            elif rule == "logprob_weighted_vote":
                result = vote_success(
                    codes, correct, np.where(candidate, np.exp(score), 0.0), kept, subsets
                )
            else:
                result = vote_success(
                    codes, correct, np.where(candidate, _sigmoid(score), 0.0), kept, subsets
                )
            success[rule] += result
    rows = [
        {"rule": rule, "k": k, "success": success[rule][j] / len(groups), "problems": len(groups)}
        for rule in rules
        for j, k in enumerate(kept)
    ]
    ceiling = pass_at_k(n, c, kept).mean(axis=0)
    rows += [
        {"rule": "coverage", "k": k, "success": float(ceiling[j]), "problems": len(groups)}
        for j, k in enumerate(kept)
    ]
    return pl.DataFrame(
        rows, schema={"rule": pl.String, "k": pl.Int64, "success": pl.Float64, "problems": pl.Int64}
    )


def reward_scores(
    texts: Sequence[str],
    model_path: str,
    batch_size: int = 8,
    max_length: int | None = None,
) -> np.ndarray:
    """Scalar reward per text from a Hugging Face sequence-classification model on CPU: [len(texts)].

    `texts` are scored as given (apply the reward model's chat template beforehand if it has
    one); the model must have a single output label. Longer texts are truncated to
    `max_length` tokens (default: the tokenizer's limit).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path)
    model.eval()
    if model.config.num_labels != 1:
        raise ValueError(
            f"{model_path}: a reward model has one output label, this one has {model.config.num_labels}"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    # The classifier reads the last non-pad token, so it must know which id is padding.
    model.config.pad_token_id = tokenizer.pad_token_id
    out = np.empty(len(texts))
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length
            )
            logits = model(**encoded).logits
            out[start : start + len(batch)] = logits[:, 0].float().numpy()
    return out
