"""Inference cost of repeated sampling: FLOPs (paper Sec. 2.3) and dollars from token prices.

FLOPs per token at context length t: 2 * (parameters + 2 * layers * d_model * t).

Convention for whole sequences (exact positions, not the paper's single context length): the
token at 1-based position t of a sequence sees t tokens (itself and all before it), so a prompt
of P tokens costs sum_{t=1..P} and the C completion tokens after it cost sum_{t=P+1..P+C}:

    prompt FLOPs     = 2 N P + 2 L d P (P + 1)
    completion FLOPs = 2 N C + 2 L d C (2 P + C + 1)

With `share_prompt=True` (the paper's count, and what prefix caching does in vLLM) a problem's
prompt is paid once however many samples are drawn; otherwise once per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from monkeyflow.metrics.scaling import crossing_k


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs formula needs: parameter count, layers and model width (d_model)."""

    parameters: int
    layers: int
    d_model: int


def parameter_count(config: Mapping[str, Any]) -> int:
    """Parameters of a Llama-like decoder from its Hugging Face config.json dict.

    Embeddings (vocab x hidden), per layer q/k/v/o projections (k and v sized by the key-value
    heads; biases if `attention_bias`), a gated MLP of three hidden x intermediate matrices
    (biases if `mlp_bias`) and two RMSNorm weights, a final norm, and an output head unless
    `tie_word_embeddings`. A `num_parameters` key, if present, wins.
    """
    if "num_parameters" in config:
        return int(config["num_parameters"])
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        intermediate = int(config["intermediate_size"])
        vocab = int(config["vocab_size"])
        heads = int(config["num_attention_heads"])
    except KeyError as err:
        raise ValueError(
            f"config.json lacks {err.args[0]!r}: pass an explicit parameter count for models that "
            "are not Llama-like"
        ) from None
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    attention = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    if config.get("attention_bias", False):
        attention += q_out + 2 * kv_out + hidden
    mlp = 3 * hidden * intermediate
    if config.get("mlp_bias", False):
        mlp += 2 * intermediate + hidden
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden
    head = 0 if config.get("tie_word_embeddings", False) else vocab * hidden
    return embeddings + layers * per_layer + hidden + head


def model_shape(config: Mapping[str, Any], parameters: int | None = None) -> ModelShape:
    """ModelShape from a config.json dict; `parameters` overrides the computed count."""
    count = parameter_count(config) if parameters is None else int(parameters)
    return ModelShape(
        parameters=count,
        layers=int(config["num_hidden_layers"]),
        d_model=int(config["hidden_size"]),
    )


def flops_per_token(shape: ModelShape, context_length: float | np.ndarray) -> np.ndarray:
    """FLOPs for one token seeing `context_length` tokens: 2 (N + 2 L d t) (paper Sec. 2.3)."""
    t = np.asarray(context_length, dtype=np.float64)
    return 2.0 * (shape.parameters + 2.0 * shape.layers * shape.d_model * t)


