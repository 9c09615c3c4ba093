"""Predictions: SWE-bench predictions files imported as the samples of a model (no model runs).

A predictions file is the SWE-bench harness's input: JSONL (one object a line) or a JSON list,
each object with `instance_id`, `model_patch` (the diff; null reads as no patch) and
`model_name_or_path`. Model spec: `{backend: predictions, path: <file | folder | glob>}`, with
optional `model_name` (only predictions of that `model_name_or_path`) and `missing` (what to do
for an instance with fewer predictions than the samples asked for).

Several predictions of one instance (from several files, or several lines) become sample indices
0..n-1 in a stable order: by `sample_index` where the rows carry one (then every row of that
instance must, without repeats), else by file path (sorted) and line. A problem with fewer
predictions than `num_samples` is an error naming the instances and their counts (`missing:
error`, the default), or gets empty patches marked `finish_reason: missing` (`missing: empty`,
the official harness's reading of an absent prediction: not resolved). Nothing is invented
beyond that, and the instances that lack predictions are listed on stderr either way.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any

from monkeyflow.records import Sample
from monkeyflow.sampling.base import Backend, ModelSpec, SamplingParams, ShardRequest

SUFFIXES = (".jsonl", ".json", ".jsonl.zst")


class PredictionsError(ValueError):
    """Predictions that cannot be read or cannot serve the requested samples."""


def prediction_files(path: str) -> list[Path]:
    """The files `path` names: one file, the data files in a folder (recursively), or a glob."""
    local = Path(path).expanduser()
    if local.is_file():
        return [local]
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise PredictionsError(
                f"{path}: folder holds no predictions files ({', '.join(SUFFIXES)})"
            )
        return files
    if any(c in path for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(local), recursive=True) if Path(p).is_file())
        if not files:
            raise PredictionsError(f"{path}: the glob matches no file")
        return files
    raise PredictionsError(f"{path}: no such predictions file, folder or glob")


def read_prediction_rows(path: Path) -> list[dict[str, Any]]:
    """The objects of one predictions file (JSONL or a JSON list)."""
    from monkeyflow.io import read_jsonl

    try:
        if path.name.endswith(".jsonl.zst"):
            rows = read_jsonl(path)
        else:
            text = path.read_text(encoding="utf-8")
            stripped = text.lstrip()
            if stripped.startswith("["):
                rows = json.loads(text)
            else:
                rows = []
                for lineno, line in enumerate(text.splitlines(), start=1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise PredictionsError(
                                f"{path}:{lineno}: not valid JSON ({exc.msg})"
                            ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictionsError(f"{path}: cannot read predictions: {exc}") from None
    if not isinstance(rows, list):
        raise PredictionsError(f"{path}: expected a JSON list of predictions or JSONL")
    return rows


def load_predictions(path: str, model_name: str | None = None) -> dict[str, list[str]]:
    """instance id -> its patches in sample-index order (see the module docstring)."""
    found: dict[str, list[tuple[tuple, str, bool]]] = {}
    for file_no, file in enumerate(prediction_files(path)):
        for line_no, row in enumerate(read_prediction_rows(file)):
            where = f"{file}: prediction {line_no + 1}"
            if not isinstance(row, dict):
                raise PredictionsError(f"{where}: expected an object, got {type(row).__name__}")
            instance = row.get("instance_id")
            if not isinstance(instance, str) or not instance:
                raise PredictionsError(f"{where}: field 'instance_id' must be a non-empty string")
            if "model_patch" not in row:
                raise PredictionsError(f"{where}: missing field 'model_patch'")
            patch = row["model_patch"]
            if patch is None:
                patch = ""
            if not isinstance(patch, str):
                raise PredictionsError(f"{where}: field 'model_patch' must be a string or null")
            if model_name is not None and row.get("model_name_or_path") != model_name:
                continue
            index = row.get("sample_index")
            if index is not None and (
                not isinstance(index, int) or isinstance(index, bool) or index < 0
            ):
                raise PredictionsError(f"{where}: field 'sample_index' must be an integer >= 0")
            order = (index if index is not None else -1, file_no, line_no)
            found.setdefault(instance, []).append((order, patch, index is not None))
    out: dict[str, list[str]] = {}
    for instance, entries in found.items():
        with_index = {has for _, _, has in entries}
        if len(with_index) > 1:
            raise PredictionsError(
                f"{path}: instance {instance}: some predictions have a sample_index and some do "
                "not; give every prediction of an instance one, or none"
            )
        if True in with_index:
            indices = [o[0] for o, _, _ in entries]
            if len(set(indices)) != len(indices):
                raise PredictionsError(f"{path}: instance {instance}: a sample_index repeats")
        out[instance] = [patch for _, patch, _ in sorted(entries, key=lambda e: e[0])]
    if not out:
        which = f" of model {model_name!r}" if model_name else ""
        raise PredictionsError(f"{path}: no predictions{which}")
    return out


class PredictionsBackend(Backend):
    """Serves imported SWE-bench predictions as samples (patch text, no token counts)."""

    needs_weights = False
    container = "analysis"
    options_schema = {
        "model_name": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": None,
            "description": "only the predictions whose model_name_or_path is this (null = all)",
        },
        "missing": {
            "type": "string",
            "enum": ["error", "empty"],
            "default": "error",
            "description": "an instance with fewer predictions than num_samples: fail naming it (error), or take empty patches marked finish_reason missing (empty: not resolved, as the official harness counts an absent prediction)",
        },
    }

    @classmethod
    def check_config(cls, spec: ModelSpec, options: dict[str, Any]) -> str | None:
        try:
            load_predictions(spec.path, options.get("model_name"))
        except PredictionsError as exc:
            return str(exc)
        return None

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        super().__init__(spec, weights)
        self.where = f"models.{spec.name} ({spec.path})"
        self.predictions = load_predictions(spec.path, self.options["model_name"])

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        out: list[Sample] = []
        short: dict[str, int] = {}
        for request in requests:
            problem_id = request.problem.problem_id
            patches = self.predictions.get(problem_id, [])
            if request.start + request.count > len(patches):
                short[problem_id] = len(patches)
            for i in range(request.start, request.start + request.count):
                if i < len(patches):
                    out.append(Sample(problem_id=problem_id, sample_index=i, text=patches[i]))
                else:
                    out.append(
                        Sample(
                            problem_id=problem_id, sample_index=i, text="", finish_reason="missing"
                        )
                    )
        if short:
            listed = ", ".join(f"{k} ({v})" for k, v in sorted(short.items())[:10])
            more = f" and {len(short) - 10} more" if len(short) > 10 else ""
            message = (
                f"{self.where}: {len(short)} instance(s) have fewer predictions than the samples "
                f"asked for (up to index {max(r.start + r.count for r in requests) - 1}): "
                f"{listed}{more}"
            )
            if self.options["missing"] == "error":
                raise PredictionsError(
                    message + "; lower sampling.num_samples, select other instances (dataset key "
                    "`rows`), or set `missing: empty` on the model to score them as no patch"
                )
            print(f"[predictions] {message}; scored as empty patches", file=sys.stderr)
        return out
