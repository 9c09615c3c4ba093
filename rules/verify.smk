rule verify_shard:
    input:
        problems=lambda wc: problems_file(wc.dataset),
        samples="results/{dataset}/{model}/{run}/samples/shard-{shard}.jsonl.zst",
    output:
        "results/{dataset}/{model}/{run}/verdicts/shard-{shard}.parquet",
    params:
        verifier=lambda wc: get_dataset(dataset_spec(config, wc.dataset)).verifier,
    log:
        "logs/verify_shard/{dataset}/{model}/{run}/shard-{shard}.log",
    cache: "omit-software"
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("sandbox")
    script:
        "../workflow_scripts/verify_shard.py"
