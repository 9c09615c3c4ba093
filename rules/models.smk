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
    container:
        container_image("vllm")
    script:
        "../workflow_scripts/prepare_model.py"


# The model as a small file that names it (embedded: package + GGUF sha256; hub: its id; local:
# its folder), weights path relative to models/. sample_shard takes this file, not the folder:
# inside a SLURM job Snakemake's between-workflow cache hashes the content of a job's inputs and
# cannot hash a directory, and this content is the model's identity in any project folder.
rule model_manifest:
    input:
        "models/{source}",
    output:
        "models/manifests/{source}.json",
    log:
        "logs/model_manifest/{source}.log",
    localrule: True
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/model_manifest.py"
