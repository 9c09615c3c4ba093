"""family_alignment: shift each model's coverage curve in log k to pass a common anchor."""

from monkeyflow.analysis import alignment
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    out = snakemake.output
    print(alignment(snakemake.input[0], out.table, out.html, out.figure, snakemake.params.anchor))
