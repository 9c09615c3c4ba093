"""model_manifest: the prepared model's manifest as one file, weights relative to models/."""

import json
import os
from pathlib import Path

from monkeyflow.io import write_json
from monkeyflow.logs import log_to

with log_to(snakemake.log[0]):
    folder = Path(snakemake.input[0])
    out = Path(snakemake.output[0])
    manifest = json.loads((folder / "manifest.json").read_text())
    if (
        manifest.get("kind") == "embedded"
    ):  # weights inside the folder: point there from out's folder
        manifest["weights"] = os.path.relpath(folder / manifest["weights"], out.parent)
    write_json(out, manifest)
    print(manifest)
