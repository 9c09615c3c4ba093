"""The verifier interface: (problem, completion) -> Check, and the registry of verifiers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monkeyflow.records import VERDICT_STATUSES, Problem
from monkeyflow.registry import Registry


@dataclass(frozen=True)
class Check:
    """What a verifier concluded about one completion.

    status: correct|incorrect|timeout|error. `error` means the verifier itself could not judge
    (infrastructure failure, crash), never that the answer was wrong. `extracted` is the answer
    read from the completion; `method` how it was read (e.g. `marker`, `boxed`, `fallback`).
    """

    status: str
    extracted: str | None = None
    method: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise ValueError(f"check status must be one of {VERDICT_STATUSES}, got {self.status!r}")


Verifier = Callable[[Problem, str], Check]

VERIFIERS: Registry[Verifier] = Registry("verifier")

# Verifiers that judge many completions at once (a worker pool, a sandbox per core); when one is
# registered under a verifier's name, shards use it for all their distinct completions.
BatchVerifier = Callable[[list[tuple[Problem, str]]], list[Check]]

BATCH_VERIFIERS: Registry[BatchVerifier] = Registry("batch verifier")
