# Helpers and input functions shared by the rules. The config is validated against
# schemas/config.schema.yaml by monkeyflow.config (errors name the key) and expanded into
# experiments, each with a run key: a short hash of everything that changes a sample.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from monkeyflow.config import ConfigError, dataset_spec, experiment_ks, load_config, model_spec
from monkeyflow.data import get_dataset
from monkeyflow.hashing import content_hash
from monkeyflow.models import model_source

try:
    EXPERIMENTS = load_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

RUNS = {(e.dataset, e.model, e.run): e for e in EXPERIMENTS}


wildcard_constraints:
    dataset=r"[A-Za-z0-9._-]+",
    model=r"[A-Za-z0-9._-]+",
    run=r"[0-9a-f]{12}",
    shard=r"\d+",
    pkey=r"[0-9a-f]{12}",
    source=r"[A-Za-z0-9._-]+",


def experiment(wildcards):
    key = (wildcards.dataset, wildcards.model, wildcards.run)
    if key not in RUNS:
        raise WorkflowError(
            f"no experiment in the config produces run {wildcards.run} of {wildcards.dataset} x "
            f"{wildcards.model}; results of other settings stay on disk but are not rebuilt"
        )
    return RUNS[key]


def problems_key(dataset):
    return content_hash(get_dataset(dataset_spec(config, dataset)).prompt_key(), length=12)


def problems_file(dataset):
    return f"data/problems/{dataset}/{problems_key(dataset)}.jsonl"


def model_dir(model):
    return f"models/{model_source(config['models'][model]['path'])}"


def model_path_for_source(source):
    for spec in config["models"].values():
        if model_source(spec["path"]) == source:
            return spec["path"]
    raise WorkflowError(f"no model in the config is prepared into models/{source}")


def shard_files(e, kind):
    suffix = {"samples": "jsonl.zst", "verdicts": "parquet"}[kind]
    return [f"{e.folder}/{kind}/shard-{i}.{suffix}" for i in range(e.num_shards)]


def counts_files():
    return [f"{e.folder}/counts.parquet" for e in EXPERIMENTS]


def all_targets():
    return ["results/summary/passk.parquet", "results/figures/coverage.png"]
