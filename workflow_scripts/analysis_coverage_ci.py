"""coverage_ci: coverage at log-spaced k with bootstrap intervals over problems, per run."""

from monkeyflow.analysis import coverage_ci
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    print(
        coverage_ci(p.runs, out.table, out.html, out.figure, p.level, p.resamples, p.seed, p.points)
    )
