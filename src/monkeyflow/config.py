"""Reading, validating and expanding a monkeyflow config into experiments with run keys.

The workflow (Snakefile) and the command line both go through `load_config`, so a config error
reads the same everywhere: `config error at <key path>: <what is wrong>`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monkeyflow.data import DatasetError, DatasetSpec, get_dataset
from monkeyflow.data.base import DATASETS
from monkeyflow.hashing import content_hash
from monkeyflow.options import ConfigError, first_error
from monkeyflow.registry import PluginError
from monkeyflow.sampling.base import BACKENDS, ModelSpec, SamplingParams
from monkeyflow.verify.base import VERIFIERS, Verifier

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

RUN_KEY_VERSION = 1  # bump when the sampling code changes what a given setting produces


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
    verifier: str = ""  # the verifier that judges this dataset
    verifier_options: dict[str, Any] | None = None  # its options, defaults filled in

    @property
    def num_shards(self) -> int:
        return self.num_samples // self.shard_size

    @property
    def folder(self) -> str:
        return f"results/{self.dataset}/{self.model}/{self.run}"

    @property
    def verifier_identity(self) -> dict[str, Any]:
        """Name, version and verdict-changing options of the verifier (verify_shard's params)."""
        return VERIFIERS.get(self.verifier).identity_of(self.verifier_options or {})


def schema() -> dict[str, Any]:
    """The config schema (schemas/config.schema.yaml): the one source of the config's defaults.
    Shared: read it, never change it."""
    return _schema_cached()


@functools.lru_cache(maxsize=1)
def _schema_cached() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; a syntax error names the file, line and column."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config error in {where}: YAML syntax: {problem}") from None
    return loaded or {}


