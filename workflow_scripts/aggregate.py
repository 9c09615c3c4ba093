"""aggregate: per-problem counts (n, c) over all verdict shards of a run."""

from monkeyflow.logs import log_to
from monkeyflow.stages import aggregate

with log_to(snakemake.log[0]):
    counts = aggregate(snakemake.input.verdicts, snakemake.output[0], snakemake.params.errors)
    print(counts)
