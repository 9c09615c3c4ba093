# Shard i holds samples [i*shard_size, (i+1)*shard_size) of every problem, so raising
# num_samples only adds shards. params carry only what is fixed for a run (its spec, hashed into
# {run}) and the shard index, never num_samples, so old shards are never rerun.


rule describe_run:
    output:
        "results/{dataset}/{model}/{run}/run.json",
    params:
        spec=run_spec,
    log:
        "logs/describe_run/{dataset}/{model}/{run}.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/describe_run.py"


rule sample_shard:
    input:
        problems=shard_problems,
        # the manifest file, not the folder (see rule model_manifest); none for backends that
        # load no weights
        model=model_input,
    output:
        samples="results/{dataset}/{model}/{run}/samples/shard-{shard}.jsonl.zst",
        stats="results/{dataset}/{model}/{run}/samples/shard-{shard}.stats.json",
    params:
        spec=run_spec,
        shard=shard_index,
    log:
        "logs/sample_shard/{dataset}/{model}/{run}/shard-{shard}.log",
    threads: 2
    resources:
        gpu=shard_gpus,
    cache: "omit-software"
    conda:
        "../envs/sampling.yaml"
    container:
        shard_container
    script:
        "../workflow_scripts/sample_shard.py"
