"""The `swebench` verifier: a patch resolves a SWE-bench instance iff, applied at the base
commit in the instance's environment with the instance's test patch, every FAIL_TO_PASS and
every PASS_TO_PASS test passes (specs, test commands, log parsers and grading from the
`swebench` package, 4.1.0).

Runtimes, one interface (`swebench.runtime`):
- `local` (default): a venv per (repo, version, environment commit) built once from the spec,
  the repository from a source snapshot, each patch in a fresh copy-on-write copy of the
  installed tree, every step after the patch in a bubblewrap sandbox
  (`monkeyflow.verify.swebench.local`, `.jail`);
- `apptainer`: the official instance images (`docker://swebench/sweb.eval.x86_64.<id>`) as SIF
  files pulled once per instance (`monkeyflow.verify.swebench.apptainer`).

Identical patches of an instance are judged once: the verdict cache key holds the normalised
patch (`cache_text`). Verdicts: a patch that does not apply is `incorrect` with the reason, a test
run over `timeout_s` is `timeout`, an environment that cannot be built is `error`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from monkeyflow.records import Check, Problem
from monkeyflow.verify.base import Verifier
from monkeyflow.verify.swebench import jail, spec
from monkeyflow.verify.swebench.patchtext import extract_patch, normalise_patch, repair_diff

CACHE_ENV = "MONKEYFLOW_SWEBENCH_CACHE"


def default_cache() -> Path:
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "monkeyflow" / "swebench"
    )


class SWEBenchVerifier(Verifier):
    """Patches for SWE-bench instances, run against the instance's tests."""

    version = f"swebench-1+harness-{spec.SWEBENCH_VERSION}"
    container = "sandbox"
    options_schema = {
        "runtime": {
            "type": "string",
            "enum": ["local", "apptainer"],
            "default": "local",
            "description": "where patches are judged: a venv built here from the spec (local) or the official instance image (apptainer). Part of the verdict key: environments differ",
        },
        "repos": {
            "type": ["string", "null"],
            "default": None,
            "x-runtime": True,
            "description": "local: folder of source snapshots `<instance_id>.tar.gz` (null = $MONKEYFLOW_SWEBENCH_REPOS, then the snapshots shipped with monkeyflow)",
        },
        "env_files": {
            "type": ["string", "null"],
            "default": None,
            "x-runtime": True,
            "description": "local: folder of the requirement files the specs download (`<owner>__<name>/<commit>/<path>`; null = `<repos>/env_files`, then the shipped ones)",
        },
        "cache_dir": {
            "type": ["string", "null"],
            "default": None,
            "x-runtime": True,
            "description": "where environments, installed trees and images are kept and reused (null = $MONKEYFLOW_SWEBENCH_CACHE, else ~/.cache/monkeyflow/swebench)",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1800,
            "description": "wall-clock seconds for one test command (the harness's default); over it: status timeout",
        },
        "build_timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1800,
            "x-runtime": True,
            "description": "seconds for building an environment, installing a tree or pulling an image (over it: status error)",
        },
        "reruns": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "re-run a test command up to this many times while a listed test fails; each test's status is then the majority over the runs (flaky tests)",
        },
        "fail_to_pass_first": {
            "type": "boolean",
            "default": True,
            "description": "run the FAIL_TO_PASS tests alone first (pytest ids) and reject a patch failing one of them without running the rest",
        },
        "repair_diffs": {
            "type": "boolean",
            "default": True,
            "description": "repair a model's diff before applying it: add missing `diff --git` headers, restore blank context lines, recompute hunk line counts (false: the patch as given, as the official harness takes it)",
        },
        "python": {
            "type": ["string", "null"],
            "default": None,
            "description": "local: the interpreter for environments (null = python<spec version> on PATH, else python3)",
        },
        "workers": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "x-runtime": True,
            "description": "distinct patches of an instance judged at once (each in its own work copy and sandbox)",
        },
        "memory_mb": {
            "type": "integer",
            "minimum": 256,
            "default": 8192,
            "x-runtime": True,
            "description": "address-space limit of a sandboxed step (RLIMIT_AS, MB)",
        },
        "apptainer": {
            "type": "string",
            "default": "apptainer",
            "x-runtime": True,
            "description": "apptainer: the executable (apptainer or singularity)",
        },
        "image_namespace": {
            "type": "string",
            "default": "swebench",
            "description": "apptainer: the registry namespace of the instance images",
        },
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._runtime = None

    @classmethod
    def resources(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"mem_mb": int(options.get("memory_mb") or 8192) + 2048}

    def cache_text(self, problem: Problem, completion: str) -> str:
        """What the verdict depends on: the normalised patch read from the completion (repaired
        first with `repair_diffs`)."""
        patch = extract_patch(completion)
        if patch and self.options["repair_diffs"]:
            patch = repair_diff(patch)
        return normalise_patch(patch)

    # -- runtime ------------------------------------------------------------------------------
    def folders(self) -> tuple[list[Path], Path, Path]:
        from monkeyflow.data.swebench import REPOS_ENV, bundled_repos

        o = self.options
        repos = [Path(o["repos"])] if o["repos"] else []
        repos += [Path(p) for p in os.environ.get(REPOS_ENV, "").split(os.pathsep) if p]
        repos.append(bundled_repos())
        if o["env_files"]:
            env_files = Path(o["env_files"])
        else:
            env_files = next((r / "env_files" for r in repos if (r / "env_files").is_dir()),
                             bundled_repos() / "env_files")  # fmt: skip
        cache = Path(o["cache_dir"]) if o["cache_dir"] else default_cache()
        return repos, env_files, cache.resolve()

    def runtime(self):
        if self._runtime is None:
            repos, env_files, cache = self.folders()
            if self.options["runtime"] == "local":
                from monkeyflow.verify.swebench.local import LocalRuntime

                self._runtime = LocalRuntime(self.options, repos, env_files, cache)
            else:
                from monkeyflow.verify.swebench.apptainer import ApptainerRuntime

                self._runtime = ApptainerRuntime(self.options, cache)
        return self._runtime

    # -- judging ------------------------------------------------------------------------------
    def check(self, problem: Problem, completion: str) -> Check:
        return self.check_many([(problem, completion)])[0]

    def check_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Check]:
        checks: list[Check | None] = [None] * len(pairs)
        groups: dict[str, list[tuple[int, str]]] = {}
        problems: dict[str, Problem] = {}
        for i, (problem, completion) in enumerate(pairs):
            try:
                completion.encode("utf-8")
            except UnicodeEncodeError:
                checks[i] = Check("incorrect", detail="the completion is not valid Unicode")
                continue
            if not all(k in problem.metadata for k in ("instance_id", "repo", "test_patch")):
                checks[i] = Check(
                    "error", detail=f"{problem.problem_id} is not a SWE-bench instance"
                )
                continue
            patch = self.cache_text(problem, completion)
            if not patch:
                checks[i] = Check(
                    "incorrect", None, "none", "empty patch: no diff in the completion"
                )
                continue
            groups.setdefault(problem.problem_id, []).append((i, patch))
            problems[problem.problem_id] = problem
        for problem_id, items in groups.items():
            for i, check in self._check_instance(problems[problem_id], items):
                checks[i] = check
        return [c if c is not None else Check("error", detail="not checked") for c in checks]

    def _check_instance(self, problem: Problem, items: list[tuple[int, str]]):
        from monkeyflow.verify.swebench.local import EnvError

        instance = spec.instance_row(problem.metadata)
        missing = jail.missing_tools()
        if missing and self.options["runtime"] == "local":
            detail = f"the local runtime needs {', '.join(missing)} on PATH (apt-get install bubblewrap util-linux git patch)"
            return [(i, Check("error", detail=detail)) for i, _ in items]
        out = []
        try:
            runtime = self.runtime()
            repos, env_files, _ = self.folders()
            try:
                harness_spec = spec.make_spec(instance, env_files)
            except spec.SpecError:
                if self.options["runtime"] == "local":
                    raise
                harness_spec = None  # the image has its requirements; the parser needs no spec
            with runtime.prepared(instance) as held:
                distinct = list(dict.fromkeys(patch for _, patch in items))
                with ThreadPoolExecutor(max_workers=int(self.options["workers"])) as pool:
                    judged = dict(
                        zip(
                            distinct,
                            pool.map(
                                lambda p: runtime.evaluate(instance, p, *held, harness_spec),
                                distinct,
                            ),
                            strict=True,
                        )
                    )
                for i, patch in items:
                    outcome = judged[patch]
                    out.append((i, Check(outcome.status, patch, "diff", outcome.detail[:2000])))
        except (EnvError, spec.SpecError) as exc:
            print(f"[swebench] {problem.problem_id}: {exc}", file=sys.stderr)
            done = {i for i, _ in out}
            out += [
                (i, Check("error", detail=f"environment: {exc}"[:2000]))
                for i, _ in items
                if i not in done
            ]
        return out

    def close(self) -> None:
        self._runtime = None


__all__ = ["SWEBenchVerifier", "default_cache"]
