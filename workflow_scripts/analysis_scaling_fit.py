"""scaling_fit: log(coverage) = a k^b per run, extrapolated with a bootstrap band."""

from monkeyflow.analysis import scaling_fits
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    fit = p.fit
    print(
        scaling_fits(
            p.runs,
            out.table,
            out.curve,
            out.html,
            out.figure,
            k_min=fit["k_min"],
            k_max=fit["k_max"],
            resamples=fit["resamples"],
            extrapolate_to=fit["extrapolate_to"],
            level=p.level,
            seed=p.seed,
            points=p.points,
        ).drop("a_boot", "b_boot")
    )
