# Helpers and input functions shared by the rules. The config is validated against
# schemas/config.schema.yaml by monkeyflow.config (errors name the key) and expanded into
# experiments, each with a run key: a short hash of everything that changes a sample.
import functools
import hashlib
import inspect
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from monkeyflow.analysis import ANALYSES
from monkeyflow.config import (
    ConfigError,
    analysis_settings,
    cache_path,
    dataset_spec,
    experiment_ks,
    load_config,
    model_spec,
    verify_settings,
)
from monkeyflow.containers import image_path as container_image_path
from monkeyflow.containers import load_lock as load_container_lock
from monkeyflow.data import get_dataset
from monkeyflow.hashing import content_hash
from monkeyflow.models import model_source
from monkeyflow.sampling.base import BACKENDS
from monkeyflow.verify import VERIFIERS
from snakemake.common import overwrite_function_params

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


# -- planning cost ------------------------------------------------------------------------------
# Snakemake calls a rule's input, params and resources functions once per job, and before each
# call inspects the function's signature (inspect.signature: a large share of planning 20,000
# jobs). `per_job` records the signature once (Snakemake's own overwrite_function_params, which
# its ioutils use the same way); the values that depend only on a model, a dataset or a run are
# memoized below, so a job costs a dict lookup.
def per_job(func):
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


@per_job
def experiment(wildcards):
    key = (wildcards.dataset, wildcards.model, wildcards.run)
    if key not in RUNS:
        raise WorkflowError(
            f"no experiment in the config produces run {wildcards.run} of {wildcards.dataset} x "
            f"{wildcards.model}; results of other settings stay on disk but are not rebuilt"
        )
    return RUNS[key]


@functools.cache
def problems_key(dataset):
    return content_hash(get_dataset(dataset_spec(config, dataset)).prompt_key(), length=12)


def problem_spec(dataset):
    """The dataset keys that change its problems (prepare_problems' params): not its sampling or
    verifier settings, which must not rerun the problems and, through them, every shard."""
    spec = config["datasets"][dataset]
    return {k: v for k, v in spec.items() if k not in ("sampling", "verify", "verifier")}


def problems_file(dataset):
    return f"data/problems/{dataset}/{problems_key(dataset)}.jsonl"


