"""Apptainer images pinned in containers/images.lock.yaml: `monkeyflow containers build|pull`.

The lock names every image a rule uses (its definition file, a versioned tag, where it is
published and the sha256 digest of the .sif). `build` runs `apptainer build` on the definition
and records the digest of what it built; `pull` fetches the published image and refuses one whose
digest differs from the lock. The workflow (rules/common.smk, `image_path`) names the file that
carries the digest, so `snakemake --sdm apptainer` runs exactly the pinned image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from monkeyflow.io import write_bytes_atomic

LOCK_NAME = "images.lock.yaml"
TAG = re.compile(r"(?P<name>[a-z0-9][a-z0-9._-]*):(?P<version>[A-Za-z0-9][A-Za-z0-9._+-]*)")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PUBLISHED = re.compile(r"(oras|library|docker|https?)://\S+")


class ContainerError(ValueError):
    """A lock file or image that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Image:
    key: str  # what rules and plugins call it: vllm, analysis, sandbox, lean
    definition: str
    name: str
    version: str
    published: str | None
    digest: str | None

    def file_name(self, digest: str | None = None) -> str:
        digest = self.digest if digest is None else digest
        suffix = f"-{digest.removeprefix('sha256:')[:12]}" if digest else ""
        return f"{self.name}-{self.version}{suffix}.sif"


def load_lock(path: str | os.PathLike) -> dict[str, Image]:
    """The images of a lock file, checked (tag, digest and reference formats)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ContainerError(
            f"no lock file {path}: run from the monkeyflow checkout or pass --lock"
        ) from None
    except yaml.YAMLError as exc:
        raise ContainerError(f"{path}: not valid YAML: {exc}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict) or not images:
        raise ContainerError(f"{path}: expected a mapping `images:` of image entries")
    result = {}
    for key, entry in images.items():
        where = f"{path}: images.{key}"
        if not isinstance(entry, dict):
            raise ContainerError(f"{where}: expected a mapping")
        tag = TAG.fullmatch(str(entry.get("tag", "")))
        if not tag:
            raise ContainerError(f"{where}.tag: expected name:version, got {entry.get('tag')!r}")
        definition = entry.get("definition")
        if not isinstance(definition, str) or "/" in definition or not definition.endswith(".def"):
            raise ContainerError(f"{where}.definition: a .def file name in the lock's folder")
        digest, published = entry.get("digest"), entry.get("published")
        if digest is not None and not DIGEST.fullmatch(str(digest)):
            raise ContainerError(f"{where}.digest: expected sha256:<64 hex> or null")
        if published is not None and not PUBLISHED.fullmatch(str(published)):
            raise ContainerError(f"{where}.published: expected oras://, library:// ... or null")
        result[key] = Image(
            key, definition, tag["name"], tag["version"], published and str(published), digest
        )
    return result


def write_lock(path: str | os.PathLike, images: dict[str, Image]) -> None:
    """Rewrite the lock's entries, keeping its leading comment block."""
    path = Path(path)
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    data = {
        "images": {
            key: {
                "definition": image.definition,
                "tag": f"{image.name}:{image.version}",
                "published": image.published,
                "digest": image.digest,
            }
            for key, image in sorted(images.items())
        }
    }
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False)
    write_bytes_atomic(path, text.encode())


def image_path(key: str, folder: str | os.PathLike, images: dict[str, Image]) -> str:
    """The .sif a rule runs in: `folder/<name>-<version>[-<digest prefix>].sif`."""
    if key not in images:
        raise ContainerError(f"no image {key!r} in the lock file (known: {', '.join(images)})")
    return str(Path(folder) / images[key].file_name())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def apptainer() -> str:
    """The Apptainer (or Singularity) command."""
    for name in ("apptainer", "singularity"):
        if found := shutil.which(name):
            return found
    raise ContainerError(
        "no `apptainer` (or `singularity`) command on PATH: install Apptainer "
        "(https://apptainer.org) or load its module (`module load apptainer`)"
    )


def build_command(binary: str, target: Path, definition: Path, extra: list[str]) -> list[str]:
    return [binary, "build", *extra, str(target), str(definition)]


def pull_command(binary: str, target: Path, reference: str) -> list[str]:
    return [binary, "pull", str(target), reference]


