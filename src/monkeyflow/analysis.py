"""The paper's analysis as stages over files: coverage with intervals, scaling fits, family
alignment, cost, precision of selection rules and the budget planner.

Each stage takes `runs` (one dict per experiment: dataset, model, run and the paths of its counts,
sample and verdict shards, problems and prepared model's manifest, plus the model's config spec),
writes a parquet table, an HTML rendering of it (for `snakemake --report`) and a PNG figure,
and returns the table. The math lives in `monkeyflow.metrics`, the drawing in
`monkeyflow.plots.analysis`; this module reads files, labels rows and wires them together.
"""

from __future__ import annotations

import html
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from monkeyflow.io import atomic_path, read_jsonl, read_parquet, write_parquet
from monkeyflow.metrics.bootstrap import COVERAGE_COLUMNS, coverage_table, supported_ks
from monkeyflow.metrics.cost import (
    ModelShape,
    cost_to_reach,
    dollars_at_k,
    flops_at_k,
    parameter_count,
    price_of,
)
from monkeyflow.metrics.passk import pass_at_k
from monkeyflow.metrics.planner import plan_budgets
from monkeyflow.metrics.precision import mean_token_logprob, reward_scores, selection_curves
from monkeyflow.metrics.scaling import PowerLawFit, extrapolate, family_alignment, fit_scaling
from monkeyflow.plots import analysis as figures
from monkeyflow.plots.coverage import save_figure

Run = Mapping[str, Any]
UNITS = ("samples", "flops", "dollars")


# -- settings ------------------------------------------------------------------------------------
def curve_ks(k_max: int, points: int) -> list[int]:
    """About `points` integers log-spaced from 1 to k_max (both included)."""
    if k_max < 1:
        return []
    ks = np.unique(np.round(np.geomspace(1, k_max, max(points, 2))).astype(int))
    return sorted({*map(int, ks), int(k_max)})


def _labels(entry: Run) -> dict[str, str]:
    return {"dataset": entry["dataset"], "model": entry["model"], "run": entry["run"]}


def _read_counts(entry: Run) -> pl.DataFrame:
    return read_parquet(entry["counts"]).sort("problem_id")


# -- outputs -------------------------------------------------------------------------------------
def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value)


def write_html_table(frame: pl.DataFrame, path: str | os.PathLike, title: str) -> None:
    """A plain HTML table of `frame` (list columns left out) for the report."""
    columns = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(v))}</td>" for v in row) + "</tr>"
        for row in frame.select(columns).iter_rows()
    )
    text = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
        f"</style></head><body><h3>{html.escape(title)}</h3>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
        f"<p>{frame.height} rows</p></body></html>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write(
    frame: pl.DataFrame, table: str | os.PathLike, html_path: str | os.PathLike | None, title: str
) -> None:
    write_parquet(table, frame)
    if html_path is not None:
        write_html_table(frame, html_path, title)


def _save(fig, path: str | os.PathLike | None) -> None:
    if path is not None:
        save_figure(fig, path)


# -- coverage with bootstrap intervals ---------------------------------------------------------
COVERAGE_SCHEMA = {"dataset": pl.String, "model": pl.String, "run": pl.String, **COVERAGE_COLUMNS}


def coverage_ci(
    runs: Sequence[Run],
    out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    points: int = 24,
) -> pl.DataFrame:
    """Coverage at log-spaced k with a bootstrap interval over problems, per run.

    k runs up to the fewest samples any problem of the run has; a warning names the problems
    that lack samples for larger k."""
    frames = []
    for entry in runs:
        counts = _read_counts(entry)
        if counts.height == 0:
            continue
        n = counts["n"].to_numpy()
        table = coverage_table(
            n,
            counts["c"].to_numpy(),
            curve_ks(int(n.max()), points),
            level,
            resamples,
            seed,
            problem_ids=counts["problem_id"].to_list(),
        )
        frames.append(table.with_columns(**{k: pl.lit(v) for k, v in _labels(entry).items()}))
    frame = (
        pl.concat(frames).select(list(COVERAGE_SCHEMA))
        if frames
        else pl.DataFrame(schema=COVERAGE_SCHEMA)
    )
    _write(frame, out, html_out, f"Coverage with {level:.0%} bootstrap intervals")
    if figure_out is not None:
        panels: dict[str, dict[str, pl.DataFrame]] = {}
        for (dataset, model), part in frame.group_by(["dataset", "model"], maintain_order=True):
            panels.setdefault(dataset, {})[model] = part
        fig = (
            figures.coverage_panels_figure(panels)
            if panels
            else figures.message_figure("no counts")
        )
        _save(fig, figure_out)
    return frame


