rule plot_coverage:
    input:
        "results/summary/passk.parquet",
    output:
        report(
            "results/figures/coverage.png",
            caption="../report/coverage.rst",
            category="Coverage",
        ),
    log:
        "logs/plot_coverage.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/plot_coverage.py"
