"""Reading, validating and expanding a monkeyflow config into experiments with run keys.

The workflow (Snakefile) and the command line both go through `load_config`, so a config error
reads the same everywhere: `config error at <key path>: <what is wrong>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from monkeyflow.data import DatasetError, DatasetSpec, get_dataset
from monkeyflow.data.base import DATASETS, load_builtin
from monkeyflow.hashing import content_hash
from monkeyflow.sampling.base import ModelSpec, SamplingParams

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

SAMPLING_DEFAULTS: dict[str, Any] = {
    "num_samples": 64,
    "shard_size": 16,
    "temperature": 0.6,
    "top_p": 0.95,
    "max_tokens": 512,
    "seed": 0,
    "stop": [],
}

# Model keys that change which engine runs or how fast, never what it samples: kept out of the
# run key so that moving to more GPUs does not orphan finished shards. The cost keys (price,
# architecture for FLOPs) only feed the analysis.
RESOURCE_KEYS = {
    "tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs", "sampling",
    "price", "parameters", "layers", "d_model",
    # where and how fast an OpenAI-compatible server is asked, and what a SLURM job asks for
    "gpus", "base_url", "api_key_env", "concurrency", "request_timeout_s", "max_retries",
}

RUN_KEY_VERSION = 1  # bump when the sampling code changes what a given setting produces


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


@dataclass(frozen=True)
class Experiment:
    """One dataset x model pair with its resolved sampling settings and run key."""

    dataset: str
    model: str
    run: str
    num_samples: int
    shard_size: int
    params: SamplingParams
    run_spec: dict[str, Any]  # everything hashed into `run`

    @property
    def num_shards(self) -> int:
        return self.num_samples // self.shard_size

    @property
    def folder(self) -> str:
        return f"results/{self.dataset}/{self.model}/{self.run}"


def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def validate(config: dict[str, Any]) -> None:
    """Check `config` against schemas/config.schema.yaml; raise ConfigError naming the key."""
    if not isinstance(config, dict):
        raise ConfigError("config error: the config must be a mapping of keys to values")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if errors:
        err = errors[0]
        where = _key_path(err)
        message = err.message
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            where = ".".join([*map(str, err.absolute_path), extra[0]]) if extra else where
            message = f"unknown key {extra[0]!r}" if extra else message
            known = sorted(err.schema.get("properties", {}))
            if known:
                message += f" (known keys here: {', '.join(known)})"
        raise ConfigError(f"config error at {where}: {message}")


def load_config(config: dict[str, Any] | str | Path) -> list[Experiment]:
    """Validate a config (mapping or YAML path) and expand it into experiments."""
    if not isinstance(config, dict):
        config = yaml.safe_load(Path(config).read_text()) or {}
    validate(config)
    load_builtin()
    for name in config["datasets"]:
        if name not in DATASETS:
            raise ConfigError(
                f"config error at datasets.{name}: unknown dataset {name!r}; known: {', '.join(DATASETS.names())}"
            )
    pairs = _pairs(config)
    experiments = [_experiment(config, d, m, extra) for d, m, extra in pairs]
    return experiments


def _pairs(config: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    if "experiments" not in config:
        return [(d, m, {}) for d in config["datasets"] for m in config["models"]]
    pairs = []
    seen = set()
    for i, exp in enumerate(config["experiments"]):
        for key, table in (("dataset", "datasets"), ("model", "models")):
            if exp[key] not in config[table]:
                raise ConfigError(
                    f"config error at experiments.{i}.{key}: {exp[key]!r} is not defined under {table}"
                )
        if (exp["dataset"], exp["model"]) in seen:
            raise ConfigError(f"config error at experiments.{i}: pair {exp['dataset']} x {exp['model']} listed twice")
        seen.add((exp["dataset"], exp["model"]))
        pairs.append((exp["dataset"], exp["model"], exp.get("sampling", {})))
    return pairs


def model_spec(config: dict[str, Any], name: str) -> ModelSpec:
    raw = config["models"][name]
    options = {k: v for k, v in raw.items() if k not in ("backend", "path", "sampling")}
    return ModelSpec(name=name, backend=raw["backend"], path=raw["path"], options=options)


def dataset_spec(config: dict[str, Any], name: str) -> DatasetSpec:
    try:
        return DatasetSpec.from_config(name, config["datasets"][name])
    except DatasetError as exc:
        raise ConfigError(f"config error: {exc}") from None


def _experiment(config: dict[str, Any], dataset: str, model: str, extra: dict[str, Any]) -> Experiment:
    sampling = {
        **SAMPLING_DEFAULTS,
        **config.get("sampling", {}),
        **config["datasets"][dataset].get("sampling", {}),
        **config["models"][model].get("sampling", {}),
        **extra,
    }
    where = f"{dataset} x {model}"
    if sampling["num_samples"] % sampling["shard_size"]:
        raise ConfigError(
            f"config error at sampling.num_samples ({where}): {sampling['num_samples']} is not a multiple of "
            f"sampling.shard_size ({sampling['shard_size']}); every shard holds exactly shard_size samples per problem"
        )
    ds = get_dataset(dataset_spec(config, dataset))
    stop = tuple(dict.fromkeys([*ds.stop, *sampling["stop"]]))
    params = SamplingParams(
        temperature=float(sampling["temperature"]),
        top_p=float(sampling["top_p"]),
        max_tokens=int(sampling["max_tokens"]),
        stop=stop,
        seed=int(sampling["seed"]),
    )
    spec = model_spec(config, model)
    run_spec = {
        "version": RUN_KEY_VERSION,
        "model": {
            "backend": spec.backend,
            "path": spec.path,
            **{k: v for k, v in spec.options.items() if k not in RESOURCE_KEYS},
        },
        "prompt": ds.prompt_key(),
        "sampling": {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop),
            "seed": params.seed,
            "shard_size": sampling["shard_size"],
        },
    }
    return Experiment(
        dataset=dataset,
        model=model,
        run=content_hash(run_spec, length=12),
        num_samples=int(sampling["num_samples"]),
        shard_size=int(sampling["shard_size"]),
        params=params,
        run_spec=run_spec,
    )


def analysis_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config's `analysis:` section with every default from the schema filled in."""
    return _with_defaults(schema()["properties"]["analysis"]["properties"], config.get("analysis") or {})


def _with_defaults(properties: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in properties.items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = _with_defaults(sub["properties"], given.get(key) or {})
        elif key in given:
            out[key] = given[key]
        elif "default" in sub:
            out[key] = sub["default"]
    return out


def experiment_ks(config: dict[str, Any], k_max: int) -> list[int]:
    """The k values to report for an experiment with k_max samples per problem."""
    from monkeyflow.metrics.passk import default_ks

    ks = config.get("passk", {}).get("ks")
    if ks:
        return sorted({k for k in ks if k <= k_max})
    return default_ks(k_max)


def shard_count(num_samples: int, shard_size: int) -> int:
    return math.ceil(num_samples / shard_size)