# -- scaling-law fits ----------------------------------------------------------------------------
FIT_SCHEMA = {
    "dataset": pl.String,
    "model": pl.String,
    "run": pl.String,
    "a": pl.Float64,
    "b": pl.Float64,
    "mae": pl.Float64,
    "k_min": pl.Int64,
    "k_max": pl.Int64,
    "points": pl.Int64,
    "problems": pl.Int64,
    "extrapolate_to": pl.Int64,
    "coverage_at_extrapolate": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "level": pl.Float64,
    "note": pl.String,
    "a_boot": pl.List(pl.Float64),
    "b_boot": pl.List(pl.Float64),
}


def scaling_fits(
    runs: Sequence[Run],
    out: str | os.PathLike,
    curve_out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    k_min: int = 1,
    k_max: int | None = None,
    resamples: int = 200,
    extrapolate_to: int | None = None,
    level: float = 0.95,
    seed: int = 0,
    points: int = 24,
) -> pl.DataFrame:
    """Fit log(coverage) = a k^b per run (paper Eq. 2-3) and extrapolate it with a bootstrap band.

    `out` gets one row per run (a, b, mean absolute error, coverage at `extrapolate_to` with its
    band, the bootstrap refits as lists); `curve_out` the fitted/extrapolated curve per run."""
    rows, curves, observed = [], [], []
    for entry in runs:
        labels = _labels(entry)
        counts = _read_counts(entry)
        if counts.height == 0:
            continue
        n, c = counts["n"].to_numpy(), counts["c"].to_numpy()
        ids = counts["problem_id"].to_list()
        ks = curve_ks(int(n.max()), points)
        kept = supported_ks(n, ks, ids)
        if kept:
            cov = pass_at_k(n, c, kept).mean(axis=0)
            observed += [
                {**labels, "k": k, "coverage": float(v)} for k, v in zip(kept, cov, strict=True)
            ]
        target = extrapolate_to
        try:
            fit = fit_scaling(n, c, ks, k_min, k_max, level, resamples, seed, ids)
        except ValueError as exc:
            print(
                f"[scaling] {labels['dataset']} x {labels['model']}: no fit: {exc}", file=sys.stderr
            )
            rows.append(
                {**labels, "problems": int(len(n)), "level": level, "note": f"no fit: {exc}"}
            )
            continue
        target = target or 10 * fit.k_max
        curve = extrapolate(fit, np.unique(np.geomspace(1, max(target, fit.k_max), 60)))
        curves.append(curve.with_columns(**{k: pl.lit(v) for k, v in labels.items()}))
        at = extrapolate(fit, [target])
        rows.append(
            {
                **labels,
                "a": fit.a,
                "b": fit.b,
                "mae": fit.mae,
                "k_min": fit.k_min,
                "k_max": fit.k_max,
                "points": fit.points,
                "problems": int(len(n)),
                "extrapolate_to": int(target),
                "coverage_at_extrapolate": float(at["coverage"][0]),
                "lo": float(at["lo"][0]),
                "hi": float(at["hi"][0]),
                "level": level,
                "note": "",
                "a_boot": fit.a_boot.tolist(),
                "b_boot": fit.b_boot.tolist(),
            }
        )
    frame = pl.DataFrame(rows, schema=FIT_SCHEMA)
    curve_schema = {
        "dataset": pl.String,
        "model": pl.String,
        "run": pl.String,
        "k": pl.Float64,
        "coverage": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "extrapolated": pl.Boolean,
    }
    curve_frame = (
        pl.concat(curves).select(list(curve_schema))
        if curves
        else pl.DataFrame(schema=curve_schema)
    )
    write_parquet(curve_out, curve_frame)
    _write(frame, out, html_out, "Scaling-law fits log(coverage) = a k^b")
    if figure_out is not None:
        obs = pl.DataFrame(
            observed,
            schema={
                "dataset": pl.String,
                "model": pl.String,
                "run": pl.String,
                "k": pl.Int64,
                "coverage": pl.Float64,
            },
        )
        fig = (
            figures.scaling_figure(obs, curve_frame)
            if obs.height
            else figures.message_figure("no coverage to fit")
        )
        _save(fig, figure_out)
    return frame


