"""cost: coverage vs inference FLOPs and dollars, and the cost to reach target coverages."""

from monkeyflow.analysis import cost
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    table, reach = cost(
        p.runs,
        out.table,
        out.reach,
        out.html,
        out.figure,
        targets=p.cost["targets"],
        share_prompt=p.cost["share_prompt"],
        points=p.points,
    )
    print(table)
    print(reach)
