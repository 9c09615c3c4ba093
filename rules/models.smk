rule prepare_model:
    output:
        directory("models/{source}"),
    params:
        path=lambda wc: model_path_for_source(wc.source),
    log:
        "logs/prepare_model/{source}.log",
    cache: "omit-software"
    conda:
        "../envs/monkeyflow.yaml"
    script:
        "../workflow_scripts/prepare_model.py"