def verifier_sections(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Top-level sections named after a registered verifier (e.g. `math:`, `lean:`)."""
    static = set(schema()["properties"])
    return {k: v for k, v in config.items() if k not in static and k in VERIFIERS}


def validate(config: dict[str, Any]) -> None:
    """Check `config` against the schema and every plugin's options; raise ConfigError naming
    the key."""
    if not isinstance(config, dict):
        raise ConfigError("config error: the config must be a mapping of keys to values")
    sections = verifier_sections(config)
    known = sorted(schema()["properties"])
    for key in config:
        if key not in known and key not in sections:
            raise ConfigError(
                f"config error at {key}: unknown key {key!r} (known keys here: {', '.join(known)}; "
                f"or a verifier's options: {', '.join(VERIFIERS.names())})"
            )
    message = first_error(schema(), {k: v for k, v in config.items() if k not in sections})
    if message:
        raise ConfigError(message)
    for name, section in sections.items():
        _verifier_class(name, name).resolve(section, where=name)
    for name, spec in config["models"].items():
        where = f"models.{name}"
        backend = _plugin(BACKENDS, spec["backend"], f"{where}.backend")
        options = backend.resolve(spec, where=where)
        problem = backend.check_config(model_spec(config, name), options)
        if problem:
            raise ConfigError(f"config error at {where}.path: {problem}")


def _plugin(registry, name: str, where: str):
    try:
        return registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"config error at {where}: {exc}") from None
    except PluginError as exc:
        raise ConfigError(
            f"config error at {where}: the {registry.kind} {name!r} cannot be loaded: {exc}"
        ) from None


def _verifier_class(name: str, where: str) -> type[Verifier]:
    return _plugin(VERIFIERS, name, where)


def load_config(config: dict[str, Any] | str | Path) -> list[Experiment]:
    """Validate a config (mapping or YAML path) and expand it into experiments."""
    if not isinstance(config, dict):
        config = read_config_file(config)
    validate(config)
    return expand_config(config)


def expand_config(config: dict[str, Any]) -> list[Experiment]:
    """A validated config's experiments (dataset x model pairs with run keys and verifiers)."""
    for name in config["datasets"]:
        if name not in DATASETS:
            raise ConfigError(
                f"config error at datasets.{name}: unknown dataset {name!r}; known: {', '.join(DATASETS.names())}"
            )
    pairs = _pairs(config)
    verifiers = {d: verifier_settings(config, d) for d in config["datasets"]}
    return [_experiment(config, d, m, extra, verifiers[d]) for d, m, extra in pairs]


def verifier_settings(config: dict[str, Any], dataset: str) -> tuple[str, dict[str, Any]]:
    """(name, options) of the verifier that judges `dataset`: the verifier's defaults, then the
    shared `verify:` overrides it has, its top-level section, the dataset's `verify:`."""
    spec = config["datasets"][dataset]
    name = spec.get("verifier") or get_dataset(dataset_spec(config, dataset)).verifier
    cls = _verifier_class(
        name, f"datasets.{dataset}.verifier" if spec.get("verifier") else f"datasets.{dataset}"
    )
    own = cls.schema()
    shared_settings = config.get("verify") or {}
    shared = {
        k: shared_settings[k]
        for k in SHARED_VERIFY_KEYS
        if shared_settings.get(k) is not None and k in own
    }
    options = cls.resolve(
        shared, config.get(name), spec.get("verify"), where=f"datasets.{dataset}.verify"
    )
    return name, options


# Keys of `verify:` that set an option of every verifier that has it.
SHARED_VERIFY_KEYS = ("timeout_s", "max_completion_bytes")


def verify_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config's `verify:` section with the schema's defaults filled in."""
    return _with_defaults(
        schema()["properties"]["verify"]["properties"], config.get("verify") or {}
    )


def full_schema() -> dict[str, Any]:
    """The config schema with every registered plugin's options: a top-level section per
    verifier and, per backend, the model keys it accepts (`x-backend-options`)."""
    import copy

    from monkeyflow.options import object_schema

    full = copy.deepcopy(schema())
    for name in VERIFIERS.names():
        cls = VERIFIERS.get(name)
        full["properties"].setdefault(
            name,
            {
                **object_schema(cls.schema()),
                "description": f"options of the {name} verifier (version {cls.version})",
            },
        )
    full["$defs"]["model"]["x-backend-options"] = {
        name: object_schema(BACKENDS.get(name).options_schema) for name in BACKENDS.names()
    }
    return full


def cache_path(config: dict[str, Any]) -> str | None:
    """Where verify_shard keeps the verdict cache (None when `verify.cache` is off)."""
    from monkeyflow.stages import DEFAULT_CACHE_PATH

    return DEFAULT_CACHE_PATH if verify_settings(config)["cache"] else None


def sampling_defaults() -> dict[str, Any]:
    """The sampling settings' defaults, from the schema."""
    return {k: v["default"] for k, v in schema()["$defs"]["sampling"]["properties"].items()}


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
            raise ConfigError(
                f"config error at experiments.{i}: pair {exp['dataset']} x {exp['model']} listed twice"
            )
        seen.add((exp["dataset"], exp["model"]))
        pairs.append((exp["dataset"], exp["model"], exp.get("sampling", {})))
    return pairs


def model_spec(config: dict[str, Any], name: str) -> ModelSpec:
    """The model `name` as a ModelSpec (`options`: every key besides backend, path, sampling)."""
    raw = config["models"][name]
    options = {k: v for k, v in raw.items() if k not in ("backend", "path", "sampling")}
    return ModelSpec(name=name, backend=raw["backend"], path=raw["path"], options=options)


def dataset_spec(config: dict[str, Any], name: str) -> DatasetSpec:
    try:
        return DatasetSpec.from_config(name, config["datasets"][name])
    except DatasetError as exc:
        raise ConfigError(f"config error: {exc}") from None


def _experiment(
    config: dict[str, Any],
    dataset: str,
    model: str,
    extra: dict[str, Any],
    verifier: tuple[str, dict[str, Any]],
) -> Experiment:
    sampling = {
        **sampling_defaults(),
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
    backend = BACKENDS.get(spec.backend)
    model_key = {"backend": spec.backend, "path": spec.path}
    if backend.sampler_version != 1:
        model_key["sampler_version"] = backend.sampler_version
    run_spec = {
        "version": RUN_KEY_VERSION,
        "model": {**model_key, **backend.run_key_options(spec.options)},
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
        verifier=verifier[0],
        verifier_options=verifier[1],
    )


def analysis_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config's `analysis:` section with every default from the schema filled in."""
    return _with_defaults(
        schema()["properties"]["analysis"]["properties"], config.get("analysis") or {}
    )


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