def fit_from_row(row: Mapping[str, Any]) -> PowerLawFit:
    """A PowerLawFit back from a row of the fits table."""
    return PowerLawFit(
        a=row["a"],
        b=row["b"],
        mae=row["mae"],
        k_min=row["k_min"],
        k_max=row["k_max"],
        points=row["points"],
        a_boot=np.asarray(row["a_boot"] or [], dtype=np.float64),
        b_boot=np.asarray(row["b_boot"] or [], dtype=np.float64),
        level=row["level"],
    )


# -- family alignment ----------------------------------------------------------------------------
def alignment(
    coverage: str | os.PathLike,
    out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    anchor: float | None = None,
) -> pl.DataFrame:
    """Per dataset, the log-k shift putting every model's coverage curve through (1, anchor)
    (paper Fig. 6), from the coverage table of `coverage_ci`."""
    table = read_parquet(coverage)
    frames = []
    for (dataset,), part in table.group_by(["dataset"], maintain_order=True):
        curves = {
            model: (g["k"].to_numpy(), g["coverage"].to_numpy())
            for (model,), g in part.sort("k").group_by(["model"], maintain_order=True)
        }
        frames.append(family_alignment(curves, anchor).with_columns(dataset=pl.lit(dataset)))
    schema = {
        "dataset": pl.String,
        "model": pl.String,
        "anchor": pl.Float64,
        "k_anchor": pl.Float64,
        "log_k_shift": pl.Float64,
    }
    frame = pl.concat(frames).select(list(schema)) if frames else pl.DataFrame(schema=schema)
    _write(frame, out, html_out, "Family alignment: horizontal shift in log k")
    if figure_out is not None:
        fig = (
            figures.alignment_panels_figure(table, frame)
            if table.height
            else figures.message_figure("no coverage curves")
        )
        _save(fig, figure_out)
    return frame


# -- cost ----------------------------------------------------------------------------------------
def _hub_config(repo_id: str) -> dict[str, Any]:
    """config.json of a hub model from the local Hugging Face cache ({} if not cached)."""
    try:
        import json

        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id=repo_id, filename="config.json")
        return json.loads(Path(found).read_text()) if isinstance(found, str) else {}
    except Exception:  # noqa: BLE001 - not a hub id, no cache, no package: the cost is unknown
        return {}


def model_shape_for(
    spec: Mapping[str, Any], manifest: str | os.PathLike | None
) -> tuple[ModelShape | None, str]:
    """The FLOPs shape of a model: `parameters`, `layers`, `d_model` from its config spec, the rest
    from its config.json (the prepared model's manifest file or folder names where: a local folder,
    or a hub id looked up in the local cache); (None, why) when unknown."""
    from monkeyflow.models import model_architecture, read_manifest

    arch: dict[str, Any] = {}
    if manifest:
        try:
            weights = read_manifest(manifest)["weights"]
            arch = model_architecture(weights) or _hub_config(weights)
        except (OSError, KeyError, ValueError) as exc:
            print(
                f"[cost] cannot read the architecture named by {manifest}: {exc}", file=sys.stderr
            )
    layers = spec.get("layers") or arch.get("num_hidden_layers")
    d_model = spec.get("d_model") or arch.get("hidden_size")
    parameters = spec.get("parameters")
    if parameters is None and arch:
        try:
            parameters = parameter_count(arch)
        except ValueError:
            parameters = None
    if not (parameters and layers and d_model):
        return None, "architecture unknown: set parameters, layers and d_model in the model spec"
    return ModelShape(int(parameters), int(layers), int(d_model)), ""


def _token_frame(paths: Sequence[str | os.PathLike]) -> pl.DataFrame:
    rows = [
        {
            "problem_id": r["problem_id"],
            "sample_index": r["sample_index"],
            "prompt_tokens": r.get("prompt_tokens"),
            "completion_tokens": r.get("completion_tokens"),
        }
        for path in paths
        for r in read_jsonl(path)
    ]
    return pl.DataFrame(
        rows,
        schema={
            "problem_id": pl.String,
            "sample_index": pl.Int64,
            "prompt_tokens": pl.Int64,
            "completion_tokens": pl.Int64,
        },
    )


