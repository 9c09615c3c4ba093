# Shard i holds samples [i*shard_size, (i+1)*shard_size) of every problem, so raising
# num_samples only adds shards. params carry only what is fixed for a run (its spec, hashed into
# {run}) and the shard index, never num_samples, so old shards are never rerun.


rule describe_run:
    output:
        "results/{dataset}/{model}/{run}/run.json",
    params:
        spec=lambda wc: experiment(wc).run_spec,
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
        problems=lambda wc: problems_file(wc.dataset),
        # replay reads released samples and openai asks a server: no prepared model folder
        # (the manifest file, not the folder: see rule model_manifest)
        model=lambda wc: [] if config["models"][wc.model]["backend"] in ("replay", "openai") else model_manifest_file(wc.model),
    output:
        samples="results/{dataset}/{model}/{run}/samples/shard-{shard}.jsonl.zst",
        stats="results/{dataset}/{model}/{run}/samples/shard-{shard}.stats.json",
    params:
        spec=lambda wc: experiment(wc).run_spec,
        shard=lambda wc: int(wc.shard),
    log:
        "logs/sample_shard/{dataset}/{model}/{run}/shard-{shard}.log",
    threads: 2
    resources:
        gpu=shard_gpus,
    cache: "omit-software"
    conda:
        "../envs/sampling.yaml"
    container:
        container_image("vllm")
    script:
        "../workflow_scripts/sample_shard.py"
