"""The decision for one extracted MATH answer against a reference, within a time budget.

In order, the first rule that decides (the `detail` of the verdict names it):

1. `too long`: an answer over `MAX_ANSWER_CHARS` (after stripping) is `incorrect` without being
   compared: no MATH reference is a tenth as long, and parsing it would cost unbounded time.
2. `string match`: equal normal forms (`normalize.normalize_math_answer`) -> `correct`.
3. `numeric match` / `numeric mismatch`: both are plain numbers (`-12`, `0.5`, `\\frac{3}{4}`):
   exactly equal -> `correct`; unequal integers or fractions -> `incorrect` (when either side
   is a decimal the backend decides, as it may accept a rounded 0.333333 for 1/3).
   A model's `1,22` is read as the decimal 1.22 when the reference is a single number
   (`decimal comma`); with a list reference it stays the list 1, 22.
4. Multi-part answers (several boxes of one final statement) against a tuple reference
   `(a, b, ...)` with as many entries: entry by entry, in order (`as a tuple`). Against anything
   else they are compared as one list `p1, p2, ...`, i.e. as a set by the backend.
5. The equivalence backend (`math_verify` or `sympy`) under the remaining time: its name.
"""

from __future__ import annotations

import time

from monkeyflow.text.latex import split_top_level
from monkeyflow.verify.mathcheck.normalize import (
    decimal_comma_reading,
    normalize_math_answer,
    plain_number,
)
from monkeyflow.verify.mathcheck.timeouts import DEFAULT_ISOLATION, DEFAULT_TIMEOUT_S, run_backend

# Chosen by bench/math_verifiers.py: both backends grade all 5000 MATH solutions right; on 20
# held-out forms (intervals, sets, unions, inequalities, \exp) math-verify gets 17, the sympy one
# 12, and math-verify parses 4998/5000 references to sympy against 4781. The sympy backend is
# ~4x faster per call, which the string and numeric fast paths make matter little.
DEFAULT_BACKEND = "math_verify"
# The longest MATH test reference has 81 characters.
MAX_ANSWER_CHARS = 5000


def check_math_answer(
    reference: str,
    answer: str | tuple[str, ...] | list[str],
    *,
    backend: str = DEFAULT_BACKEND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
    deadline: float | None = None,
) -> tuple[str, str]:
    """(status, rule) for an extracted answer (one string, or the parts of a multi-part answer)
    against a reference; all symbolic work together ends by `deadline` (monotonic seconds;
    default now + timeout_s)."""
    if deadline is None:
        deadline = time.monotonic() + timeout_s
    parts = [answer] if isinstance(answer, str) else list(answer)
    if len(parts) > 1:
        entries = _tuple_entries(reference)
        if entries is not None and len(entries) == len(parts):
            return _check_tuple(entries, parts, backend, timeout_s, isolation, deadline)
    return _check_one(reference, ", ".join(parts), backend, timeout_s, isolation, deadline)


def _tuple_entries(reference: str) -> list[str] | None:
    """The entries of a reference that is one parenthesised tuple `(a, b, ...)`, else None."""
    ref = normalize_math_answer(reference)
    if len(ref) < 2 or ref[0] != "(" or ref[-1] != ")":
        return None
    outer = split_top_level(ref)
    if len(outer) != 1:
        return None  # "(1, 2), (3, 4)": a list of tuples, not one tuple
    entries = [e.strip() for e in split_top_level(ref[1:-1])]
    return entries if len(entries) > 1 and all(entries) else None


def _check_tuple(entries, parts, backend, timeout_s, isolation, deadline) -> tuple[str, str]:
    rules = []
    for entry, part in zip(entries, parts, strict=True):
        status, rule = _check_one(entry, part, backend, timeout_s, isolation, deadline)
        if status != "correct":
            return status, f"as a tuple, entry {len(rules) + 1}: {rule}"
        rules.append(rule)
    return "correct", "as a tuple: " + ", ".join(dict.fromkeys(rules))


def _check_one(
    reference: str, answer: str, backend: str, timeout_s: float, isolation: str, deadline: float
) -> tuple[str, str]:
    size = len(answer.strip())
    if size > MAX_ANSWER_CHARS:
        return "incorrect", (
            f"too long: an answer of {size} characters (limit {MAX_ANSWER_CHARS}) is not compared"
        )
    ref_norm, ans_norm = normalize_math_answer(reference), normalize_math_answer(answer)
    if ans_norm == ref_norm:
        return "correct", "string match"
    ref_value = plain_number(ref_norm)
    note = ""
    if ref_value is not None:
        reading = decimal_comma_reading(answer)
        if reading is not None:
            answer, ans_norm, note = reading, normalize_math_answer(reading), " (decimal comma)"
    ans_value = plain_number(ans_norm)
    if ref_value is not None and ans_value is not None:
        if ref_value == ans_value:
            return "correct", "numeric match" + note
        if "." not in ref_norm and "." not in ans_norm:  # integers and fractions: exact
            return "incorrect", "numeric mismatch" + note
    left = deadline - time.monotonic()
    if left <= 0:
        return "timeout", f"{backend} equivalence check: the {timeout_s:g} s budget was spent"
    status, value = run_backend(backend, reference, answer, left, isolation)
    if status == "ok":
        return ("correct" if value else "incorrect"), backend + note
    if status == "timeout":
        return "timeout", f"{backend} equivalence check took over {timeout_s:g} s"
    return "error", f"{backend} equivalence check crashed: {value}"
