"""The MATH verifier against the regression table in math_regression_cases.py."""

from __future__ import annotations

from monkeyflow.records import Problem
from monkeyflow.verify import get_verifier
from tests.unit.math_regression_cases import NEAR_MISSES, cases


def _run():
    verifier = get_verifier("math")
    table = cases()
    problems = [Problem(f"math-{i:05d}", "math", "", ref) for i, (_, ref, _, _) in enumerate(table)]
    checks = verifier.check_many([(p, row[2]) for p, row in zip(problems, table, strict=True)])
    return table, checks


def test_table_size_and_shapes():
    table = cases()
    assert len(table) >= 300
    categories = {c.split(":")[0].split(" (")[0] for c, *_ in table}
    for family in ("multi-box", "list", "interval", "matrix", "units", "percent", "decimal"):
        assert family in categories


def test_no_false_positive_and_agreement():
    table, checks = _run()
    false_positives = [
        (row, c)
        for row, c in zip(table, checks, strict=True)
        if row[3] == "incorrect" and c.status == "correct"
    ]
    assert false_positives == []
    agree = sum(row[3] == c.status for row, c in zip(table, checks, strict=True))
    assert agree / len(table) >= 0.98, [
        (row, c) for row, c in zip(table, checks, strict=True) if row[3] != c.status
    ]


def test_normalisation_near_misses_are_all_incorrect():
    verifier = get_verifier("math")
    checks = verifier.check_many(
        [(Problem("m", "math", "", ref), f"\\boxed{{{ans}}}") for ref, ans in NEAR_MISSES]
    )
    assert [
        (pair, c) for pair, c in zip(NEAR_MISSES, checks, strict=True) if c.status != "incorrect"
    ] == []
