"""`monkeyflow containers build|pull` and the lock file, with a fake `apptainer` on PATH.

No Apptainer exists on these machines: the fake records each command line and writes a small
file where Apptainer would write the image, so digests and file names are real.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from monkeyflow import containers
from monkeyflow.cli import main
from monkeyflow.sampling.base import BACKENDS
from monkeyflow.verify import VERIFIERS

REPO = Path(__file__).resolve().parents[2]
FAKE = """#!/bin/sh
echo "$@" >> "{log}"
[ "$1" = "build" ] && echo "cwd $PWD" >> "{log}.cwd"
[ "$1" = "--version" ] && {{ echo "apptainer version 1.3.6"; exit 0; }}
[ -n "$FAKE_APPTAINER_FAIL" ] && {{ echo "FATAL: build failed" >&2; exit 255; }}
case "$1" in
  build) for last; do :; done; eval target=\\${{$(($#-1))}}; printf 'SIF from %s\\n' "$last" > "$target" ;;
  pull) printf '%s' "${{FAKE_PULL_CONTENT:-pulled}}" > "$2" ;;
esac
"""


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apptainer.calls"
    script = bin_dir / "apptainer"
    script.write_text(FAKE.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return log


@pytest.fixture
def lock(tmp_path) -> Path:
    """A copy of the repository's lock and definitions."""
    folder = tmp_path / "containers"
    folder.mkdir()
    for p in (REPO / "containers").glob("*.def"):
        shutil.copy(p, folder / p.name)
    shutil.copy(REPO / "containers" / "images.lock.yaml", folder / "images.lock.yaml")
    return folder / "images.lock.yaml"


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_every_image_a_rule_names_is_in_the_lock_with_its_definition():
    images = containers.load_lock(REPO / "containers" / "images.lock.yaml")
    named = {"analysis", "vllm"}  # named in rules/*.smk directly
    named |= {BACKENDS.get(n).container for n in BACKENDS.names()}
    named |= {VERIFIERS.get(n).container for n in VERIFIERS.names()}
    assert named <= set(images), named - set(images)
    for image in images.values():
        assert (REPO / "containers" / image.definition).is_file(), image
        assert image.version[0].isdigit(), image  # a versioned tag, never `latest`
    # the rules name the versioned files: no digest yet (nothing was built here)
    assert containers.image_path("vllm", "/img", images) == "/img/monkeyflow-vllm-0.33.0.sif"


def test_build_runs_apptainer_on_each_definition_and_pins_what_it_built(
    fake_apptainer, lock, tmp_path, capsys
):
    dest = tmp_path / "sif"
    args = ["containers", "build", "--lock", str(lock), "--dest", str(dest)]
    assert main([*args, "--build-arg=--fakeroot"]) == 0
    calls = fake_apptainer.read_text().splitlines()
    assert calls == [
        f"build --fakeroot {dest}/.monkeyflow-{name}-{version}.building.sif "
        f"{lock.parent}/{name}.def"
        for name, version in [
            ("analysis", "0.1.0"),
            ("lean", "4.15.0"),
            ("sandbox", "0.1.0"),
            ("vllm", "0.33.0"),
        ]
    ]
    # run in the checkout (the lock's folder's parent), where the definitions' %files are
    assert set(Path(f"{fake_apptainer}.cwd").read_text().splitlines()) == {f"cwd {tmp_path}"}
    images = containers.load_lock(lock)
    digest = sha(f"SIF from {lock.parent}/vllm.def\n")
    assert images["vllm"].digest == digest
    built = Path(containers.image_path("vllm", dest, images))
    assert built.name == f"monkeyflow-vllm-0.33.0-{digest[7:19]}.sif" and built.is_file()
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        i.file_name() for i in images.values()
    )  # no temporary file left
    assert lock.read_text().startswith("# The Apptainer images")  # header kept
    assert f"vllm: built: {built}" in capsys.readouterr().out
    # a second build finds every image up to date and runs nothing
    assert main(args) == 0
    assert len(fake_apptainer.read_text().splitlines()) == 4
    assert "up to date" in capsys.readouterr().out


def test_a_failed_build_leaves_the_lock_and_no_file(fake_apptainer, lock, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_APPTAINER_FAIL", "1")
    before = lock.read_bytes()
    dest = tmp_path / "sif"
    args = ["containers", "build", "--lock", str(lock), "--dest", str(dest), "--image", "sandbox"]
    assert main(args) == 1
    assert lock.read_bytes() == before and list(dest.iterdir()) == []


def test_pull_refuses_images_without_a_published_digest(fake_apptainer, lock, tmp_path, capsys):
    assert main(["containers", "pull", "--lock", str(lock), "--dest", str(tmp_path)]) == 1
    assert "build it with `monkeyflow containers build`" in capsys.readouterr().err
    assert not fake_apptainer.exists()


def publish(lock: Path, key: str, content: str) -> None:
    data = yaml.safe_load(lock.read_text())
    data["images"][key]["published"] = f"oras://ghcr.io/example/{key}:1"
    data["images"][key]["digest"] = sha(content)
    lock.write_text(yaml.safe_dump(data))


def test_pull_checks_the_digest(fake_apptainer, lock, tmp_path, monkeypatch, capsys):
    publish(lock, "analysis", "the published image")
    dest = tmp_path / "sif"
    args = ["containers", "pull", "--lock", str(lock), "--dest", str(dest), "--image", "analysis"]
    monkeypatch.setenv("FAKE_PULL_CONTENT", "something else")
    assert main(args) == 1
    assert "the lock pins" in capsys.readouterr().err and list(dest.iterdir()) == []
    monkeypatch.setenv("FAKE_PULL_CONTENT", "the published image")
    assert main(args) == 0
    assert fake_apptainer.read_text().splitlines()[-1] == (
        f"pull {dest}/.monkeyflow-analysis-0.1.0.pulling.sif oras://ghcr.io/example/analysis:1"
    )
    images = containers.load_lock(lock)
    assert Path(containers.image_path("analysis", dest, images)).read_text() == (
        "the published image"
    )


def test_no_apptainer_and_bad_locks_are_clear_errors(lock, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    dest = tmp_path / "sif"
    assert main(["containers", "build", "--lock", str(lock), "--dest", str(dest)]) == 1
    assert "no `apptainer` (or `singularity`) command on PATH" in capsys.readouterr().err
    assert not dest.exists()
    bad = tmp_path / "bad.lock.yaml"
    for text, message in [
        ("images: {x: {definition: x.def, tag: latest}}", "expected name:version"),
        ("images: {x: {definition: x.def, tag: 'x:1', digest: md5:00}}", "expected sha256"),
        ("images: {x: {definition: ../x.def, tag: 'x:1'}}", "a .def file name"),
        ("[1, 2]", "expected a mapping `images:`"),
    ]:
        bad.write_text(text)
        assert main(["containers", "build", "--lock", str(bad)]) == 1
        assert message in capsys.readouterr().err, text
    assert main(["containers", "build", "--lock", str(tmp_path / "none.yaml")]) == 1
    assert "run from the monkeyflow checkout" in capsys.readouterr().err
