"""A check of a Lean setup (image, REPL build, server): 3 statements with known proofs that must be
`correct` and 3 false statements whose proof attempts must be `incorrect` with a Lean error.

The true ones are MiniF2F statements: mathd_numbertheory_188 and mathd_numbertheory_403 with
the proofs the REPL's own test suite elaborates against Mathlib v4.15.0-patch1
(leanprover-community/repl, test/Mathlib/test/H20231020.in), and mathd_algebra_182 with the
proof of `minif2f_valid_few_shot.jsonl`. `monkeyflow lean-check` runs them;
`monkeyflow lean-check --statements` also checks that every bundled statement elaborates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from monkeyflow.data.minif2f import DEFAULT_HEADER
from monkeyflow.records import Check, Problem
from monkeyflow.verify.lean import LeanVerifier
from monkeyflow.verify.lean.proof import build_command


@dataclass(frozen=True)
class Case:
    name: str
    statement: str
    proof: str
    expected: str  # correct | incorrect


CASES = (
    Case("monkeyflow_true_gcd", "theorem monkeyflow_true_gcd : Nat.gcd 180 168 = 12 := by\n", "  norm_num", "correct"),
    Case(
        "monkeyflow_true_divisors",
        "theorem monkeyflow_true_divisors : ∑ k in (Nat.properDivisors 198), k = 270 := by\n",
        "  simp (config := {decide := true})",
        "correct",
    ),
    Case(
        "monkeyflow_true_ring",
        "theorem monkeyflow_true_ring (y : ℂ) : 7 * (3 * y + 2) = 21 * y + 14 := by\n",
        "  ring",
        "correct",
    ),
    Case("monkeyflow_false_gcd", "theorem monkeyflow_false_gcd : Nat.gcd 180 168 = 13 := by\n", "  norm_num", "incorrect"),
    Case(
        "monkeyflow_false_sum",
        "theorem monkeyflow_false_sum : (∑ k in Finset.range 10, k) = 46 := by\n",
        "  norm_num [Finset.sum_range_succ]",
        "incorrect",
    ),
    Case(
        "monkeyflow_false_linear",
        "theorem monkeyflow_false_linear (x : ℝ) (h₀ : 2 * x = 4) : x = 3 := by\n",
        "  linarith",
        "incorrect",
    ),
)  # fmt: skip


def case_problem(case: Case) -> Problem:
    return Problem(
        problem_id=f"lean-check-{case.name}",
        dataset="lean-check",
        prompt="",
        reference=case.statement,
        metadata={"name": case.name, "header": DEFAULT_HEADER, "formal_statement": case.statement},
    )


def validate(verifier: LeanVerifier) -> tuple[bool, list[tuple[Case, Check]], float]:
    """(all as expected, each case with its check, seconds) for the six cases. A false case
    passes only when Lean itself rejected it (an error message), not when it was refused or
    failed to run."""
    start = time.monotonic()
    checks = verifier.check_many([(case_problem(c), c.proof) for c in CASES])
    seconds = time.monotonic() - start
    results = list(zip(CASES, checks, strict=True))
    ok = all(passed(case, check) for case, check in results)
    return ok, results, seconds


def passed(case: Case, check: Check) -> bool:
    if case.expected == "correct":
        return check.status == "correct"
    return check.status == "incorrect" and check.detail.startswith("Lean error")


def report(results: list[tuple[Case, Check]], seconds: float) -> str:
    lines = []
    for case, check in results:
        mark = "ok  " if passed(case, check) else "FAIL"
        lines.append(
            f"{mark} {case.name:<26} expected {case.expected:<9} got {check.status:<9} {check.detail[:120]}"
        )
    good = sum(passed(c, k) for c, k in results)
    lines.append(f"{good}/{len(results)} as expected in {seconds:.1f} s")
    return "\n".join(lines)


def check_statements(verifier: LeanVerifier, problems: list[Problem]) -> list[tuple[str, str]]:
    """(theorem, why) for each problem whose statement does not elaborate (with `sorry` as its
    proof) under its header: [] means the toolchain reads every statement. This checks the pin
    of Lean and Mathlib against the bundled statements, not any proof."""
    commands = [
        build_command(
            p.metadata["header"], p.metadata["formal_statement"], "\n  sorry\n", p.metadata["name"]
        )
        for p in problems
    ]
    failures = []
    for problem, outcome in zip(problems, verifier._run(commands), strict=True):
        name = problem.metadata["name"]
        if outcome.kind != "response":
            failures.append((name, f"{outcome.kind}: {outcome.detail}"))
            continue
        response = outcome.response if isinstance(outcome.response, dict) else {}
        errors = [m for m in response.get("messages") or [] if m.get("severity") == "error"]
        if "message" in response or errors:
            why = response.get("message") or " ".join(str(errors[0].get("data")).split())
            failures.append((name, str(why)[:300]))
    return failures
