"""The dataset interface and the functions every benchmark shares: loading rows from the bundled
copy or the Hugging Face hub, picking a reproducible subset, and building chat/plain prompts."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from monkeyflow.records import Problem, RecordError
from monkeyflow.registry import PluginError, Registry


class DatasetError(ValueError):
    """A dataset that cannot be prepared: bad spec, unreadable source, malformed row."""


@dataclass(frozen=True)
class DatasetSpec:
    """How to obtain one benchmark: where from, which subset and how many few-shot exemplars."""

    name: str
    source: str = "bundled"  # bundled | hub
    limit: int | None = None  # a random subset of this many problems (None: all)
    subset_seed: int = 0
    num_fewshot: int | None = None  # None: the dataset's default
    hub: dict[str, Any] = field(default_factory=dict)  # {path, name, split}: load_dataset args
    rows: tuple[int, ...] | None = None  # exactly these row indices of the split (None: use limit)

    @classmethod
    def from_config(cls, name: str, spec: dict[str, Any]) -> DatasetSpec:
        known = {
            "source",
            "limit",
            "subset_seed",
            "num_fewshot",
            "hub",
            "sampling",
            "rows",
            "verify",
            "verifier",
        }
        unknown = sorted(set(spec) - known)
        if unknown:
            raise DatasetError(f"datasets.{name}: unknown key(s) {', '.join(unknown)}")
        rows = spec.get("rows")
        if rows is not None:
            if (
                not isinstance(rows, (list, tuple))
                or not rows
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rows)
            ):
                raise DatasetError(
                    f"datasets.{name}.rows: expected a non-empty list of row indices (integers >= 0)"
                )
            if len(set(rows)) != len(rows):
                raise DatasetError(f"datasets.{name}.rows: row indices repeat")
            if spec.get("limit") is not None:
                raise DatasetError(f"datasets.{name}: give either rows or limit, not both")
            rows = tuple(sorted(rows))
        return cls(
            name=name,
            source=spec.get("source", "bundled"),
            limit=spec.get("limit"),
            subset_seed=int(spec.get("subset_seed", 0)),
            num_fewshot=spec.get("num_fewshot"),
            hub=dict(spec.get("hub") or {}),
            rows=rows,
        )


class Dataset:
    """One benchmark. Subclasses set the class attributes and implement `to_problem`.

    `prompt_version` names the prompt format; bump it whenever the prompt text a model sees
    changes, since it is part of every run key.
    """

    name: str = ""
    verifier: str = ""
    bundled_file: str = ""  # path under monkeyflow/bundled/
    hub_defaults: dict[str, Any] = {}
    default_fewshot: int = 0
    stop: tuple[str, ...] = ()
    prompt_version: str = "1"

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.num_fewshot = self.default_fewshot if spec.num_fewshot is None else spec.num_fewshot

    # -- rows -----------------------------------------------------------------------------
    def load_rows(self) -> list[dict[str, Any]]:
        """The raw rows of the evaluation split, from the bundled copy or the hub."""
        if self.spec.source == "bundled":
            return read_bundled(self.bundled_file)
        if self.spec.source == "hub":
            return load_hub_rows(self.hub_args(), self.name)
        raise DatasetError(
            f"datasets.{self.name}.source: must be 'bundled' or 'hub', got {self.spec.source!r}"
        )

    def hub_args(self) -> dict[str, Any]:
        """load_dataset arguments: the dataset's defaults, unless the spec names another path
        (whose config and split then default to none and `test`)."""
        given = self.spec.hub
        if given.get("path") in (None, self.hub_defaults.get("path")):
            return {**self.hub_defaults, **given}
        return {"name": None, "split": "test", **given}

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        raise NotImplementedError

    def prompt_key(self) -> dict[str, Any]:
        """Everything about this dataset that changes the prompts (goes into the run key)."""
        return {
            "dataset": self.name,
            "prompt_version": self.prompt_version,
            "num_fewshot": self.num_fewshot,
            "source": self.spec.source,
            "hub": self.spec.hub if self.spec.source == "hub" else {},
            "limit": self.spec.limit,
            "subset_seed": self.spec.subset_seed,
            "stop": list(self.stop),
            # only when given, so that the keys of configs without it stay what they were
            **({"rows": list(self.spec.rows)} if self.spec.rows is not None else {}),
        }

    def problems(self) -> list[Problem]:
        """Canonical problems of the (sub)set; a malformed row raises DatasetError naming it."""
        rows = self.load_rows()
        if not rows:
            raise DatasetError(f"dataset {self.name!r}: the source has no rows")
        if self.spec.rows is not None:
            outside = [i for i in self.spec.rows if i >= len(rows)]
            if outside:
                raise DatasetError(
                    f"dataset {self.name!r}: rows {outside[:5]} are out of range (the source has "
                    f"{len(rows)} rows, indices 0..{len(rows) - 1})"
                )
            indices = list(self.spec.rows)
        else:
            indices = subset_indices(len(rows), self.spec.limit, self.spec.subset_seed)
        out = []
        for i in indices:
            row = rows[i]
            try:
                if not isinstance(row, dict):
                    raise RecordError(f"expected an object, got {type(row).__name__}")
                out.append(self.to_problem(row, i))
            except (RecordError, KeyError, TypeError, ValueError) as exc:
                detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise DatasetError(f"dataset {self.name!r}: malformed row {i}: {detail}") from None
        return out


def _checked(name: str, obj: Any) -> type[Dataset]:
    if not (isinstance(obj, type) and issubclass(obj, Dataset)):
        raise PluginError(
            f"dataset {name!r} must be a subclass of monkeyflow.data.Dataset, got {obj!r}"
        )
    if obj.name and obj.name != name:
        raise PluginError(
            f"dataset class {obj.__name__} is named {obj.name!r} but registered as {name!r}"
        )
    obj.name = name
    return obj


DATASETS: Registry[type[Dataset]] = Registry("dataset", group="monkeyflow.datasets", check=_checked)
DATASETS.add("gsm8k", "monkeyflow.data.gsm8k:GSM8K")
DATASETS.add("math", "monkeyflow.data.math:MATH")
DATASETS.add("humaneval", "monkeyflow.data.code:HumanEval")
DATASETS.add("apps", "monkeyflow.data.code:APPS")
DATASETS.add("codecontests", "monkeyflow.data.code:CodeContests")
DATASETS.add("minif2f", "monkeyflow.data.minif2f:MiniF2F")
DATASETS.add("swebench_lite", "monkeyflow.data.swebench:SWEBenchLite")


def get_dataset(spec: DatasetSpec) -> Dataset:
    """The dataset implementation for `spec.name`, with the spec bound."""
    return DATASETS.get(spec.name)(spec)


# -- helpers shared by the benchmark modules ------------------------------------------------
def bundled_path(relative: str) -> Path:
    return Path(str(resources.files("monkeyflow") / "bundled" / relative))


def read_bundled(relative: str) -> list[dict[str, Any]]:
    """Rows of a bundled .jsonl, .jsonl.gz or .json (list) file."""
    path = bundled_path(relative)
    if not path.exists():
        raise DatasetError(f"bundled file {relative} is missing from the installed package")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if path.suffix == ".json":
            return json.load(fh)
        rows = []
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{relative}:{lineno}: not valid JSON ({exc.msg})") from None
        return rows


def load_hub_rows(hub: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """Rows from the Hugging Face hub through `datasets`.

    `hub.path` may be a hub id, a local folder of data files (jsonl/parquet/csv), or a folder
    written by `Dataset.save_to_disk`. `hub.name` is the config, `hub.split` the split.
    """
    if not hub.get("path"):
        raise DatasetError(f"datasets.{dataset}.hub.path: required for source 'hub'")
    try:
        import datasets as hf_datasets
    except ImportError:
        raise DatasetError(
            "source 'hub' needs the `datasets` package: pip install datasets"
        ) from None
    path = hub["path"]
    split = hub.get("split", "test")
    try:
        local = Path(path)
        if local.is_dir() and (local / "dataset_info.json").exists():
            loaded = hf_datasets.load_from_disk(str(local))
            if isinstance(loaded, hf_datasets.DatasetDict):
                loaded = loaded[split]
        else:
            loaded = hf_datasets.load_dataset(path, hub.get("name"), split=split)
    except Exception as exc:  # datasets raises many types; report them all the same way
        raise DatasetError(
            f"datasets.{dataset}: could not load {path!r} (config {hub.get('name')!r}, split "
            f"{split!r}) from the hub: {type(exc).__name__}: {exc}"
        ) from None
    return [dict(row) for row in loaded]


def subset_indices(n_rows: int, limit: int | None, seed: int) -> list[int]:
    """A reproducible random subset of row indices, in ascending order (all rows if no limit)."""
    if limit is None or limit >= n_rows:
        return list(range(n_rows))
    if limit < 1:
        raise DatasetError(f"limit must be at least 1, got {limit}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_rows, size=limit, replace=False))


def require_str(row: dict[str, Any], key: str) -> str:
    """row[key] as a non-empty string, or RecordError naming the field."""
    if key not in row:
        raise RecordError(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"field {key!r} must be a non-empty string")
    return value


def fewshot_chat(
    system: str | None, shots: list[tuple[str, str]], question: str
) -> list[dict[str, str]]:
    """Chat messages: optional system turn, then one user/assistant pair per exemplar."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    for q, a in shots:
        messages.append({"role": "user", "content": q})
        messages.append({"role": "assistant", "content": a})
    messages.append({"role": "user", "content": question})
    return messages
