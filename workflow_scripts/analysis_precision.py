"""precision: success rate vs k of selection rules (votes, best-of-N) under the coverage ceiling."""

from monkeyflow.analysis import precision
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    settings = p.precision
    print(
        precision(
            p.runs,
            out.table,
            out.html,
            out.figure,
            draws=settings["draws"],
            seed=p.seed,
            reward_model=settings["reward_model"],
            reward_batch_size=settings["reward_batch_size"],
            points=p.points,
        )
    )
