"""What the `swebench` package (4.1.0) says about an instance: its install spec, its test command
and test directives, its requirements, its log parser and the grading rule. Nothing here is
rewritten: the functions call `swebench.harness` (constants, test_spec, log_parsers, grading).

4.1.0's spec builder downloads requirement files from the repository at the instance's
`environment_setup_commit`; `requirements_text` serves them from a local `env_files/` folder
instead (`env_files/<owner>__<name>/<commit>/<path>`), so no network is needed.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWEBENCH_VERSION = "4.1.0"


class SpecError(RuntimeError):
    """An instance the `swebench` package has no spec for, or whose files are missing."""


def _harness():
    try:
        from swebench.harness import constants, grading, log_parsers
        from swebench.harness.test_spec import python as spec_python
        from swebench.harness.test_spec import test_spec
    except ImportError as exc:
        raise SpecError(
            f"the swebench verifier needs the `swebench` package ({SWEBENCH_VERSION}): "
            f"pip install 'monkeyflow[swebench]' ({exc})"
        ) from None
    return constants, grading, log_parsers, spec_python, test_spec


def instance_row(problem_metadata: dict[str, Any], patch: str = "") -> dict[str, Any]:
    """The SWE-bench instance dict the harness functions take, from a problem's metadata."""
    m = problem_metadata
    return {
        "instance_id": m["instance_id"],
        "repo": m["repo"],
        "version": m["version"],
        "base_commit": m["base_commit"],
        "environment_setup_commit": m["environment_setup_commit"],
        "test_patch": m["test_patch"],
        "FAIL_TO_PASS": list(m["FAIL_TO_PASS"]),
        "PASS_TO_PASS": list(m["PASS_TO_PASS"]),
        "patch": patch,
    }


def repo_specs(repo: str, version: str) -> dict[str, Any]:
    """MAP_REPO_VERSION_TO_SPECS[repo][version]: python, packages, pip_packages, install, test_cmd."""
    constants = _harness()[0]
    try:
        return dict(constants.MAP_REPO_VERSION_TO_SPECS[repo][version])
    except KeyError:
        raise SpecError(
            f"swebench {SWEBENCH_VERSION} has no spec for {repo} version {version}"
        ) from None


def test_command(instance: dict[str, Any]) -> str:
    """The instance's test command as the eval script runs it: test_cmd + the test directives."""
    spec_python = _harness()[3]
    specs = repo_specs(instance["repo"], instance["version"])
    test_cmd = specs["test_cmd"]
    if isinstance(test_cmd, list):
        test_cmd = test_cmd[-1]
    return " ".join([test_cmd, *spec_python.get_test_directives(instance)])


def base_test_cmd(instance: dict[str, Any]) -> str:
    specs = repo_specs(instance["repo"], instance["version"])
    test_cmd = specs["test_cmd"]
    return test_cmd[-1] if isinstance(test_cmd, list) else test_cmd


def test_files(test_patch: str) -> list[str]:
    """Files the test patch modifies (those the eval script resets), via the harness."""
    from swebench.harness.utils import get_modified_files

    return list(get_modified_files(test_patch))


class _LocalResponse:
    def __init__(self, path: Path) -> None:
        if path.is_file():
            self.status_code, self.text = 200, path.read_text(encoding="utf-8")
        else:
            self.status_code, self.text = 404, ""


class _LocalRequests:
    """Stands in for `requests` inside the harness's spec builder: serves raw GitHub URLs
    (`.../<owner>/<name>/<commit>/<path>`) from env_files/; records what was missing."""

    def __init__(self, root: Path, raw_base: str) -> None:
        self.root, self.raw_base, self.missing = root, raw_base.rstrip("/"), []

    def get(self, url: str, headers: Any = None, **_: Any) -> _LocalResponse:
        rest = url[len(self.raw_base) :].lstrip("/") if url.startswith(self.raw_base) else url
        parts = rest.split("/")
        if len(parts) < 4:
            return _LocalResponse(self.root / "__none__")
        owner, name, commit, path = parts[0], parts[1], parts[2], "/".join(parts[3:])
        response = _LocalResponse(self.root / f"{owner}__{name}" / commit / path)
        if response.status_code != 200:
            self.missing.append(f"{owner}__{name}/{commit}/{path}")
        return response


