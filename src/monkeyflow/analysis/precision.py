"""precision: success rate vs k of selection rules (majority vote, best-of-N by log-probability or
reward) under the coverage ceiling (paper Fig. 7)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from monkeyflow.analysis.base import LABELS, Analysis, Runs, curve_ks, labelled, stack

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.plots.style import Order
    from monkeyflow.records import Problem

PRECISION_SCHEMA = {
    **LABELS,
    "rule": str,
    "k": int,
    "success": float,
    "problems": int,
}


def _reward_texts(problems: Sequence[Problem], frame: pl.DataFrame, model_path: str) -> list[str]:
    """Question + completion per sample, through the reward model's chat template if it has one."""
    from transformers import AutoTokenizer

    questions = {}
    for p in problems:
        user = [m["content"] for m in (p.chat or []) if m.get("role") == "user"]
        questions[p.problem_id] = user[-1] if user else p.prompt
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    texts = []
    for pid, text in zip(frame["problem_id"], frame["text"], strict=True):
        question = questions.get(pid, "")
        if getattr(tokenizer, "chat_template", None):
            texts.append(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": question}, {"role": "assistant", "content": text}],
                    tokenize=False,
                )
            )
        else:
            texts.append(f"{question}\n\n{text}")
    return texts


def selection_frame(
    verdicts: pl.DataFrame,
    samples: pl.DataFrame,
    problems: Sequence[Problem] | None = None,
    reward_model: str | None = None,
    reward_batch_size: int = 8,
) -> pl.DataFrame:
    """One row per judged sample of a run: problem_id, correct, extracted, mean_logprob (only when
    every sample with an answer has one) and reward (with a reward model)."""
    import polars as pl

    from monkeyflow.metrics.precision import mean_token_logprob, reward_scores

    judged = verdicts.filter(pl.col("status") != "error")
    drawn = samples.select(
        "problem_id", "sample_index", "text", "cumulative_logprob", "completion_tokens"
    )
    frame = judged.join(drawn, on=["problem_id", "sample_index"], how="left").sort(
        ["problem_id", "sample_index"]
    )
    frame = frame.with_columns(correct=pl.col("status") == "correct")
    mean_lp = mean_token_logprob(
        frame["cumulative_logprob"].fill_null(np.nan).to_numpy(),
        frame["completion_tokens"].fill_null(0).to_numpy(),
    )
    candidate = frame["extracted"].is_not_null().to_numpy()
    columns = ["problem_id", "correct", "extracted"]
    if frame.height and np.all(np.isfinite(mean_lp[candidate])):
        frame = frame.with_columns(mean_logprob=pl.Series(mean_lp))
        columns.append("mean_logprob")
    if reward_model:
        scores = np.full(frame.height, np.nan)
        idx = np.flatnonzero(candidate)
        if idx.size:
            part = frame[idx]
            texts = _reward_texts(problems, part, reward_model) if problems else list(part["text"])
            unique = list(dict.fromkeys(texts))  # a repeated (question, completion) is scored once
            scored = dict(
                zip(unique, reward_scores(unique, reward_model, reward_batch_size), strict=True)
            )
            scores[idx] = [scored[t] for t in texts]
        frame = frame.with_columns(reward=pl.Series(scores))
        columns.append("reward")
    return frame.select(columns)


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """Success rate per run, rule and k from `precision.draws` random k-subsets per problem.
    Majority vote always; the log-probability rules when the samples carry log-probabilities;
    the reward rules with `precision.reward_model`."""
    from monkeyflow.metrics.precision import selection_curves

    options = settings["precision"]
    frames = []
    for run in runs:
        frame = selection_frame(
            run.verdicts,
            run.samples,
            run.problems,
            options["reward_model"],
            options["reward_batch_size"],
        )
        if frame.height == 0:
            continue
        k_max = int(frame.group_by("problem_id").len()["len"].max())
        curves = selection_curves(
            frame,
            curve_ks(k_max, settings["points"]),
            draws=options["draws"],
            seed=settings["seed"],
        )
        frames.append(labelled(curves, run))
        print(
            f"[precision] {run.dataset} x {run.model}: rules "
            f"{curves['rule'].unique(maintain_order=True).to_list()}",
            file=sys.stderr,
        )
    return {"precision": stack(frames, PRECISION_SCHEMA)}


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import precision_figure

    return precision_figure(tables["precision"], order)


ANALYSIS = Analysis(
    name="precision",
    compute=compute,
    draw=draw,
    tables=("precision",),
    figure="precision",
    reads=("verdicts", "samples", "problems"),
    sample_fields=("text", "completion_tokens", "cumulative_logprob"),
    settings=("precision", "seed", "points"),
    html={"precision": "Precision: success rate of selection rules vs k"},
    category="Precision",
)
