"""cost: coverage vs total inference FLOPs and dollars (paper Fig. 4) and the cost to reach each
target coverage per model (paper Table 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monkeyflow.analysis.base import LABELS, Analysis, Runs, curve_ks

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from monkeyflow.metrics.cost import ModelShape
    from monkeyflow.plots.style import Order

COST_SCHEMA = {
    **LABELS,
    "k": int,
    "coverage": float,
    "flops": float,
    "dollars": float,
    "problems": int,
    "flops_fixed": float,
    "flops_per_sample": float,
    "dollars_per_sample": float,
    "note": str,
}
REACH_SCHEMA = {
    "dataset": str,
    "target": float,
    "model": str,
    "k": float,
    "flops": float,
    "dollars": float,
}


def model_shape_for(
    spec: Mapping[str, Any], architecture: Mapping[str, Any] | None
) -> tuple[ModelShape | None, str]:
    """The FLOPs shape of a model: `parameters`, `layers`, `d_model` from its config spec, the
    rest from its config.json (`architecture`, {} or None when unknown); (None, why) when unknown."""
    from monkeyflow.metrics.cost import ModelShape, parameter_count

    arch = architecture or {}
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


def compute(runs: Runs, settings: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """`cost`: per run and k, coverage, FLOPs and dollars for the whole dataset, and per-problem
    unit costs (`flops_fixed`: prompt FLOPs per problem, paid once with `cost.share_prompt`;
    `flops_per_sample`; `dollars_per_sample`) for the planner; `cost_to_reach`: Table 1 at the
    `cost.targets` coverages.

    FLOPs come from the measured prompt and completion tokens of every sample (`metrics.cost`),
    dollars from the model spec's `price`. Costs that cannot be computed are null with a `note`."""
    import polars as pl

    from monkeyflow.metrics.bootstrap import supported_ks
    from monkeyflow.metrics.cost import dollars_at_k, flops_at_k, price_of
    from monkeyflow.metrics.passk import pass_at_k

    share_prompt = settings["cost"]["share_prompt"]
    rows = []
    for run in runs:
        counts = run.counts.sort("problem_id")
        if counts.height == 0:
            continue
        n, c = counts["n"].to_numpy(), counts["c"].to_numpy()
        ks = supported_ks(
            n, curve_ks(int(n.max()), settings["points"]), counts["problem_id"].to_list()
        )
        if not ks:
            continue
        coverage = pass_at_k(n, c, ks).mean(axis=0)
        tokens = run.samples
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
            shape, why = model_shape_for(run.spec, run.architecture)
            if shape is None:
                notes.append(why)
            else:
                flops = flops_at_k(shape, tokens, ks, share_prompt).tolist()
                base = flops_at_k(shape, tokens, [0, 1], share_prompt)
                unit["flops_fixed"] = float(base[0]) / problems
                unit["flops_per_sample"] = float(base[1] - base[0]) / problems
            price = price_of(run.spec)
            if price:
                dollars = dollars_at_k(tokens, ks, *price).tolist()
                unit["dollars_per_sample"] = float(dollars_at_k(tokens, [1], *price)[0]) / problems
            else:
                notes.append("no price in the model spec")
        for j, k in enumerate(ks):
            rows.append(
                {
                    **run.labels,
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
    return {"cost": frame, "cost_to_reach": cost_to_reach_table(frame, settings["cost"]["targets"])}


def cost_to_reach_table(frame: pl.DataFrame, targets: Sequence[float]) -> pl.DataFrame:
    """Per dataset, target and model: the k, FLOPs and dollars at which coverage first reaches the
    target (interpolated in log k; null where it never does), and each cost relative to the
    cheapest model of the dataset (paper Table 1)."""
    import polars as pl

    from monkeyflow.metrics.cost import cost_to_reach

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
    reach = pl.DataFrame(rows, schema=REACH_SCHEMA).with_columns(
        pl.col("k", "flops", "dollars").fill_nan(None)
    )
    return reach.with_columns(
        relative_flops=pl.col("flops") / pl.col("flops").min().over("dataset", "target"),
        relative_dollars=pl.col("dollars") / pl.col("dollars").min().over("dataset", "target"),
    ).sort(["dataset", "target", "flops"], nulls_last=True)


def draw(tables: Mapping[str, pl.DataFrame], settings: Mapping[str, Any], order: Order) -> Figure:
    from monkeyflow.plots.analysis import coverage_flops_figure

    return coverage_flops_figure(tables["cost"], order)


ANALYSIS = Analysis(
    name="cost",
    compute=compute,
    draw=draw,
    tables=("cost", "cost_to_reach"),
    figure="coverage_flops",
    reads=("counts", "samples", "manifest", "spec"),
    settings=("cost", "points"),
    html={"cost_to_reach": "Cost to reach a coverage (FLOPs and dollars for the whole dataset)"},
    category="Cost",
)