# -- reruns by content ---------------------------------------------------------------------------
# Modification times never decide whether to sample or verify again: a touched script, a fresh
# clone or a copied results/ folder would otherwise redo days of GPU work. The inputs of
# sample_shard and verify_shard are `ancient()` (their mtimes ignored: a path under results/ is
# named by what produced it, run key and shard index, and shards are byte-reproducible), and the
# workflow profile (profiles/default) turns off the `code` trigger (script mtimes). The cheap
# rules downstream keep Snakemake's mtime-then-checksum test of their inputs, so a regenerated
# shard still reaches the tables. A job reruns when its output is missing, its set of inputs
# changes, or its params change, and the params say what produced the inputs: sample_shard's run key (RUN_KEY_VERSION is bumped when sampling code
# changes what a setting gives), verify_shard's verifier name + version + options, and for the
# cheap rules downstream their `lineage`: those identities, the error policy, and a digest of the
# workflow scripts and the library's source, so a real change of code reruns them.
@functools.cache
def code_digest():
    digest = hashlib.sha256()
    base = Path(workflow.basedir)
    for path in sorted([*(base / "workflow_scripts").glob("*.py"), *(base / "src" / "monkeyflow").rglob("*.py")]):
        digest.update(str(path.relative_to(base)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@per_job
def counts_lineage(wildcards):
    """What aggregate's counts depend on besides their input files."""
    e = experiment(wildcards)
    return {"verifier": e.verifier_identity, "errors": ERRORS, "code": code_digest()}


ERRORS = verify_settings(config)["errors"]


@functools.cache
def summary_lineage():
    """What every summary table and figure depends on besides its input files: each run's key
    and verifier, the error policy and the code."""
    runs = sorted([e.dataset, e.model, e.run, e.verifier_identity] for e in EXPERIMENTS)
    return content_hash([runs, ERRORS, code_digest()], length=16)


# -- what the plugins declare: the rules ask the backend and the verifier, never list names ----
def backend_of(model):
    return BACKENDS.get(config["models"][model]["backend"])


@per_job
def model_input(wildcards):
    """sample_shard's model: the prepared model's manifest file, or nothing for backends that
    load no weights (released samples, a remote server)."""
    path = _model_input(wildcards.model)
    return ancient(path) if path else []


@functools.cache
def _model_input(model):
    return model_manifest_file(model) if backend_of(model).needs_weights else None


def verifier_of(wildcards):
    """The verifier class that judges the experiment's dataset."""
    return VERIFIERS.get(experiment(wildcards).verifier)


@per_job
def verifier_params(wildcards):
    """What verify_shard's verdicts depend on: verifier name, version and verdict-changing
    options. A change re-runs exactly the verify_shard jobs of that verifier's datasets."""
    return experiment(wildcards).verifier_identity


@per_job
def verify_mem_mb(wildcards):
    """Memory of a verify_shard job: what its verifier asks for (a Lean REPL pool needs GBs),
    else 2000 MB."""
    e = experiment(wildcards)
    return _verify_mem_mb(e.dataset, e.model, e.run)


@functools.cache
def _verify_mem_mb(dataset, model, run):
    e = RUNS[dataset, model, run]
    return VERIFIERS.get(e.verifier).resources(e.verifier_options).get("mem_mb", 2000)


VERDICT_CACHE = cache_path(config)


def model_dir(model):
    return f"models/{model_source(config['models'][model]['path'])}"


def model_path_for_source(source):
    for spec in config["models"].values():
        if model_source(spec["path"]) == source:
            return spec["path"]
    raise WorkflowError(f"no model in the config is prepared into models/{source}")


@per_job
def shard_problems(wildcards):
    """The problem file of a shard job (sample_shard, verify_shard)."""
    return ancient(problems_file(wildcards.dataset))


@per_job
def run_spec(wildcards):
    """Everything hashed into the run key (params of describe_run and sample_shard)."""
    return experiment(wildcards).run_spec


@per_job
def shard_index(wildcards):
    return int(wildcards.shard)


@per_job
def run_verdicts(wildcards):
    """aggregate's input: every verdict shard of the run."""
    return shard_files(experiment(wildcards), "verdicts")


def shard_files(e, kind):
    """Every shard file of an experiment: its samples or its verdicts."""
    pattern = rules.sample_shard.output.samples if kind == "samples" else rules.verify_shard.output[0]
    return expand(pattern, dataset=e.dataset, model=e.model, run=e.run, shard=range(e.num_shards))


def all_targets():
    # passk.parquet and figures/coverage.png come from the passk analysis (rules/analysis.smk)
    return analysis_targets()


# -- analysis (rules/analysis.smk) ----------------------------------------------------------
ANALYSIS = analysis_settings(config)
# Run entry keys that name files (inputs of the DAG); the others are values (params).
ANALYSIS_FILE_INPUTS = ("counts", "samples", "verdicts", "problems", "manifest")


def summary_table(table):
    return f"results/summary/{table}.parquet"


def _caption(name):
    return f"../report/{name}.rst" if (Path(workflow.basedir) / "report" / f"{name}.rst").exists() else None


@functools.cache
def _all_analysis_runs():
    """One entry per experiment: its labels, model spec, configured pass@k ks and the paths its
    analyses may read."""
    runs = []
    for e in EXPERIMENTS:
        spec = config["models"][e.model]
        runs.append(
            {
                "dataset": e.dataset,
                "model": e.model,
                "run": e.run,
                "counts": f"{e.folder}/counts.parquet",
                "samples": shard_files(e, "samples"),
                "verdicts": shard_files(e, "verdicts"),
                "problems": problems_file(e.dataset),
                # the prepared model's manifest (architecture for FLOPs); backends without weights have none
                "manifest": model_manifest_file(e.model) if backend_of(e.model).needs_weights else None,
                # only what the analyses read (cost): a backend's runtime options must not rerun them
                "spec": {k: spec[k] for k in ("backend", "path", "price", "parameters", "layers", "d_model") if k in spec},
                "ks": experiment_ks(config, e.num_samples),
            }
        )
    return runs


def analysis_runs(analysis, kinds=None):
    """The run entries passed to an analysis: labels plus only what the analysis reads."""
    kinds = analysis.reads if kinds is None else kinds
    return [
        {k: v for k, v in entry.items() if k in ("dataset", "model", "run", *kinds)}
        for entry in _all_analysis_runs()
    ]


def analysis_inputs(analysis):
    """Named inputs: the run files it reads (counts, shards, ...) and the tables of other analyses."""
    inputs = {}
    for kind in analysis.reads:
        if kind in ANALYSIS_FILE_INPUTS:
            files = set()
            for entry in _all_analysis_runs():
                value = entry[kind]
                if value:
                    files.update(value if isinstance(value, list) else [value])
            inputs[kind] = sorted(files)
    inputs.update({t: summary_table(t) for t in analysis.reads_tables})
    return inputs


def analysis_outputs(analysis, figure=True):
    """Named outputs: each table's parquet and HTML rendering, and the figure (with captions)."""
    outputs = {t: summary_table(t) for t in analysis.tables}
    for t in analysis.html:
        outputs[f"{t}_html"] = report(
            f"results/tables/{t}.html", caption=_caption(f"{t}_table"), category=analysis.category
        )
    if figure and analysis.figure:
        outputs["figure"] = analysis_figure(analysis)
    return outputs


def analysis_figure(analysis):
    return report(
        f"results/figures/{analysis.figure}.png",
        caption=_caption(analysis.figure),
        category=analysis.category,
    )


def analysis_targets():
    """Every file of every registered analysis."""
    targets = []
    for name in ANALYSES.names():
        analysis = ANALYSES.get(name)
        targets += [str(path) for path in analysis_outputs(analysis).values()]
    return targets


# -- software: conda envs (envs/*.yaml) and Apptainer images (containers/*.def) ---------------
# The env files install this library with `-e ${MONKEYFLOW_ROOT}` (pip expands the variable):
# Snakemake creates envs from a copy under .snakemake/conda/, where a relative path is wrong.
os.environ.setdefault("MONKEYFLOW_ROOT", str(Path(workflow.basedir).resolve()))
# Images are pinned in containers/images.lock.yaml (definition, versioned tag, digest) and built
# or pulled into $MONKEYFLOW_CONTAINERS (default: containers/ beside this workflow) by
# `monkeyflow containers build|pull`; the file name carries the version and, once built, the
# digest. See docs/cluster.md.
CONTAINER_LOCK = load_container_lock(Path(workflow.basedir) / "containers" / "images.lock.yaml")


def container_image(name):
    folder = os.environ.get("MONKEYFLOW_CONTAINERS") or str(Path(workflow.basedir) / "containers")
    return container_image_path(name, folder, CONTAINER_LOCK)


def model_manifest_file(model):
    return f"models/manifests/{model_source(config['models'][model]['path'])}.json"


@per_job
def shard_gpus(wildcards):
    """GPUs a sample_shard job asks SLURM for: the model's `gpus`, else what its backend says
    (vLLM: tensor_parallel_size; CPU backends and remote servers: 0)."""
    return _model_gpus(wildcards.model)


@functools.cache
def _model_gpus(model):
    spec = config["models"][model]
    if "gpus" in spec:
        return spec["gpus"]
    backend = backend_of(model)
    return backend.gpus(backend.resolve(spec, where=f"models.{model}"))


@per_job
def shard_container(wildcards):
    return _model_container(wildcards.model)


@functools.cache
def _model_container(model):
    return container_image(backend_of(model).container)


@per_job
def verify_container(wildcards):
    return _verifier_container(experiment(wildcards).verifier)


@functools.cache
def _verifier_container(verifier):
    return container_image(VERIFIERS.get(verifier).container)
