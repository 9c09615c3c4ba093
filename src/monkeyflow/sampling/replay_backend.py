"""Replay: samples someone already drew, with their correctness labels, instead of a model.

Reads rows in the layout of the paper's released samples (`ScalingIntelligence/monkey_business`
on the Hugging Face hub, configs such as `GSM8K_Llama-3-8B-Instruct`, split `test`): one row per
problem with `samples` (list of completions), `is_corrects` (list of bools, same length),
`gt_answer` and `orig_dset_idx`, the problem's row index in the original test split.

Model spec: `{backend: replay, path: <hub id | local folder | local file>, config: <name>}`,
optional `split` (default `test`), `labels` (default true: the released labels decide
correctness; false: our verifier judges the text) and `tokenizer` (a Hugging Face tokenizer to
count prompt and completion tokens with, for cost; without it token counts stay unknown).

Problems are matched by row index: our problem `gsm8k-00042` (metadata `row` 42) takes the
released row with `orig_dset_idx` 42. Every problem the dataset spec selects must have a released
row, and sample index i is the i-th released sample, so `num_samples` may not exceed the released
count. The released data keeps no log-probabilities, so those fields stay empty.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from monkeyflow.records import Sample
from monkeyflow.sampling.base import Backend, ModelSpec, SamplingParams, ShardRequest

DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.zst", ".json")
REQUIRED_FIELDS = ("samples", "is_corrects", "orig_dset_idx")


class ReplayError(ValueError):
    """Released samples that cannot serve the requested problems; the message says what to do."""


def _read_file(path: Path) -> list[dict[str, Any]]:
    name = path.name
    if name.endswith(".parquet"):
        import polars as pl

        return pl.read_parquet(path).to_dicts()
    if name.endswith((".jsonl", ".jsonl.zst")):
        from monkeyflow.io import read_jsonl

        return read_jsonl(path)
    if name.endswith(".json"):
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ReplayError(f"{path}: expected a JSON list of rows")
        return rows
    raise ReplayError(f"{path}: unknown file type; use one of {', '.join(DATA_SUFFIXES)}")


def _data_files(folder: Path, split: str) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))
    of_split = [p for p in files if p.name.startswith(split)]
    return of_split or files


def _load_with_datasets(path: str, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets as hf_datasets

    local = Path(path)
    if local.is_dir() and (local / "dataset_info.json").exists():
        loaded = hf_datasets.load_from_disk(str(local))
    elif local.is_dir() and (local / "dataset_dict.json").exists():
        loaded = hf_datasets.load_from_disk(str(local))[split]
    else:
        loaded = hf_datasets.load_dataset(path, config, split=split)
    return [dict(row) for row in loaded]


def load_released_rows(
    path: str, config: str | None = None, split: str = "test"
) -> list[dict[str, Any]]:
    """Rows of released samples from a file, a local folder (a `config/` subfolder of data files,
    a `save_to_disk` folder, or anything `datasets.load_dataset` reads) or a hub id."""
    local = Path(path)
    try:
        if local.is_file():
            return _read_file(local)
        if local.is_dir() and config and (local / config).is_dir():
            files = _data_files(local / config, split)
            if not files:
                raise ReplayError(f"{local / config}: no data files ({', '.join(DATA_SUFFIXES)})")
            return [row for f in files for row in _read_file(f)]
        return _load_with_datasets(path, config, split)
    except ReplayError:
        raise
    except Exception as exc:  # datasets and the file readers raise many types; report them alike
        raise ReplayError(
            f"could not read released samples from {path!r} (config {config!r}, split {split!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from None


def index_rows(rows: list[dict[str, Any]], where: str) -> dict[int, dict[str, Any]]:
    """Released rows by `orig_dset_idx`, after checking the fields replay needs."""
    by_index: dict[int, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise ReplayError(
                f"{where}: row {i} lacks field(s) {missing}; replay reads the monkey_business layout "
                f"({', '.join(REQUIRED_FIELDS)}, gt_answer)"
            )
        samples, labels = row["samples"], row["is_corrects"]
        if len(samples) != len(labels):
            raise ReplayError(
                f"{where}: row {i} has {len(samples)} samples but {len(labels)} is_corrects labels"
            )
        index = int(row["orig_dset_idx"])
        if index in by_index:
            raise ReplayError(f"{where}: orig_dset_idx {index} appears in more than one row")
        by_index[index] = row
    return by_index


def _normal(answer: Any) -> str:
    return str(answer).strip().strip("$").replace(",", "").replace(" ", "")


class ReplayBackend(Backend):
    """Serves released samples (and their labels) for the requested problems and indices."""

    needs_weights = False
    container = "analysis"
    options_schema = {
        "config": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": None,
            "description": "the released dataset's config, e.g. GSM8K_Llama-3-8B-Instruct",
        },
        "split": {
            "type": "string",
            "minLength": 1,
            "default": "test",
            "description": "the released dataset's split",
        },
        "labels": {
            "type": "boolean",
            "default": True,
            "description": "take correctness from the released is_corrects labels (false: our verifier judges the text)",
        },
        "tokenizer": {
            "type": ["string", "null"],
            "default": None,
            "description": "Hugging Face tokenizer (id or folder) to count prompt and completion tokens with, for cost (null = token counts unknown)",
        },
    }

    @classmethod
    def check_config(cls, spec: ModelSpec, options: dict[str, Any]) -> str | None:
        from monkeyflow.models import looks_local, model_path_problem

        if looks_local(spec.path) and not Path(spec.path).expanduser().exists():
            return (
                f"released samples {spec.path!r} do not exist (a hub id, a local folder or a file)"
            )
        tokenizer = options.get("tokenizer")
        if tokenizer and looks_local(tokenizer) and not Path(tokenizer).expanduser().exists():
            return f"tokenizer {tokenizer!r} does not exist"
        if tokenizer and not looks_local(tokenizer):
            return model_path_problem(tokenizer)
        return None

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        super().__init__(spec, weights)
        self.config = self.options["config"]
        self.split = self.options["split"]
        self.labels = bool(self.options["labels"])
        self.where = f"models.{spec.name} ({spec.path}, config {self.config}, split {self.split})"
        self.rows = index_rows(load_released_rows(spec.path, self.config, self.split), self.where)
        self.tokenizer = None
        if self.options["tokenizer"]:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.options["tokenizer"])

    def _count(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _row(self, request: ShardRequest) -> dict[str, Any]:
        problem = request.problem
        index = problem.metadata.get("row")
        if index is None:
            index = int(problem.problem_id.rsplit("-", 1)[-1])
        row = self.rows.get(int(index))
        if row is None:
            known = sorted(self.rows)
            shown = ", ".join(map(str, known[:12])) + (" ..." if len(known) > 12 else "")
            raise ReplayError(
                f"{self.where}: problem {problem.problem_id} (row {index}) has no released samples; "
                f"the released rows cover {len(known)} problems (orig_dset_idx {shown}). Select exactly "
                f"them with the dataset key `rows` (`monkeyflow released-rows` prints it)."
            )
        available = len(row["samples"])
        if request.start + request.count > available:
            raise ReplayError(
                f"{self.where}: problem {problem.problem_id} has {available} released samples, but "
                f"samples up to index {request.start + request.count - 1} were asked for; set "
                f"sampling.num_samples <= {available} for this model"
            )
        return row

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        out: list[Sample] = []
        mismatched: list[str] = []
        for request in requests:
            row = self._row(request)
            problem = request.problem
            if "gt_answer" in row and _normal(row["gt_answer"]) != _normal(problem.reference):
                mismatched.append(
                    f"{problem.problem_id} ({row['gt_answer']!r} vs {problem.reference!r})"
                )
            prompt_tokens = self._count(str(row.get("prompt") or problem.prompt))
            for i in range(request.start, request.start + request.count):
                text = str(row["samples"][i])
                out.append(
                    Sample(
                        problem_id=problem.problem_id,
                        sample_index=i,
                        text=text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=self._count(text),
                        label=bool(row["is_corrects"][i]) if self.labels else None,
                    )
                )
        if mismatched:
            # Reference formats differ between releases (e.g. MATH's LaTeX), so this only warns.
            print(
                f"[replay] {self.where}: released gt_answer differs from our reference for "
                f"{len(mismatched)} problem(s), e.g. {'; '.join(mismatched[:3])}; check that "
                "orig_dset_idx indexes the same test split",
                file=sys.stderr,
            )
        return out
