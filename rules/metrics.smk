rule aggregate:
    input:
        verdicts=run_verdicts,
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

