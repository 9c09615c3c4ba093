"""Patches for the swebench tests, made from the real snapshots (no hand-counted hunks)."""

from __future__ import annotations

import difflib
import functools

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.data.swebench import find_snapshot, read_snapshot_files
from monkeyflow.records import Problem

PYTEST_11143 = "pytest-dev__pytest-11143"
PYTEST_11148 = "pytest-dev__pytest-11148"
REWRITE = "src/_pytest/assertion/rewrite.py"


@functools.cache
def instances() -> dict[str, Problem]:
    return {p.problem_id: p for p in get_dataset(DatasetSpec(name="swebench_lite")).problems()}


def file_text(instance_id: str, path: str) -> str:
    return read_snapshot_files(find_snapshot(instance_id), [path])[path]


def make_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def gold_text() -> str:
    """rewrite.py of pytest-11143 with the gold fix applied (by text, as the gold patch does)."""
    before = file_text(PYTEST_11143, REWRITE)
    old = "                and isinstance(item.value, ast.Constant)\n            ):"
    new = (
        "                and isinstance(item.value, ast.Constant)\n"
        "                and isinstance(item.value.value, str)\n            ):"
    )
    assert before.count(old) == 1
    return before.replace(old, new)


def breaking_pass_to_pass() -> str:
    """The gold fix plus a change that breaks the PASS_TO_PASS tests `test_get_assertion_exprs`
    (the helper finds no assertion text) while the FAIL_TO_PASS test still passes."""
    before = file_text(PYTEST_11143, REWRITE)
    after = gold_text().replace(
        "    ret: Dict[int, str] = {}\n\n    depth = 0\n",
        "    return {}\n    ret: Dict[int, str] = {}\n\n    depth = 0\n",
    )
    assert after != gold_text()
    return make_diff(REWRITE, before, after)


def no_op() -> str:
    """A patch that applies and changes nothing the tests see (a comment)."""
    before = file_text(PYTEST_11143, REWRITE)
    return make_diff(REWRITE, before, "# a comment\n" + before)


def hanging() -> str:
    """The gold fix plus a module-level sleep: every pytest run hangs at start-up."""
    before = file_text(PYTEST_11143, REWRITE)
    return make_diff(REWRITE, before, "import time\ntime.sleep(3600)\n" + gold_text())


def not_applying() -> str:
    """A well-formed diff whose context is not in the file."""
    return (
        f"diff --git a/{REWRITE} b/{REWRITE}\n--- a/{REWRITE}\n+++ b/{REWRITE}\n"
        "@@ -10,3 +10,3 @@\n this line is not there\n-nor is this one\n+replacement\n"
        " and not this\n"
    )