def _select(images: dict[str, Image], keys: list[str] | None) -> list[Image]:
    unknown = sorted(set(keys or []) - set(images))
    if unknown:
        raise ContainerError(
            f"no image {', '.join(unknown)} in the lock (known: {', '.join(images)})"
        )
    return [images[k] for k in (keys or sorted(images))]


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    print("+ " + " ".join(cmd), flush=True)
    try:
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, cwd=cwd)
    except OSError as exc:
        raise ContainerError(f"{what}: cannot run {cmd[0]}: {exc}") from None
    if result.returncode != 0:
        raise ContainerError(f"{what}: `{' '.join(cmd)}` failed with exit code {result.returncode}")


def _place(tmp: Path, folder: Path, image: Image, digest: str) -> Path:
    final = folder / image.file_name(digest)
    os.replace(tmp, final)
    return final


def build(
    lock: str | os.PathLike,
    dest: str | os.PathLike,
    keys: list[str] | None = None,
    *,
    force: bool = False,
    build_args: list[str] | None = None,
) -> list[tuple[Image, Path, str]]:
    """Build each selected image from its definition and record its digest in the lock.

    Apptainer runs in the checkout's root (the lock's folder's parent): the definitions copy
    `src/` and `pyproject.toml` from there.
    An image whose digest-named file already exists with the locked digest is kept (unless
    `force`). Returns (image, file, what happened) per image."""
    lock = Path(lock).resolve()
    images = load_lock(lock)
    binary = apptainer()
    folder = Path(dest).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    root = lock.parent.parent  # the checkout: the definitions' %files are relative to it
    done = []
    for image in _select(images, keys):
        definition = lock.parent / image.definition
        if not definition.is_file():
            raise ContainerError(f"{image.key}: no definition file {definition}")
        existing = folder / image.file_name()
        if image.digest and existing.is_file() and not force:
            if sha256_file(existing) == image.digest:
                done.append((image, existing, "up to date"))
                continue
        tmp = folder / f".{image.name}-{image.version}.building.sif"
        tmp.unlink(missing_ok=True)
        try:
            cmd = build_command(binary, tmp, definition, build_args or [])
            _run(cmd, f"build {image.key}", cwd=root)
            if not tmp.is_file():
                raise ContainerError(f"build {image.key}: apptainer wrote no image {tmp}")
            digest = sha256_file(tmp)
            final = _place(tmp, folder, image, digest)
        finally:
            tmp.unlink(missing_ok=True)
        what = "built" if digest == image.digest or image.digest is None else "rebuilt"
        if image.digest and digest != image.digest:
            what += f" (digest changed from {image.digest})"
        images[image.key] = Image(**{**image.__dict__, "digest": digest})
        write_lock(lock, images)
        done.append((images[image.key], final, what))
    return done


def pull(
    lock: str | os.PathLike,
    dest: str | os.PathLike,
    keys: list[str] | None = None,
    *,
    force: bool = False,
) -> list[tuple[Image, Path, str]]:
    """Pull each selected image from where the lock says it is published; its digest must match
    the lock's (an image without a locked digest is refused: build it, or pin one)."""
    images = load_lock(lock)
    selected = _select(images, keys)
    missing = [i.key for i in selected if not i.published or not i.digest]
    if missing:
        raise ContainerError(
            f"no published image with a pinned digest for {', '.join(missing)} in {lock}: "
            "build it with `monkeyflow containers build` (no image of this repository has "
            "been published)"
        )
    binary = apptainer()
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for image in selected:
        final = folder / image.file_name()
        if final.is_file() and not force and sha256_file(final) == image.digest:
            done.append((image, final, "up to date"))
            continue
        tmp = folder / f".{image.name}-{image.version}.pulling.sif"
        tmp.unlink(missing_ok=True)
        try:
            _run(pull_command(binary, tmp, str(image.published)), f"pull {image.key}")
            if not tmp.is_file():
                raise ContainerError(f"pull {image.key}: apptainer wrote no image {tmp}")
            digest = sha256_file(tmp)
            if digest != image.digest:
                raise ContainerError(
                    f"pull {image.key}: {image.published} has digest {digest}, the lock pins "
                    f"{image.digest}; not using it"
                )
            final = _place(tmp, folder, image, digest)
        finally:
            tmp.unlink(missing_ok=True)
        done.append((image, final, "pulled"))
    return done


def summary(results: list[tuple[Image, Path, str]]) -> list[str]:
    return [f"{image.key}: {what}: {path} ({image.digest})" for image, path, what in results]


def default_dest() -> Path:
    """Where rules look for images: $MONKEYFLOW_CONTAINERS, else containers/ here."""
    return Path(os.environ.get("MONKEYFLOW_CONTAINERS") or "containers")
