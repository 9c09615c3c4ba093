"""The one runner behind every analysis rule: read the runs once, compute, write, draw.

`run_analysis(name, entries, settings, inputs, outputs)` reads what the analysis declares from
the paths in `entries` (one dict per experiment: dataset, model, run and the paths or values of
its inputs) and in `inputs` (table name -> parquet path), calls `compute`, writes each table as
parquet (and as HTML where the analysis renders it) and saves the figure `draw` returns. Every
file is written atomically (`monkeyflow.io`).

`outputs` keys: a table's name (its parquet file), `<table>_html` (its HTML rendering) and
`figure` (the PNG). When `inputs` already hold every table of the analysis, nothing is
computed: the figure is drawn from those files (the coverage figure's own rule).
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from monkeyflow.analysis.base import ANALYSES, SAMPLE_FIELDS, Analysis, RunData, Runs
from monkeyflow.io import atomic_path, read_jsonl, read_parquet, write_parquet
from monkeyflow.plots.style import Order, save_figure

Path_ = str | os.PathLike


def html_key(table: str) -> str:
    """The outputs key of a table's HTML rendering."""
    return f"{table}_html"


# -- reading -------------------------------------------------------------------------------------
def read_samples(paths: Sequence[Path_], fields: Sequence[str]) -> pl.DataFrame:
    """problem_id, sample_index and `fields` of every sample in the shards (missing values null)."""
    columns = ["problem_id", "sample_index", *fields]
    rows = [
        {"problem_id": r["problem_id"], "sample_index": r["sample_index"]}
        | {f: r.get(f) for f in fields}
        for path in paths
        for r in read_jsonl(path)
    ]
    return pl.DataFrame(rows, schema={c: SAMPLE_FIELDS[c] for c in columns})


def _hub_config(repo_id: str) -> dict[str, Any]:
    """config.json of a hub model from the local Hugging Face cache ({} if not cached)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id=repo_id, filename="config.json")
        return json.loads(Path(found).read_text()) if isinstance(found, str) else {}
    except Exception:  # noqa: BLE001 - not a hub id, no cache, no package: the cost is unknown
        return {}


def read_architecture(manifest: Path_ | None) -> dict[str, Any]:
    """The config.json of the model a prepared model's manifest (file or folder) names: a local
    folder, or a hub id looked up in the local cache; {} when unknown."""
    from monkeyflow.models import model_architecture, read_manifest

    if not manifest:
        return {}
    try:
        weights = read_manifest(manifest)["weights"]
        return model_architecture(weights) or _hub_config(weights)
    except (OSError, KeyError, ValueError) as exc:
        print(f"[cost] cannot read the architecture named by {manifest}: {exc}", file=sys.stderr)
        return {}


def _need(entry: Mapping[str, Any], kind: str, analysis: Analysis) -> Any:
    if entry.get(kind) is None:
        raise ValueError(
            f"analysis {analysis.name!r} reads {kind!r}, but the run entry of {entry.get('dataset')}"
            f" x {entry.get('model')} names none; give every entry its {kind!r}"
        )
    return entry[kind]


def read_run(entry: Mapping[str, Any], analysis: Analysis) -> RunData:
    """One run entry's declared inputs, read into memory."""
    from monkeyflow.stages import read_problems, read_verdict_table

    reads = set(analysis.reads)
    data: dict[str, Any] = {k: entry[k] for k in ("dataset", "model", "run")}
    if "counts" in reads:
        data["counts"] = read_parquet(_need(entry, "counts", analysis))
    if "samples" in reads:
        data["samples"] = read_samples(_need(entry, "samples", analysis), analysis.sample_fields)
    if "verdicts" in reads:
        data["verdicts"] = read_verdict_table(_need(entry, "verdicts", analysis))
    if "problems" in reads and entry.get("problems"):
        data["problems"] = tuple(read_problems(entry["problems"]))
    if "manifest" in reads:
        data["architecture"] = read_architecture(entry.get("manifest"))
    if "spec" in reads:
        data["spec"] = dict(entry.get("spec") or {})
    if "ks" in reads:
        data["ks"] = tuple(int(k) for k in _need(entry, "ks", analysis))
    return RunData(**data)


