# monkeyflow: repeated sampling (Large Language Monkeys, arXiv 2407.21787) as an incremental workflow.
#   problems -> model -> sample shards -> verdict shards -> counts -> pass@k -> figures
# See README.md; the data flow and path rules are in rules/common.smk.

from snakemake.utils import min_version

min_version("9.0")


# A YAML mistake in config.yaml is reported with its line and column (Snakemake's own loader
# names neither), before Snakemake reads it.
include: "rules/configcheck.smk"


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/problems.smk"
include: "rules/models.smk"
include: "rules/sampling.smk"
include: "rules/verify.smk"
include: "rules/metrics.smk"
include: "rules/analysis.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# On the login node under SLURM: cheap, and hub datasets need the network that compute nodes
# often lack (prepare_problems).
localrules:
    prepare_problems,
    describe_run,
    aggregate,
    passk,
    plot_coverage,
    coverage_ci,
    scaling_fit,
    family_alignment,
    cost,
    plan,
