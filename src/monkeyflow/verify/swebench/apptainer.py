"""The `apptainer` runtime: each instance's official evaluation image, run with Apptainer.

The image is `docker://swebench/sweb.eval.x86_64.<instance id>` (in registries `__` becomes
`_1776_`, as the harness's `TestSpec.instance_image_key` spells it), pulled once per instance
into `<cache>/sif/<instance id>.sif` and reused. A patch is judged in one container started with
`--containall --no-home --net --network none --writable-tmpfs` (no network, nothing of the host
but the read-only folder holding the patch and the eval script, writes go to a throw-away
tmpfs): the repository is at `/testbed` as the images have it; the harness's patch chain runs,
then the harness's own eval script (conda env `testbed`, reinstall, test patch, test command),
and the log is graded with the harness's parser.

Not run here: this machine has no Apptainer (and no Docker engine); the command lines are
unit-tested.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monkeyflow.verify.swebench import spec
from monkeyflow.verify.swebench.local import EnvError, Outcome, apply_script, locked


def image_uri(instance_id: str, namespace: str = "swebench") -> str:
    """`docker://swebench/sweb.eval.x86_64.<id>:latest`, with `__` -> `_1776_`."""
    return "docker://" + spec.instance_image(instance_id, namespace)


def pull_argv(apptainer: str, sif: Path, uri: str) -> list[str]:
    return [apptainer, "pull", "--force", str(sif), uri]


def exec_argv(apptainer: str, sif: Path, inputs: Path, script: str) -> list[str]:
    """One evaluation's container: no network, no home, a writable tmpfs over the image."""
    return [
        apptainer, "exec", "--containall", "--no-home", "--net", "--network", "none",
        "--writable-tmpfs", "--pwd", "/testbed", "--bind", f"{inputs}:/monkeyflow-in:ro",
        str(sif), "bash", "-c", script,
    ]  # fmt: skip


def container_script(commands: list[str]) -> str:
    """Apply the patch with the harness's chain, then run the harness's eval script."""
    return "\n".join(
        [
            "cd /testbed",
            "( " + apply_script(commands).replace("\n", "\n  ") + "\n) || { echo '>>> patch does not apply'; exit 3; }",
            "bash /monkeyflow-in/eval.sh",
        ]
    )  # fmt: skip


class ApptainerRuntime:
    def __init__(self, options: dict[str, Any], cache: Path):
        self.o = options
        self.cache = cache
        self.apptainer = options["apptainer"]

    def sif(self, instance_id: str) -> Path:
        return self.cache / "sif" / f"{instance_id}.sif"

    def ensure_image(self, instance: dict[str, Any]) -> Path:
        if shutil.which(self.apptainer) is None:
            raise EnvError(f"runtime apptainer: `{self.apptainer}` is not on PATH")
        sif = self.sif(instance["instance_id"])
        if sif.exists():
            return sif
        sif.parent.mkdir(parents=True, exist_ok=True)
        with locked(sif.with_suffix(".lock")):
            if sif.exists():
                return sif
            partial = sif.with_name(sif.name + ".partial")
            uri = image_uri(instance["instance_id"], self.o["image_namespace"])
            try:
                done = subprocess.run(
                    pull_argv(self.apptainer, partial, uri),
                    capture_output=True, text=True, timeout=self.o["build_timeout_s"],
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise EnvError(f"pulling {uri} took over {self.o['build_timeout_s']} s") from None
            if done.returncode != 0:
                raise EnvError(f"cannot pull {uri}: {(done.stdout + done.stderr)[-1500:]}")
            os.replace(partial, sif)
        return sif

    @contextlib.contextmanager
    def prepared(self, instance: dict[str, Any]) -> Iterator[tuple[Path, dict, None]]:
        yield self.ensure_image(instance), {}, None

    def evaluate(self, instance, patch, sif: Path, manifest, tree, harness_spec) -> Outcome:
        started = time.monotonic()
        work = self.cache / "work" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        (work / "in").mkdir(parents=True)
        try:
            test_spec = harness_spec or SimpleNamespace(**instance)
            (work / "in" / "model.diff").write_text(patch, encoding="utf-8")
            (work / "in" / "eval.sh").write_text(eval_script(instance))
            script = container_script(spec.apply_commands())
            log_path = work / "eval.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    exec_argv(self.apptainer, sif, work / "in", script),
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )  # fmt: skip
                try:
                    code = proc.wait(timeout=self.o["timeout_s"])
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                    return Outcome("timeout", f"the evaluation ran over {self.o['timeout_s']} s")
            text = log_path.read_text(encoding="utf-8", errors="replace")
            return grade_log(instance, text, code, test_spec, time.monotonic() - started)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def eval_script(instance: dict[str, Any]) -> str:
    """The harness's eval script for the instance image (conda env `testbed`, /testbed)."""
    from swebench.harness.test_spec.create_scripts import make_eval_script_list

    specs = spec.repo_specs(instance["repo"], instance["version"])
    lines = make_eval_script_list(
        instance, specs, "testbed", "/testbed", instance["base_commit"], instance["test_patch"]
    )
    return "\n".join(["#!/bin/bash", "set -uxo pipefail", *lines]) + "\n"


def grade_log(instance, text: str, code: int | None, test_spec, seconds: float) -> Outcome:
    """The verdict of one container run from its log (harness parser and grading)."""
    if ">>> patch does not apply" in text:
        reason = [ln for ln in text.splitlines() if "error" in ln.lower()][:3]
        return Outcome("incorrect", "patch does not apply: " + " | ".join(reason), seconds)
    start, end = spec.markers()
    if start not in text or end not in text:
        return Outcome(
            "error", f"the eval script printed no test markers (exit {code}): {text[-300:]}"
        )
    body = text.split(start, 1)[1].split(end, 1)[0]
    statuses = spec.parse_log(instance["repo"], body, test_spec)
    graded = spec.grade(statuses, list(instance["FAIL_TO_PASS"]), list(instance["PASS_TO_PASS"]))
    if graded.resolved:
        return Outcome("correct", "resolved in the instance image", seconds)
    bad = graded.f2p_failed + graded.f2p_missing
    parts = [f"{len(bad)} FAIL_TO_PASS do not pass"] if bad else []
    if graded.p2p_failed:
        parts.append(f"{len(graded.p2p_failed)} PASS_TO_PASS fail")
    return Outcome("incorrect", "not resolved in the instance image: " + ", ".join(parts), seconds)
