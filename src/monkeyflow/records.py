"""The records every stage shares: problems, samples and verdicts.

Each is a plain dataclass that round-trips through a JSON-compatible dict, so the
jsonl/parquet files between workflow stages always hold the same fields.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

VERDICT_STATUSES = ("correct", "incorrect", "timeout", "error")


class RecordError(ValueError):
    """A row that cannot be turned into a record; the message names the field."""


def _from_dict(cls, row: dict[str, Any], where: str):
    if not isinstance(row, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
    names = {f.name for f in fields(cls)}
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in row and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Problem:
    """One benchmark problem in canonical form.

    `prompt` is the text the model is given (few-shot included); `chat` is the same prompt as
    chat messages for instruct models (None where the dataset has no chat form); `reference` is
    the gold answer the verifier compares against; `metadata` holds whatever else a verifier
    needs (tests, time limits, ...).
    """

    problem_id: str
    dataset: str
    prompt: str
    reference: str
    chat: list[dict[str, str]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "problem") -> Problem:
        return _from_dict(cls, row, where)


@dataclass(frozen=True)
class Sample:
    """One completion drawn for a problem.

    Token counts are in tokens; `cumulative_logprob` is the sum of the natural-log
    probabilities of the completion tokens under the model (None if the backend gave none).
    `label` is a correctness label that came with the sample (the replay backend's released
    `is_corrects`); when set, verification takes the status from it. None for drawn samples,
    and then left out of the dict so drawn shards keep their bytes.
    """

    problem_id: str
    sample_index: int
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    cumulative_logprob: float | None = None
    label: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        if row["label"] is None:
            del row["label"]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "sample") -> Sample:
        sample = _from_dict(cls, row, where)
        if not isinstance(sample.text, str):
            raise RecordError(
                f"{where}: field 'text' must be a string, got {type(sample.text).__name__}"
            )
        if not isinstance(sample.sample_index, int) or sample.sample_index < 0:
            raise RecordError(f"{where}: field 'sample_index' must be a non-negative integer")
        if sample.label is not None and not isinstance(sample.label, bool):
            raise RecordError(f"{where}: field 'label' must be true, false or null")
        return sample


@dataclass(frozen=True)
class Check:
    """What a verifier concluded about one completion.

    status: correct|incorrect|timeout|error. `error` means the verifier itself could not judge
    (infrastructure failure), never that the answer was wrong. `extracted` is the answer (or
    program, proof, patch) read from the completion (None if none); `method` how it was read
    (e.g. `marker`, `boxed`, `fallback`), so analysis can report strict and lenient coverage;
    `detail` says which rule decided.
    """

    status: str
    extracted: str | None = None
    method: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise RecordError(
                f"verdict status must be one of {VERDICT_STATUSES}, got {self.status!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Verdict(Check):
    """The judgement of one sample: a Check plus which sample it is about (one row of a verdict
    file; its columns are `VERDICT_COLUMNS`)."""

    problem_id: str
    sample_index: int

    @classmethod
    def of(cls, problem_id: str, sample_index: int, check: Check) -> Verdict:
        return cls(problem_id=problem_id, sample_index=sample_index, **check_fields(check))

    @property
    def check(self) -> Check:
        return Check(**check_fields(self))

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        return {name: row[name] for name in VERDICT_COLUMNS}


def check_fields(check: Check) -> dict[str, Any]:
    """The Check part of a check or verdict, as keyword arguments."""
    return {f.name: getattr(check, f.name) for f in fields(Check)}


# One row of a verdict file: the sample's identity first, then the check.
VERDICT_COLUMNS: tuple[str, ...] = ("problem_id", "sample_index", *(f.name for f in fields(Check)))
