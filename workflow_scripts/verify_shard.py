"""verify_shard: one verdict row per sample of a shard."""

from monkeyflow.logs import log_to
from monkeyflow.stages import verify_shard

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    settings = snakemake.config.get("verify", {})  # noqa: F821
    cache = "results/cache/verdicts.sqlite" if settings.get("cache", True) else None
    verify_shard(
        problems_path=snakemake.input.problems,  # noqa: F821
        samples_path=snakemake.input.samples,  # noqa: F821
        verifier_name=snakemake.params.verifier,  # noqa: F821
        out=snakemake.output[0],  # noqa: F821
        cache_path=cache,
    )
