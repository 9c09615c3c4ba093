"""The lean verifier against a real Lean REPL with Mathlib: runs where one is built (inside the
image of containers/lean.def, or with MONKEYFLOW_LEAN_REPL = the repl binary and, unless the
binary finds Mathlib by itself, MONKEYFLOW_LEAN_PROJECT = a Mathlib project with `lake` on
PATH); everywhere else it is skipped and says why. Not run on the development machine: no Lean
toolchain can be installed there."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest

from monkeyflow.verify import get_verifier
from monkeyflow.verify.lean.repl import PROJECT_ENV, REPL_ENV
from monkeyflow.verify.lean.validate import CASES, case_problem, report, validate


def _skip_reason() -> str | None:
    repl = os.environ.get(REPL_ENV)
    if not repl:
        return (
            f"no Lean toolchain here: set {REPL_ENV} to a built leanprover-community/repl (and "
            f"{PROJECT_ENV} to a Mathlib project, with lake on PATH), or run inside containers/lean.def"
        )
    binary = shlex.split(repl)[0]
    if shutil.which(binary) is None:
        return f"{REPL_ENV}={repl!r} is not an executable"
    if os.environ.get(PROJECT_ENV) and shutil.which("lake") is None:
        return f"{PROJECT_ENV} is set but `lake` is not on PATH"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module")
def verifier():
    with get_verifier("lean", {"workers": 2, "timeout_s": 120}) as lean:
        yield lean


def test_known_true_and_false_statements(verifier):
    ok, results, seconds = validate(verifier)
    assert ok, report(results, seconds)


def test_proofs_that_try_to_make_themselves_correct_are_not(verifier):
    true_case = next(c for c in CASES if c.name == "monkeyflow_true_gcd")
    false_case = next(c for c in CASES if c.name == "monkeyflow_false_linear")
    problem, false_problem = case_problem(true_case), case_problem(false_case)
    attempts = [
        # restating a weaker theorem under the same name: the given statement is checked
        (
            false_problem,
            f"```lean4\ntheorem {false_case.name} (x : ℝ) (h₀ : x = 3) : x = 3 := by\n  exact h₀\n```",
        ),
        (false_problem, "  stop"),  # Lean's `repeat sorry`
        (false_problem, "  exact?"),
        (false_problem, "  nlinarith [h₀]\n  /-"),  # an open comment swallowing the axioms check
        (false_problem, "  linarith\n  all_goals exact (by decide : False)"),
    ]
    checks = verifier.check_many(attempts)
    assert all(c.status == "incorrect" for c in checks), checks
    restated = verifier.check(problem, f"```lean4\n{true_case.statement}{true_case.proof}\n```")
    assert restated.status == "correct" and restated.method == "restated"
