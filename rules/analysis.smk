# The paper's analysis over the counts and shards on disk: one rule per analysis, each writing a
# table (parquet, plus an HTML rendering for `snakemake --report`) and a figure. Settings come
# from the config's `analysis:` section (defaults in schemas/config.schema.yaml); the input
# helpers (analysis_runs, analysis_inputs, analysis_targets) are in common.smk.
from monkeyflow.config import analysis_settings

ANALYSIS = analysis_settings(config)


rule coverage_ci:
    input:
        counts=analysis_inputs("counts"),
    output:
        table="results/summary/coverage_ci.parquet",
        html=report("results/tables/coverage_ci.html", caption="../report/coverage_ci_table.rst", category="Coverage"),
        figure=report("results/figures/coverage_ci.png", caption="../report/coverage_ci.rst", category="Coverage"),
    params:
        lineage=summary_lineage(),
        runs=analysis_runs(),
        level=ANALYSIS["ci_level"],
        resamples=ANALYSIS["resamples"],
        seed=ANALYSIS["seed"],
        points=ANALYSIS["points"],
    log:
        "logs/analysis/coverage_ci.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_coverage_ci.py"


rule scaling_fit:
    input:
        counts=analysis_inputs("counts"),
    output:
        table="results/summary/fits.parquet",
        curve="results/summary/extrapolation.parquet",
        html=report("results/tables/fits.html", caption="../report/fits_table.rst", category="Scaling"),
        figure=report("results/figures/scaling.png", caption="../report/scaling.rst", category="Scaling"),
    params:
        lineage=summary_lineage(),
        runs=analysis_runs(),
        fit=ANALYSIS["fit"],
        level=ANALYSIS["ci_level"],
        seed=ANALYSIS["seed"],
        points=ANALYSIS["points"],
    log:
        "logs/analysis/scaling_fit.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_scaling_fit.py"


rule family_alignment:
    input:
        "results/summary/coverage_ci.parquet",
    output:
        table="results/summary/alignment.parquet",
        html=report("results/tables/alignment.html", caption="../report/alignment_table.rst", category="Scaling"),
        figure=report("results/figures/alignment.png", caption="../report/alignment.rst", category="Scaling"),
    params:
        lineage=summary_lineage(),
        anchor=ANALYSIS["alignment"]["anchor"],
    log:
        "logs/analysis/family_alignment.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_family_alignment.py"


rule cost:
    input:
        counts=analysis_inputs("counts"),
        samples=analysis_inputs("samples"),
        manifests=analysis_inputs("manifest"),
    output:
        table="results/summary/cost.parquet",
        reach="results/summary/cost_to_reach.parquet",
        html=report("results/tables/cost_to_reach.html", caption="../report/cost_table.rst", category="Cost"),
        figure=report("results/figures/coverage_flops.png", caption="../report/coverage_flops.rst", category="Cost"),
    params:
        lineage=summary_lineage(),
        runs=analysis_runs(),
        cost=ANALYSIS["cost"],
        points=ANALYSIS["points"],
    log:
        "logs/analysis/cost.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_cost.py"


rule precision:
    input:
        verdicts=analysis_inputs("verdicts"),
        samples=analysis_inputs("samples"),
        problems=analysis_inputs("problems"),
    output:
        table="results/summary/precision.parquet",
        html=report("results/tables/precision.html", caption="../report/precision_table.rst", category="Precision"),
        figure=report("results/figures/precision.png", caption="../report/precision.rst", category="Precision"),
    params:
        lineage=summary_lineage(),
        runs=analysis_runs(),
        precision=ANALYSIS["precision"],
        seed=ANALYSIS["seed"],
        points=ANALYSIS["points"],
    log:
        "logs/analysis/precision.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_precision.py"


rule plan:
    input:
        fits="results/summary/fits.parquet",
        cost="results/summary/cost.parquet",
    output:
        table="results/summary/plan.parquet",
        html=report("results/tables/plan.html", caption="../report/plan_table.rst", category="Planner"),
        figure=report("results/figures/plan.png", caption="../report/plan.rst", category="Planner"),
    params:
        lineage=summary_lineage(),
        budgets=ANALYSIS["plan"],
    log:
        "logs/analysis/plan.log",
    conda:
        "../envs/monkeyflow.yaml"
    container:
        container_image("analysis")
    script:
        "../workflow_scripts/analysis_plan.py"
