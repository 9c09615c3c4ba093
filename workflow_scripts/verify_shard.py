"""verify_shard: one verdict row per sample of a shard."""

from monkeyflow.config import load_config
from monkeyflow.logs import log_to
from monkeyflow.stages import verify_shard

with log_to(snakemake.log[0]):
    wc = snakemake.wildcards
    identity = dict(snakemake.params.verifier)
    # The verifier's full options come from the config, not from params: params hold only what
    # changes verdicts (a params change reruns the job), and options such as the number of
    # workers or a Lean server's URL must not rerun finished shards.
    (exp,) = [
        e
        for e in load_config(snakemake.config)
        if (e.dataset, e.model, e.run) == (wc.dataset, wc.model, wc.run)
    ]
    if exp.verifier_identity != identity:
        raise RuntimeError(
            f"verifier settings changed while planning: {identity} != {exp.verifier_identity}"
        )
    verify_shard(
        problems_path=snakemake.input.problems,
        samples_path=snakemake.input.samples,
        verifier=exp.verifier,
        options=exp.verifier_options,
        out=snakemake.output[0],
        cache_path=snakemake.params.cache,
    )
