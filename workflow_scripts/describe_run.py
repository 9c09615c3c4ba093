"""describe_run: write what produced a run folder (the spec hashed into its name)."""

from monkeyflow.io import write_json
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    write_json(
        snakemake.output[0], {"run": snakemake.wildcards.run, "spec": dict(snakemake.params.spec)}
    )
