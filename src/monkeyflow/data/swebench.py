"""SWE-bench Lite (Jimenez et al., 2024): 300 GitHub issues of 11 Python repositories, each to be
resolved by a patch that makes the instance's FAIL_TO_PASS tests pass and keeps its
PASS_TO_PASS tests passing (`monkeyflow.verify.swebench` judges it).

The bundled copy is `bundled/swebench_lite/swe-bench-lite.json` (the Lite test split); the hub's
is `princeton-nlp/SWE-bench_Lite` (`source: hub`; `hub.path` may be a local folder of its data
files). A problem's id is the instance id; its `metadata` carries what the verifier needs (repo,
base commit, version, test patch, FAIL_TO_PASS, PASS_TO_PASS, environment setup commit) and its
`reference` is the gold patch.

The prompt is one turn: the issue and, SWE-bench's "oracle" retrieval, the contents of the files
the gold patch edits, read from the instance's source snapshot at its base commit where one is
found (`swebench_oracle_files`); the model is asked for a unified diff. Without a snapshot the
prompt holds the issue and the list of those files only (the prompt says so).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from monkeyflow.data.base import Dataset, DatasetError, bundled_path, require_str
from monkeyflow.records import Problem, RecordError

INSTANCE_FIELDS = (
    "repo",
    "base_commit",
    "version",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "environment_setup_commit",
)
# Where the source snapshots (`<instance_id>.tar.gz`) are looked for, first found wins.
REPOS_ENV = "MONKEYFLOW_SWEBENCH_REPOS"
MAX_ORACLE_CHARS = 200_000  # the oracle files shown in one prompt, at most (long files are cut)


def bundled_repos() -> Path:
    """The snapshots shipped with monkeyflow (a few real Lite instances, for tests and demos)."""
    return bundled_path("swebench_repos")


def test_list(value: Any, field: str) -> list[str]:
    """FAIL_TO_PASS / PASS_TO_PASS as a list of test names (the dataset stores JSON strings)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RecordError(f"field {field!r} is not a JSON list of test names") from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RecordError(f"field {field!r} must be a list of test names")
    return list(value)


def edited_files(patch: str) -> list[str]:
    """Paths a unified diff edits (its `--- a/` sides; new files excluded), in order."""
    out: list[str] = []
    for match in re.finditer(r"^diff --git a/(\S+) b/(\S+)$", patch, flags=re.MULTILINE):
        path = match.group(1)
        if path not in out:
            out.append(path)
    if not out:
        for match in re.finditer(r"^--- a/(\S+)", patch, flags=re.MULTILINE):
            if match.group(1) not in out:
                out.append(match.group(1))
    return out


def find_snapshot(instance_id: str, folders: list[Path] | None = None) -> Path | None:
    """`<instance_id>.tar.gz` in $MONKEYFLOW_SWEBENCH_REPOS (os.pathsep-separated) or the
    bundled snapshots; None if there is none."""
    if folders is None:
        folders = [Path(p) for p in os.environ.get(REPOS_ENV, "").split(os.pathsep) if p]
        folders.append(bundled_repos())
    for folder in folders:
        candidate = Path(folder) / f"{instance_id}.tar.gz"
        if candidate.is_file():
            return candidate
    return None


def read_snapshot_files(snapshot: Path, paths: list[str]) -> dict[str, str]:
    """The text of `paths` inside a `git archive` tarball (missing or binary files left out)."""
    import tarfile

    wanted = set(paths)
    found: dict[str, str] = {}
    with tarfile.open(snapshot, "r:*") as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in wanted and member.isfile():
                data = tar.extractfile(member)
                if data is None:
                    continue
                try:
                    found[name] = data.read().decode("utf-8")
                except UnicodeDecodeError:
                    continue
    return found


PROMPT_INTRO = (
    "You will be provided with a partial code base and an issue statement explaining a problem "
    "to resolve."
)
PROMPT_TASK = (
    "I need you to solve this issue by generating a single patch file that I can apply "
    "directly to this repository using git apply. Please respond with a single patch file in "
    "the unified diff format (`diff --git a/PATH b/PATH`, `--- a/PATH`, `+++ b/PATH`, `@@` "
    "hunks), inside one ```diff code block."
)


def oracle_prompt(issue: str, files: dict[str, str], listed: list[str]) -> str:
    """The one-turn prompt: the issue, the files the gold patch edits (numbered lines), the task."""
    parts = [PROMPT_INTRO, "<issue>", issue.strip(), "</issue>", "<code>"]
    budget = MAX_ORACLE_CHARS
    for path in listed:
        if path not in files:
            parts.append(f"[start of {path}]\n(file not available here)\n[end of {path}]")
            continue
        text = files[path]
        if len(text) > budget:
            text = text[: max(budget, 0)] + "\n... (cut)\n"
        budget -= len(text)
        numbered = "\n".join(f"{i} {line}" for i, line in enumerate(text.splitlines(), start=1))
        parts.append(f"[start of {path}]\n{numbered}\n[end of {path}]")
    parts += ["</code>", PROMPT_TASK]
    return "\n".join(parts) + "\n"


class SWEBenchLite(Dataset):
    name = "swebench_lite"
    verifier = "swebench"
    bundled_file = "swebench_lite/swe-bench-lite.json"
    hub_defaults = {"path": "princeton-nlp/SWE-bench_Lite", "name": None, "split": "test"}
    default_fewshot = 0
    stop = ()
    prompt_version = "swebench-oracle-1"

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        instance_id = require_str(row, "instance_id").strip()
        if not re.fullmatch(r"[A-Za-z0-9._-]+__[A-Za-z0-9._-]+-\d+", instance_id):
            raise RecordError(f"field 'instance_id' {instance_id!r} is not owner__repo-number")
        meta: dict[str, Any] = {"row": index, "instance_id": instance_id}
        for field in INSTANCE_FIELDS:
            if field in ("FAIL_TO_PASS", "PASS_TO_PASS"):
                if field not in row:
                    raise RecordError(f"missing field {field!r}")
                meta[field] = test_list(row[field], field)
            else:
                meta[field] = str(require_str(row, field)).strip()
        if not meta["FAIL_TO_PASS"]:
            raise RecordError("field 'FAIL_TO_PASS' is empty")
        gold = require_str(row, "patch")
        issue = require_str(row, "problem_statement")
        listed = edited_files(gold)
        meta["oracle_files"] = listed
        snapshot = find_snapshot(instance_id)
        files = read_snapshot_files(snapshot, listed) if snapshot else {}
        meta["oracle_found"] = sorted(files)
        prompt = oracle_prompt(issue, files, listed)
        return Problem(
            problem_id=instance_id,
            dataset=self.name,
            prompt=prompt,
            reference=gold,
            chat=[{"role": "user", "content": prompt}],
            metadata=meta,
        )

    def prompt_key(self) -> dict[str, Any]:
        # Where oracle files are read from changes the prompts: part of the run key.
        return {**super().prompt_key(), "snapshots": os.environ.get(REPOS_ENV, "")}

    def problems(self) -> list[Problem]:
        out = super().problems()
        seen: set[str] = set()
        for p in out:
            if p.problem_id in seen:
                raise DatasetError(f"dataset {self.name!r}: instance {p.problem_id} repeats")
            seen.add(p.problem_id)
        return out
