"""plot_coverage: coverage vs k, one panel per dataset, one line per model."""

from monkeyflow.io import read_parquet
from monkeyflow.logs import log_to
from monkeyflow.plots.coverage import coverage_figure, save_figure

with log_to(snakemake.log[0]):
    save_figure(coverage_figure(read_parquet(snakemake.input[0])), snakemake.output[0])
