"""The sampling interface every backend implements, and the seed rule they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monkeyflow.hashing import derive_seed
from monkeyflow.records import Problem, Sample
from monkeyflow.registry import Registry


@dataclass(frozen=True)
class SamplingParams:
    """Settings that change a sample. `max_tokens` counts completion tokens."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class ShardRequest:
    """Draw the samples `start .. start+count-1` of one problem."""

    problem: Problem
    start: int
    count: int


@dataclass
class ModelSpec:
    """A model as the config names it; `options` holds backend-specific keys (dtype, ...)."""

    name: str
    backend: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


def sample_seed(run: str, problem_id: str, sample_index: int, base_seed: int) -> int:
    """The seed of one sample: a function of (run key, problem id, sample index, seed) only."""
    return derive_seed(run, problem_id, sample_index, base_seed)


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string; returns (text, whether one was found)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


class Backend:
    """Turns shard requests into samples. One instance per process; reuse it across shards."""

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        self.spec = spec
        self.weights = weights

    def generate(self, requests: list[ShardRequest], params: SamplingParams, run: str) -> list[Sample]:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (GPU memory, worker processes)."""


BACKENDS: Registry[type[Backend]] = Registry("sampling backend")


def get_backend(spec: ModelSpec, weights: str) -> Backend:
    """Instantiate the backend named by `spec.backend` (its module is imported on demand)."""
    import importlib

    module = {"transformers": "transformers_backend", "vllm": "vllm_backend", "openai": "openai_backend", "replay": "replay_backend"}.get(spec.backend)
    if module is not None and spec.backend not in BACKENDS:
        importlib.import_module(f"monkeyflow.sampling.{module}")
    return BACKENDS.get(spec.backend)(spec, weights)
