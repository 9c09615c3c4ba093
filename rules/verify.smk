# One verdict row per sample of a shard. params carry the verifier's identity (name, version,
# verdict-changing options), so fixing a verifier (a version bump) or changing its options re-runs
# exactly these jobs for its datasets, never sample_shard; and the verdict cache's path.


rule verify_shard:
    input:
        problems=shard_problems,
        # a copy of the path ([:]): ancient() flags the string object it is given
        samples=ancient(rules.sample_shard.output.samples[:]),
    output:
        "results/{dataset}/{model}/{run}/verdicts/shard-{shard}.parquet",
    params:
        verifier=verifier_params,
        cache=VERDICT_CACHE,
    log:
        "logs/verify_shard/{dataset}/{model}/{run}/shard-{shard}.log",
    resources:
        mem_mb=verify_mem_mb,
    cache: "omit-software"
    conda:
        "../envs/monkeyflow.yaml"
    container:
        verify_container
    script:
        "../workflow_scripts/verify_shard.py"