def read_runs(
    analysis: Analysis, entries: Sequence[Mapping[str, Any]], tables: Mapping[str, Path_]
) -> Runs:
    """The runs and the other analyses' tables `analysis` reads."""
    missing = [t for t in analysis.reads_tables if t not in tables]
    if missing:
        raise ValueError(f"analysis {analysis.name!r} reads the tables {missing}: give their paths")
    return Runs(
        tuple(read_run(entry, analysis) for entry in entries),
        {t: read_parquet(tables[t]) for t in analysis.reads_tables},
    )


# -- writing -------------------------------------------------------------------------------------
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


def write_html_table(frame: pl.DataFrame, path: Path_, title: str) -> None:
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


# -- the runner ----------------------------------------------------------------------------------
def _settings(analysis: Analysis, settings: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in analysis.settings if k not in settings]
    if missing:
        raise ValueError(
            f"analysis {analysis.name!r} uses the settings {missing}, which were not given "
            "(pass monkeyflow.config.analysis_settings(config), which fills in every default)"
        )
    return {k: settings[k] for k in analysis.settings}


def compute_tables(
    analysis: Analysis, runs: Runs, settings: Mapping[str, Any]
) -> dict[str, pl.DataFrame]:
    """`analysis.compute`, checked to return exactly its declared tables (and figure data) as
    DataFrames."""
    tables = dict(analysis.compute(runs, settings))
    declared = {*analysis.tables, *analysis.figure_data}
    if set(tables) != declared:
        raise ValueError(
            f"analysis {analysis.name!r} computed the tables {sorted(tables)} but declares "
            f"{sorted(declared)}"
        )
    for name, frame in tables.items():
        if not isinstance(frame, pl.DataFrame):
            raise TypeError(
                f"analysis {analysis.name!r}: table {name!r} is a {type(frame).__name__}"
            )
    return {name: tables[name] for name in (*analysis.tables, *analysis.figure_data)}


def run_analysis(
    analysis: str | Analysis,
    entries: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    inputs: Mapping[str, Path_],
    outputs: Mapping[str, Path_],
) -> dict[str, pl.DataFrame]:
    """Read, compute, write every table named in `outputs` and draw its figure; returns the
    tables (see the module docstring for the keys of `inputs` and `outputs`)."""
    analysis = ANALYSES.get(analysis) if isinstance(analysis, str) else analysis
    allowed = {
        *analysis.tables,
        *map(html_key, analysis.html),
        *(["figure"] if analysis.figure else []),
    }
    unknown = sorted(set(outputs) - allowed)
    if unknown:
        raise ValueError(
            f"analysis {analysis.name!r} writes no {unknown}; its outputs are {sorted(allowed)}"
        )
    chosen = _settings(analysis, settings)
    if all(t in inputs for t in analysis.tables):
        tables = {t: read_parquet(inputs[t]) for t in analysis.tables}
        read = {t: read_parquet(inputs[t]) for t in analysis.reads_tables}
    else:
        missing = [t for t in analysis.tables if t not in outputs]
        if missing:
            raise ValueError(f"analysis {analysis.name!r}: no output path for the tables {missing}")
        runs = read_runs(analysis, entries, inputs)
        read = dict(runs.tables)
        tables = compute_tables(analysis, runs, chosen)
        for name in analysis.tables:
            frame = tables[name]
            write_parquet(outputs[name], frame)
            if html_key(name) in outputs:
                title = analysis.html[name].format(**chosen)
                write_html_table(frame, outputs[html_key(name)], title)
            shown = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
            with pl.Config(tbl_rows=20, tbl_cols=-1, tbl_width_chars=160):
                print(f"{name}:\n{frame.select(shown)}")
    if "figure" in outputs:
        fig = analysis.draw({**read, **tables}, chosen, Order.of(entries))
        save_figure(fig, outputs["figure"])
    return {name: tables[name] for name in analysis.tables}
