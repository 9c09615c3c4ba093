"""sample_shard: draw one shard of samples for every problem of a dataset."""

import os

from monkeyflow.config import load_config, model_spec
from monkeyflow.logs import log_to
from monkeyflow.stages import sample_shard

if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    with log_to(snakemake.log[0]):
        wc = snakemake.wildcards
        config = snakemake.config
        os.environ.setdefault("MONKEYFLOW_THREADS", str(snakemake.threads))
        (exp,) = [
            e
            for e in load_config(config)
            if (e.dataset, e.model, e.run) == (wc.dataset, wc.model, wc.run)
        ]
        samples = sample_shard(
            problems_path=snakemake.input.problems,
            model_dir=snakemake.input.model,
            spec=model_spec(config, wc.model),
            params=exp.params,
            run=exp.run,
            shard=int(wc.shard),
            shard_size=exp.shard_size,
            out=snakemake.output.samples,
            stats_out=snakemake.output.stats,
        )
        print(f"{len(samples)} samples -> {snakemake.output.samples}")
