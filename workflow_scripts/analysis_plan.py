"""plan: which model and k maximise predicted coverage for each configured budget."""

from monkeyflow.analysis import plan_stage
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    inp, out = snakemake.input, snakemake.output
    print(
        plan_stage(
            inp.fits, inp.cost, out.table, out.html, out.figure, dict(snakemake.params.budgets)
        )
    )
