"""The config schema is the one source of defaults, and every key in it is read by something.

`test_every_schema_key_is_read` walks the schema, builds a config that sets every key, and
expands it (as the workflow does) through a mapping that records which keys the code reads."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from monkeyflow import config as cfg

REPO = Path(__file__).resolve().parents[2]


class Recording(dict):
    """A dict that records the key path of every read (nested mappings record too)."""

    def __init__(self, data: dict, path: str, log: set[str]) -> None:
        super().__init__(data)
        self._path, self._log = path, log

    def _wrap(self, key, value):
        sub = f"{self._path}.{key}" if self._path else str(key)
        self._log.add(sub)
        return Recording(value, sub, self._log) if isinstance(value, dict) else value

    def __getitem__(self, key):
        return self._wrap(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self._wrap(key, super().__getitem__(key)) if key in self else default

    def items(self):
        return [(k, self[k]) for k in super().keys()]

    def values(self):
        return [self[k] for k in super().keys()]

    def __iter__(self):
        return iter(list(super().keys()))


def example(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A valid value for `schema` with every optional property set."""
    if "$ref" in schema:
        return example(root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "allOf" in schema:
        return example(schema["allOf"][0], root)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    kind = [t for t in kind if t != "null"][0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {k: example(v, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema.get("items", {"type": "integer"}), root)]
    if kind == "integer":
        return max(schema.get("minimum", 2), 2)
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if "default" in schema:
        return schema["default"]
    return "x"


def schema_paths(schema: dict[str, Any], root: dict[str, Any], prefix: str = "") -> set[str]:
    """Key paths of every property in the schema; `*` stands for a name (dataset, model)."""
    if "$ref" in schema:
        return schema_paths(root["$defs"][schema["$ref"].split("/")[-1]], root, prefix)
    if "allOf" in schema:
        return set().union(*(schema_paths(s, root, prefix) for s in schema["allOf"]))
    out = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        out |= schema_paths(sub, root, path)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out |= schema_paths(extra, root, f"{prefix}.*")
    return out


def full_config() -> dict[str, Any]:
    root = cfg.schema()
    dataset = example(root["$defs"]["dataset"], root)
    model = example(root["$defs"]["model"], root)
    gsm = {
        **dataset,
        "source": "bundled",
        "verifier": "gsm8k",
        "hub": {"path": "x", "name": "main", "split": "test"},
    }
    gsm.pop("limit")  # rows and limit exclude each other: one dataset each
    math = {**dataset, "source": "bundled", "verifier": "math", "verify": {"timeout_s": 3}}
    math.pop("rows")
    config = {
        k: example(v, root)
        for k, v in root["properties"].items()
        if k not in ("datasets", "models")
    }
    config["datasets"] = {"gsm8k": gsm, "math": math}
    config["models"] = {"m": {**model, "backend": "transformers", "path": "embedded:smollm2-135m"}}
    config["experiments"] = [
        {"dataset": "gsm8k", "model": "m", "sampling": example(root["$defs"]["sampling"], root)},
        {"dataset": "math", "model": "m"},
    ]
    for section in ("sampling",):
        config[section]["shard_size"] = 2
        config[section]["num_samples"] = 4
    config["experiments"][0]["sampling"].update(shard_size=2, num_samples=4)
    for spec in (gsm, math, config["models"]["m"]):
        spec["sampling"].update(shard_size=2, num_samples=4)
    return config


def read_paths(config: dict[str, Any]) -> set[str]:
    """Every key path the workflow's config consumers read from `config`."""
    cfg.validate(copy.deepcopy(config))
    log: set[str] = set()
    rec = Recording(copy.deepcopy(config), "", log)
    experiments = cfg.expand_config(rec)
    for e in experiments:
        cfg.experiment_ks(rec, e.num_samples)
        cfg.model_spec(rec, e.model)
    cfg.analysis_settings(rec)
    cfg.cache_path(rec)
    # the cost analysis reads a model's price and architecture keys from its spec
    from monkeyflow.analysis.cost import model_shape_for
    from monkeyflow.metrics.cost import price_of

    for name in rec["models"]:
        price_of(rec["models"][name])
        model_shape_for(rec["models"][name], None)
    return {
        re.sub(r"^(datasets|models)\.[^.]+", r"\1.*", p).replace("experiments.0", "experiments")
        for p in log
    }


def test_every_schema_key_is_read():
    config = full_config()
    root = cfg.schema()
    wanted = {re.sub(r"^experiments\.\*", "experiments", p) for p in schema_paths(root, root)}
    read = read_paths(config)
    # experiments items are an array: their keys are read as experiments.<i>.<key>
    read |= {re.sub(r"^experiments\.\d+", "experiments", p) for p in read}
    missing = sorted(p for p in wanted if p not in read and not p.startswith("experiments"))
    missing += sorted(p for p in wanted if p.startswith("experiments.") and p not in read)
    assert not missing, f"schema keys nothing reads: {missing}"


def test_the_walk_catches_a_key_nothing_reads():
    root = copy.deepcopy(cfg.schema())
    root["properties"]["verify"]["properties"]["unused_knob"] = {"type": "integer", "default": 1}
    assert "verify.unused_knob" in schema_paths(root, root)
    assert "verify.unused_knob" not in read_paths(full_config())


def test_defaults_come_from_the_schema():
    root = cfg.schema()
    sampling = root["$defs"]["sampling"]["properties"]
    assert cfg.sampling_defaults() == {k: v["default"] for k, v in sampling.items()}
    (e,) = cfg.load_config(
        {"datasets": {"gsm8k": {}}, "models": {"m": {"backend": "transformers", "path": "x"}}}
    )
    assert e.params.temperature == sampling["temperature"]["default"]
    assert e.num_samples == sampling["num_samples"]["default"]
    assert (
        cfg.verify_settings({})["cache"]
        is root["properties"]["verify"]["properties"]["cache"]["default"]
    )


def test_schema_file_is_one_file():
    # schemas/config.schema.yaml (the snakemake-workflows place) and the installed copy are one file
    assert (REPO / "src/monkeyflow/config.schema.yaml").resolve() == (
        REPO / "schemas/config.schema.yaml"
    ).resolve()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"math": {"backend": "nope"}}, "config error at math.backend: 'nope' is not one of"),
        ({"math": {"timeout": 3}}, "config error at math.timeout: unknown key 'timeout'"),
        ({"lemon": {}}, "config error at lemon: unknown key 'lemon'"),
        (
            {"datasets": {"math": {"verify": {"backend": 1}}}},
            "config error at datasets.math.verify.backend",
        ),
        (
            {"datasets": {"math": {"verifier": "nope"}}},
            "config error at datasets.math.verifier: unknown verifier 'nope'",
        ),
        (
            {"models": {"m": {"backend": "nope", "path": "x"}}},
            "config error at models.m.backend: unknown sampling backend 'nope'",
        ),
        (
            {"models": {"m": {"backend": "openai", "path": "x"}}},
            "config error at models.m: 'base_url' is a required property",
        ),
        (
            {"models": {"m": {"backend": "vllm", "path": "x", "batch_size": 3}}},
            "config error at models.m.batch_size: unknown key",
        ),
    ],
)
def test_plugin_options_errors_name_the_key(config, message):
    base = {"datasets": {"math": {}}, "models": {"m": {"backend": "transformers", "path": "x"}}}
    for key, value in config.items():
        base[key] = (
            {**base.get(key, {}), **value}
            if key in ("datasets", "models") and "m" not in value
            else value
        )
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load_config(base)
    assert message in str(err.value)
