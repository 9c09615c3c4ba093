rule aggregate:
    input:
        verdicts=lambda wc: shard_files(experiment(wc), "verdicts"),
        run="results/{dataset}/{model}/{run}/run.json",
    output:
        "results/{dataset}/{model}/{run}/counts.parquet",
    params:
        errors=ERRORS,
        lineage=counts_lineage,
    log:
        "logs/aggregate/{dataset}/{model}/{run}.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/aggregate.py"


rule passk:
    input:
        counts=counts_files(),
    output:
        "results/summary/passk.parquet",
    params:
        lineage=summary_lineage(),
        runs=[
            {"dataset": e.dataset, "model": e.model, "run": e.run, "ks": experiment_ks(config, e.num_samples)}
            for e in EXPERIMENTS
        ],
    log:
        "logs/passk.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/passk.py"
