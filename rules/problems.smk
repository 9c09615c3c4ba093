rule prepare_problems:
    output:
        "data/problems/{dataset}/{pkey}.jsonl",
    params:
        spec=lambda wc: problem_spec(wc.dataset),
    log:
        "logs/prepare_problems/{dataset}/{pkey}.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/prepare_problems.py"
