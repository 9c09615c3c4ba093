"""Every analysis rule (rules/analysis.smk): read the runs, compute the tables, write them, draw
the figure (monkeyflow.analysis.run_analysis; the analysis is named by the rule's params)."""

from monkeyflow.analysis import run_analysis
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    p = snakemake.params
    run_analysis(
        p.analysis,
        p.runs,
        p.settings,
        dict(snakemake.input.items()),
        dict(snakemake.output.items()),
    )
