"""passk: mean pass@k over problems for every run -> results/summary/passk.parquet."""

from monkeyflow.logs import log_to
from monkeyflow.stages import passk_summary

with log_to(snakemake.log[0]):
    runs = [
        dict(entry, counts=path)
        for entry, path in zip(snakemake.params.runs, snakemake.input.counts, strict=True)
    ]
    print(passk_summary(runs, snakemake.output[0]))
