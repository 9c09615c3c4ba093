"""prepare_problems: canonical Problem records of one dataset (sub)set."""

from monkeyflow.data import DatasetSpec
from monkeyflow.logs import log_to
from monkeyflow.stages import prepare_problems

with log_to(snakemake.log[0]):
    spec = DatasetSpec.from_config(snakemake.wildcards.dataset, dict(snakemake.params.spec))
    problems = prepare_problems(spec, snakemake.output[0])
    print(f"{len(problems)} problems of {spec.name} -> {snakemake.output[0]}")
