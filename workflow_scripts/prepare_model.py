"""prepare_model: obtain a model once (the embedded GGUF is converted to safetensors)."""

from monkeyflow.logs import log_to
from monkeyflow.models import prepare_model

with log_to(snakemake.log[0]):
    manifest = prepare_model(snakemake.params.path, snakemake.output[0])
    print(manifest)