_SPEC_LOCK = threading.Lock()


@contextlib.contextmanager
def _served_from(env_files: Path):
    constants, _, _, spec_python, _ = _harness()
    shim = _LocalRequests(env_files, constants.SWE_BENCH_URL_RAW)
    with _SPEC_LOCK:
        saved = spec_python.requests
        spec_python.requests = shim
        spec_python.get_requirements_by_commit.cache_clear()
        try:
            yield shim
        finally:
            spec_python.requests = saved
            spec_python.get_requirements_by_commit.cache_clear()


def requirements_text(instance: dict[str, Any], env_files: Path) -> str:
    """The requirements the spec installs (`packages: requirements.txt`), read by the harness's
    own `get_requirements` from env_files/ instead of the network."""
    spec_python = _harness()[3]
    with _served_from(env_files) as shim:
        try:
            return spec_python.get_requirements(instance)
        except ValueError as exc:
            raise SpecError(
                f"{instance['instance_id']}: requirement files not found under {env_files} "
                f"(looked for {', '.join(shim.missing) or 'nothing'}): {exc}"
            ) from None


def make_spec(instance: dict[str, Any], env_files: Path):
    """The harness's TestSpec for an instance (what its log parsers take)."""
    test_spec = _harness()[4]
    with _served_from(env_files):
        try:
            return test_spec.make_test_spec(instance)
        except (ValueError, KeyError) as exc:
            raise SpecError(f"{instance['instance_id']}: no test spec: {exc}") from None


def parse_log(repo: str, log: str, spec: Any) -> dict[str, str]:
    """Test name -> status from the test output, with the repo's parser (MAP_REPO_TO_PARSER)."""
    log_parsers = _harness()[2]
    return dict(log_parsers.MAP_REPO_TO_PARSER[repo](log, spec))


@dataclass(frozen=True)
class Grade:
    resolved: bool
    f2p_failed: list[str]
    p2p_failed: list[str]
    f2p_missing: list[str]  # F2P tests that neither passed nor failed (skipped, not run)


def grade(status: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str]) -> Grade:
    """Resolved iff swebench's resolution status is FULL and every FAIL_TO_PASS test passed
    (a skipped FAIL_TO_PASS test does not resolve, as in swebench 5.x)."""
    constants, grading, _, _, _ = _harness()
    gold = {constants.FAIL_TO_PASS: fail_to_pass, constants.PASS_TO_PASS: pass_to_pass}
    report = grading.get_eval_tests_report(status, gold)
    full = grading.get_resolution_status(report) == constants.ResolvedStatus.FULL.value
    f2p_not_passed = [t for t in fail_to_pass if not grading.test_passed(t, status)]
    failed_f2p = report[constants.FAIL_TO_PASS]["failure"]
    return Grade(
        resolved=full and not f2p_not_passed,
        f2p_failed=list(failed_f2p),
        p2p_failed=list(report[constants.PASS_TO_PASS]["failure"]),
        f2p_missing=[t for t in f2p_not_passed if t not in failed_f2p],
    )


def test_passed(name: str, status: dict[str, str]) -> bool:
    return bool(_harness()[1].test_passed(name, status))


def markers() -> tuple[str, str]:
    constants = _harness()[0]
    return constants.START_TEST_OUTPUT, constants.END_TEST_OUTPUT


def instance_image(instance_id: str, namespace: str = "swebench", arch: str = "x86_64") -> str:
    """The registry name of an instance's evaluation image (`__` -> `_1776_` in registries), as
    the harness's TestSpec.instance_image_key spells it."""
    key = f"sweb.eval.{arch}.{instance_id.lower()}:latest"
    return f"{namespace}/{key}".replace("__", "_1776_")


FALLBACK_APPLY_COMMANDS = (
    "git apply --verbose",
    "git apply --verbose --reject",
    "patch --batch --fuzz=5 -p1 -i",
)


def apply_commands() -> list[str]:
    """The harness's patch chain (run_evaluation.GIT_APPLY_CMDS)."""
    try:
        from swebench.harness.run_evaluation import GIT_APPLY_CMDS
    except ImportError:
        return list(FALLBACK_APPLY_COMMANDS)
    return list(GIT_APPLY_CMDS)
