"""The sampling interface every backend implements, and the seed rule they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from monkeyflow.hashing import derive_seed
from monkeyflow.options import resolve_options, result_options
from monkeyflow.records import Problem, Sample
from monkeyflow.registry import PluginError, Registry


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
    """Turns shard requests into samples. One instance per process; reuse it across shards.

    A backend declares what the workflow needs to know about it, so the rules and the config code
    ask it instead of listing backend names:
    - `needs_weights`: sample_shard needs a prepared model folder (`prepare_model`); False for
      backends that read released samples or ask a server.
    - `options_schema`: the model keys it accepts beyond the common ones (`COMMON_MODEL_KEYS`),
      with defaults (see `monkeyflow.options`); options marked `x-run-key: false` (engine size,
      where a server is) stay out of the run key, every other option given in the config is in it.
    - `gpus(options)`: GPUs one sample_shard job asks a cluster for.
    - `sampler_version`: bumped when the backend's own code changes the samples of a setting.
    - `container`: the image (a key of containers/images.lock.yaml) sample_shard runs in.
    """

    name: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = True
    options_schema: ClassVar[dict[str, Any]] = {}
    container: ClassVar[str] = "vllm"
    # Bump when the backend's code changes what a given setting draws; from 2 on it is in the run
    # key (1 is left out, so the keys of backends that never bumped stay as they were).
    sampler_version: ClassVar[int] = 1

    def __init__(self, spec: ModelSpec, weights: str) -> None:
        self.spec = spec
        self.weights = weights
        self.options = self.resolve(spec.options, where=f"models.{spec.name}")

    @classmethod
    def resolve(cls, given: dict[str, Any], where: str) -> dict[str, Any]:
        """The backend's options from a model spec's keys (common keys ignored), defaults filled."""
        own = {k: v for k, v in given.items() if k not in COMMON_MODEL_KEYS}
        return resolve_options(cls.options_schema, own, where=where)

    @classmethod
    def run_key_options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """The options given in the config that change samples (defaults are not added, so a new
        option with a default never changes the run keys of existing configs)."""
        own = {k: v for k, v in given.items() if k not in COMMON_MODEL_KEYS}
        return result_options(cls.options_schema, own)

    @classmethod
    def gpus(cls, options: dict[str, Any]) -> int:
        return 0

    @classmethod
    def check_config(cls, spec: ModelSpec, options: dict[str, Any]) -> str | None:
        """What is wrong with a model spec that the config alone can tell (a missing local
        folder, an unknown embedded model, a file that does not exist), checked before any job
        runs; None if nothing. Backends with weights check `path` as a model folder."""
        if not cls.needs_weights:
            return None
        from monkeyflow.models import model_path_problem

        return model_path_problem(spec.path)

    def generate(
        self, requests: list[ShardRequest], params: SamplingParams, run: str
    ) -> list[Sample]:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (GPU memory, worker processes)."""


# Model keys every backend takes (validated by the config schema, read by the analysis and the
# cluster profile); none of them is in the run key.
COMMON_MODEL_KEYS = (
    "backend",
    "path",
    "sampling",
    "price",
    "parameters",
    "layers",
    "d_model",
    "gpus",
)

# Option schemas several backends share.
CHAT_OPTION = {
    "type": ["boolean", "null"],
    "default": None,
    "description": "use the chat template (null = if the tokenizer has one)",
}


def _checked(name: str, obj: Any) -> type[Backend]:
    if not (isinstance(obj, type) and issubclass(obj, Backend)):
        raise PluginError(
            f"sampling backend {name!r} must be a subclass of monkeyflow.sampling.Backend, got {obj!r}"
        )
    if obj.name and obj.name != name:
        raise PluginError(
            f"backend class {obj.__name__} is named {obj.name!r} but registered as {name!r}"
        )
    obj.name = name
    return obj


BACKENDS: Registry[type[Backend]] = Registry(
    "sampling backend", group="monkeyflow.backends", check=_checked
)
BACKENDS.add("transformers", "monkeyflow.sampling.transformers_backend:TransformersBackend")
BACKENDS.add("vllm", "monkeyflow.sampling.vllm_backend:VLLMBackend")
BACKENDS.add("openai", "monkeyflow.sampling.openai_backend:OpenAIBackend")
BACKENDS.add("replay", "monkeyflow.sampling.replay_backend:ReplayBackend")
BACKENDS.add("predictions", "monkeyflow.sampling.predictions_backend:PredictionsBackend")


def backend_class(name: str) -> type[Backend]:
    return BACKENDS.get(name)


def get_backend(spec: ModelSpec, weights: str) -> Backend:
    """Instantiate the backend named by `spec.backend` (its module is imported on demand)."""
    return BACKENDS.get(spec.backend)(spec, weights)