def sequence_flops(
    shape: ModelShape,
    prompt_tokens: Sequence[int] | np.ndarray,
    completion_tokens: Sequence[int] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(prompt FLOPs, completion FLOPs) per sample, arrays [samples], exact positions (module doc)."""
    p = np.asarray(prompt_tokens, dtype=np.float64)
    c = np.asarray(completion_tokens, dtype=np.float64)
    n, ld = float(shape.parameters), float(shape.layers) * float(shape.d_model)
    prompt = 2.0 * n * p + 2.0 * ld * p * (p + 1.0)
    completion = 2.0 * n * c + 2.0 * ld * c * (2.0 * p + c + 1.0)
    return prompt, completion


def _per_problem_flops(shape: ModelShape, samples: pl.DataFrame) -> pl.DataFrame:
    prompt, completion = sequence_flops(
        shape, samples["prompt_tokens"].to_numpy(), samples["completion_tokens"].to_numpy()
    )
    return (
        samples.select("problem_id")
        .with_columns(prompt_flops=pl.Series(prompt), completion_flops=pl.Series(completion))
        .group_by("problem_id", maintain_order=True)
        .agg(
            prompt_flops=pl.col("prompt_flops").max(),
            mean_prompt_flops=pl.col("prompt_flops").mean(),
            mean_completion_flops=pl.col("completion_flops").mean(),
            total_prompt_flops=pl.col("prompt_flops").sum(),
            total_completion_flops=pl.col("completion_flops").sum(),
        )
    )


def total_flops(shape: ModelShape, samples: pl.DataFrame, share_prompt: bool = True) -> float:
    """FLOPs to generate every sample in `samples` (columns problem_id, prompt_tokens, completion_tokens)."""
    per = _per_problem_flops(shape, samples)
    prompt = per["prompt_flops"].sum() if share_prompt else per["total_prompt_flops"].sum()
    return float(prompt + per["total_completion_flops"].sum())


def flops_at_k(
    shape: ModelShape, samples: pl.DataFrame, ks: Sequence[int], share_prompt: bool = True
) -> np.ndarray:
    """Expected FLOPs to draw k samples for every problem: array [len(ks)], from measured token counts.

    Per problem: prompt FLOPs (once, or k times without `share_prompt`) + k x its mean completion
    FLOPs; summed over problems.
    """
    per = _per_problem_flops(shape, samples)
    k = np.asarray(list(ks), dtype=np.float64)
    completion = per["mean_completion_flops"].sum()
    if share_prompt:
        return per["prompt_flops"].sum() + k * completion
    return k * (per["mean_prompt_flops"].sum() + completion)


def price_of(spec: Mapping[str, Any]) -> tuple[float, float] | None:
    """A model spec's token prices ($ per million prompt, completion tokens), or None."""
    price = spec.get("price")
    if not price:
        return None
    return float(price["input"]), float(price["output"])


def dollar_cost(
    prompt_tokens: Sequence[int] | np.ndarray,
    completion_tokens: Sequence[int] | np.ndarray,
    input_price_per_million: float,
    output_price_per_million: float,
) -> float:
    """Dollars for the given samples at $/M input and $/M output tokens (every prompt billed)."""
    p = float(np.sum(np.asarray(prompt_tokens, dtype=np.float64)))
    c = float(np.sum(np.asarray(completion_tokens, dtype=np.float64)))
    return (p * input_price_per_million + c * output_price_per_million) / 1e6


def dollars_at_k(
    samples: pl.DataFrame,
    ks: Sequence[int],
    input_price_per_million: float,
    output_price_per_million: float,
) -> np.ndarray:
    """Expected dollars to draw k samples for every problem: array [len(ks)] (each call billed in full)."""
    per = samples.group_by("problem_id").agg(
        pl.col("prompt_tokens").mean().alias("p"), pl.col("completion_tokens").mean().alias("c")
    )
    per_sample = (
        per["p"].sum() * input_price_per_million + per["c"].sum() * output_price_per_million
    ) / 1e6
    return np.asarray(list(ks), dtype=np.float64) * per_sample


def cost_to_reach(
    ks: Sequence[float] | np.ndarray,
    coverage: Sequence[float] | np.ndarray,
    cost: Sequence[float] | np.ndarray,
    target: float,
) -> tuple[float, float]:
    """(k, cost) at which a curve first reaches `target` coverage; NaNs if it never does.

    k is interpolated in log k between measured points (so it may be fractional); the cost is
    interpolated linearly in k, as cost is affine in k. A curve already at or above the target at
    its smallest k reaches it there: (smallest k, its cost), an upper bound.
    """
    k = np.asarray(ks, dtype=np.float64)
    order = np.argsort(k)
    if k.size and np.asarray(coverage, dtype=np.float64)[order][0] >= target:
        return float(k[order][0]), float(np.asarray(cost, dtype=np.float64)[order][0])
    k_star = crossing_k(ks, coverage, target)
    if np.isnan(k_star):
        return float("nan"), float("nan")
    return k_star, float(np.interp(k_star, k[order], np.asarray(cost, dtype=np.float64)[order]))


def cost_table(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    target: float,
) -> pl.DataFrame:
    """Cost for each model to reach `target` coverage (paper Table 1 analogue).

    `curves` maps model -> (ks, coverage, cost at each k). Rows: model, target, k, cost,
    relative_cost (to the cheapest model that reaches the target), sorted cheapest first.
    """
    rows = []
    for model, (ks, cov, cost) in curves.items():
        k_star, dollars = cost_to_reach(ks, cov, cost, target)
        rows.append({"model": model, "target": float(target), "k": k_star, "cost": dollars})
    frame = pl.DataFrame(
        rows, schema={"model": pl.String, "target": pl.Float64, "k": pl.Float64, "cost": pl.Float64}
    )
    cheapest = frame["cost"].fill_nan(None).min()
    relative = frame["cost"] / cheapest if cheapest else frame["cost"] * np.nan
    return frame.with_columns(relative_cost=relative).sort("cost", nulls_last=True)