COST_SCHEMA = {
    "dataset": pl.String,
    "model": pl.String,
    "run": pl.String,
    "k": pl.Int64,
    "coverage": pl.Float64,
    "flops": pl.Float64,
    "dollars": pl.Float64,
    "problems": pl.Int64,
    "flops_fixed": pl.Float64,
    "flops_per_sample": pl.Float64,
    "dollars_per_sample": pl.Float64,
    "note": pl.String,
}


def cost(
    runs: Sequence[Run],
    out: str | os.PathLike,
    reach_out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    targets: Sequence[float] = (0.25, 0.5),
    share_prompt: bool = True,
    points: int = 24,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Coverage vs total inference FLOPs and dollars (paper Fig. 4) and the cost to reach each
    target coverage per model (paper Table 1).

    FLOPs come from the measured prompt and completion tokens of every sample (`metrics.cost`),
    dollars from the model spec's `price`. Per-problem unit costs (`flops_fixed`: prompt FLOPs
    per problem, paid once with `share_prompt`; `flops_per_sample`; `dollars_per_sample`) feed the
    planner. Costs that cannot be computed are null with a `note`."""
    rows = []
    for entry in runs:
        labels = _labels(entry)
        counts = _read_counts(entry)
        if counts.height == 0:
            continue
        n, c = counts["n"].to_numpy(), counts["c"].to_numpy()
        ks = supported_ks(n, curve_ks(int(n.max()), points), counts["problem_id"].to_list())
        if not ks:
            continue
        coverage = pass_at_k(n, c, ks).mean(axis=0)
        tokens = _token_frame(entry["samples"])
        problems = tokens["problem_id"].n_unique()
        notes = []
        flops = dollars = [None] * len(ks)
        unit = {"flops_fixed": None, "flops_per_sample": None, "dollars_per_sample": None}
        if (
            tokens.height == 0
            or tokens["prompt_tokens"].null_count()
            or tokens["completion_tokens"].null_count()
        ):
            notes.append("token counts unknown (the backend gave none)")
        else:
            shape, why = model_shape_for(entry.get("spec") or {}, entry.get("manifest"))
            if shape is None:
                notes.append(why)
            else:
                flops = flops_at_k(shape, tokens, ks, share_prompt).tolist()
                base = flops_at_k(shape, tokens, [0, 1], share_prompt)
                unit["flops_fixed"] = float(base[0]) / problems
                unit["flops_per_sample"] = float(base[1] - base[0]) / problems
            price = price_of(entry.get("spec") or {})
            if price:
                dollars = dollars_at_k(tokens, ks, *price).tolist()
                unit["dollars_per_sample"] = float(dollars_at_k(tokens, [1], *price)[0]) / problems
            else:
                notes.append("no price in the model spec")
        for j, k in enumerate(ks):
            rows.append(
                {
                    **labels,
                    "k": k,
                    "coverage": float(coverage[j]),
                    "flops": flops[j],
                    "dollars": dollars[j],
                    "problems": int(len(n)),
                    **unit,
                    "note": "; ".join(notes),
                }
            )
    frame = pl.DataFrame(rows, schema=COST_SCHEMA)
    reach = cost_to_reach_table(frame, targets)
    write_parquet(out, frame)
    _write(
        reach,
        reach_out,
        html_out,
        "Cost to reach a coverage (FLOPs and dollars for the whole dataset)",
    )
    if figure_out is not None:
        known = frame.filter(pl.col("flops").is_not_null())
        fig = (
            figures.coverage_flops_figure(known.select("dataset", "model", "flops", "coverage"))
            if known.height
            else figures.message_figure("FLOPs unknown for every model")
        )
        _save(fig, figure_out)
    return frame, reach


def cost_to_reach_table(frame: pl.DataFrame, targets: Sequence[float]) -> pl.DataFrame:
    """Per dataset, target and model: the k, FLOPs and dollars at which coverage first reaches the
    target (interpolated in log k; null where it never does), and each cost relative to the
    cheapest model of the dataset (paper Table 1)."""
    rows = []
    for (dataset, model), part in frame.sort("k").group_by(
        ["dataset", "model"], maintain_order=True
    ):
        ks, cov = part["k"].to_numpy(), part["coverage"].to_numpy()
        for target in targets:
            row = {"dataset": dataset, "target": float(target), "model": model}
            for name in ("flops", "dollars"):
                values = part[name]
                if values.null_count():
                    k_star, value = cost_to_reach(ks, cov, ks, target)[0], float("nan")
                else:
                    k_star, value = cost_to_reach(ks, cov, values.to_numpy(), target)
                row["k"] = k_star
                row[name] = value
            rows.append(row)
    schema = {
        "dataset": pl.String,
        "target": pl.Float64,
        "model": pl.String,
        "k": pl.Float64,
        "flops": pl.Float64,
        "dollars": pl.Float64,
    }
    reach = pl.DataFrame(rows, schema=schema).with_columns(
        pl.col("k", "flops", "dollars").fill_nan(None)
    )
    return reach.with_columns(
        relative_flops=pl.col("flops") / pl.col("flops").min().over("dataset", "target"),
        relative_dollars=pl.col("dollars") / pl.col("dollars").min().over("dataset", "target"),
    ).sort(["dataset", "target", "flops"], nulls_last=True)


# -- precision -----------------------------------------------------------------------------------
def _reward_texts(
    problems_path: str | os.PathLike, frame: pl.DataFrame, model_path: str
) -> list[str]:
    from transformers import AutoTokenizer

    from monkeyflow.stages import read_problems

    questions = {}
    for p in read_problems(problems_path):
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
    verdicts: Sequence[str | os.PathLike],
    samples: Sequence[str | os.PathLike],
    problems: str | os.PathLike | None = None,
    reward_model: str | None = None,
    reward_batch_size: int = 8,
) -> pl.DataFrame:
    """One row per judged sample of a run: problem_id, correct, extracted, mean_logprob (only when
    every sample with an answer has one) and reward (with a reward model)."""
    from monkeyflow.stages import read_verdict_table

    judged = read_verdict_table(verdicts).filter(pl.col("status") != "error")
    rows = [
        {
            "problem_id": r["problem_id"],
            "sample_index": r["sample_index"],
            "text": r["text"],
            "cumulative_logprob": r.get("cumulative_logprob"),
            "completion_tokens": r.get("completion_tokens"),
        }
        for path in samples
        for r in read_jsonl(path)
    ]
    drawn = pl.DataFrame(
        rows,
        schema={
            "problem_id": pl.String,
            "sample_index": pl.Int64,
            "text": pl.String,
            "cumulative_logprob": pl.Float64,
            "completion_tokens": pl.Int64,
        },
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


PRECISION_SCHEMA = {
    "dataset": pl.String,
    "model": pl.String,
    "run": pl.String,
    "rule": pl.String,
    "k": pl.Int64,
    "success": pl.Float64,
    "problems": pl.Int64,
}


def precision(
    runs: Sequence[Run],
    out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    draws: int = 200,
    seed: int = 0,
    reward_model: str | None = None,
    reward_batch_size: int = 8,
    points: int = 24,
) -> pl.DataFrame:
    """Success rate vs k of the selection rules under the coverage ceiling (paper Fig. 7), from
    `draws` random k-subsets per problem. Majority vote always; the log-probability rules when the
    samples carry log-probabilities; the reward rules with a reward model."""
    frames = []
    for entry in runs:
        frame = selection_frame(
            entry["verdicts"],
            entry["samples"],
            entry.get("problems"),
            reward_model,
            reward_batch_size,
        )
        if frame.height == 0:
            continue
        k_max = int(frame.group_by("problem_id").len()["len"].max())
        curves = selection_curves(frame, curve_ks(k_max, points), draws=draws, seed=seed)
        frames.append(curves.with_columns(**{k: pl.lit(v) for k, v in _labels(entry).items()}))
        print(
            f"[precision] {entry['dataset']} x {entry['model']}: rules "
            f"{curves['rule'].unique(maintain_order=True).to_list()}",
            file=sys.stderr,
        )
    table = (
        pl.concat(frames).select(list(PRECISION_SCHEMA))
        if frames
        else pl.DataFrame(schema=PRECISION_SCHEMA)
    )
    _write(table, out, html_out, "Precision: success rate of selection rules vs k")
    if figure_out is not None:
        panels = {
            f"{d} · {m}": part
            for (d, m), part in table.group_by(["dataset", "model"], maintain_order=True)
        }
        fig = (
            figures.precision_panels_figure(panels)
            if panels
            else figures.message_figure("no verdicts")
        )
        _save(fig, figure_out)
    return table


# -- budget planner ------------------------------------------------------------------------------
def load_fits(path: str | os.PathLike) -> dict[tuple[str, str], PowerLawFit]:
    """(dataset, model) -> fit, from the fits table (runs without a fit left out)."""
    return {
        (row["dataset"], row["model"]): fit_from_row(row)
        for row in read_parquet(path).iter_rows(named=True)
        if row["a"] is not None and np.isfinite(row["a"])
    }


def unit_costs(path: str | os.PathLike) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    """unit -> (dataset, model) -> (cost per sample, fixed cost), per problem, from the cost table.
    Samples cost 1 each; FLOPs and dollars only where the cost table knows them."""
    table = read_parquet(path).unique(["dataset", "model"], keep="first", maintain_order=True)
    out: dict[str, dict[tuple[str, str], tuple[float, float]]] = {u: {} for u in UNITS}
    for row in table.iter_rows(named=True):
        key = (row["dataset"], row["model"])
        out["samples"][key] = (1.0, 0.0)
        if row["flops_per_sample"] is not None:
            out["flops"][key] = (row["flops_per_sample"], row["flops_fixed"] or 0.0)
        if row["dollars_per_sample"] is not None:
            out["dollars"][key] = (row["dollars_per_sample"], 0.0)
    return out


PLAN_SCHEMA = {
    "dataset": pl.String,
    "unit": pl.String,
    "budget": pl.Float64,
    "rank": pl.Int64,
    "model": pl.String,
    "k": pl.Int64,
    "cost": pl.Float64,
    "coverage": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
    "p_best": pl.Float64,
    "extrapolated": pl.Boolean,
}


def plan(
    fits: Mapping[tuple[str, str], PowerLawFit],
    costs: Mapping[str, Mapping[tuple[str, str], tuple[float, float]]],
    budgets: Mapping[str, Sequence[float]],
    dataset: str | None = None,
) -> pl.DataFrame:
    """For every dataset, unit and budget (per problem): the models ranked by the coverage their
    fit predicts at the largest k the budget buys, with the bootstrap band and p_best."""
    frames = []
    datasets = sorted({d for d, _ in fits} if dataset is None else {dataset})
    for ds in datasets:
        for unit, values in budgets.items():
            priced = {m: costs.get(unit, {}).get((ds, m)) for d, m in fits if d == ds}
            priced = {m: v for m, v in priced.items() if v is not None}
            if not values or not priced:
                continue
            frame = plan_budgets(
                {m: fits[(ds, m)] for m in priced},
                {m: v[0] for m, v in priced.items()},
                list(values),
                {m: v[1] for m, v in priced.items()},
            )
            frames.append(frame.with_columns(dataset=pl.lit(ds), unit=pl.lit(unit)))
    return (
        pl.concat(frames).select(list(PLAN_SCHEMA)) if frames else pl.DataFrame(schema=PLAN_SCHEMA)
    )


def plan_stage(
    fits_path: str | os.PathLike,
    cost_path: str | os.PathLike,
    out: str | os.PathLike,
    html_out: str | os.PathLike | None = None,
    figure_out: str | os.PathLike | None = None,
    budgets: Mapping[str, Sequence[float]] | None = None,
) -> pl.DataFrame:
    """The planner over the configured budgets (table) and over a dense budget range (figure)."""
    budgets = dict(budgets or {"samples": [1, 10, 100, 1000]})
    fits, costs = load_fits(fits_path), unit_costs(cost_path)
    table = plan(fits, costs, budgets)
    _write(table, out, html_out, "Budget planner: best model and k per budget (per problem)")
    if figure_out is not None:
        dense = {u: np.geomspace(min(v), max(v), 40).tolist() for u, v in budgets.items() if v}
        curve = plan(fits, costs, dense)
        curve = curve.with_columns(label=pl.col("dataset") + " · " + pl.col("model"))
        fig = (
            figures.plan_figure(curve)
            if curve.height
            else figures.message_figure(
                "No scaling fit to plan with: every run has fewer than two k with coverage > 0."
            )
        )
        _save(fig, figure_out)
    return table
