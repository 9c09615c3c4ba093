"""The GSM8K verifier: a numeric answer compared with the reference as an exact rational.

The answer is read from `#### <number>` (method `marker`), else from "The answer is X" /
"the final answer is X" / a trailing `A: X` line (`answer_is`), else the last number in the text
(`fallback`). Every regex here is a single pass over the text (no nested quantifiers, at most one
match per line for the phrase patterns), so a 1 MB completion is judged in well under a second.
"""

from __future__ import annotations

import re
from fractions import Fraction

from monkeyflow.records import Problem
from monkeyflow.verify.base import Check, Verifier

_GSM_MARKER = re.compile(r"####\s*(\-?[\$0-9\.\,]+)")
_GSM_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s+is\s*:?\s*([^\n]*)", re.IGNORECASE)
_GSM_A_LINE = re.compile(r"(?:^|\n)[ \t]*A:([^\n]*)")
# A number: optional sign (not when it is a binary minus right after a digit, letter or bracket),
# then digits with optional thousands separators and decimals, or a bare decimal like `.5`.
_GSM_NUMBER = re.compile(
    r"(?:(?<![\d)\]])(?<![\d)\]] )-)?\$?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
)


def parse_number(text: str) -> Fraction | None:
    """`text` as an exact number: `$`, `,` and a trailing `.` are dropped; None if not a number."""
    s = text.strip().replace(",", "").replace("$", "").replace(" ", "")
    s = s.rstrip(".")
    if not s or len(s) > 100:
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _first_number(text: str) -> str | None:
    m = _GSM_NUMBER.search(text)
    return m.group(0) if m else None


def extract_gsm8k_answer(completion: str) -> tuple[str | None, str | None]:
    """(answer, method) read from a GSM8K completion; (None, None) if it holds no number."""
    m = _GSM_MARKER.search(completion)  # the first marker, as lm-eval's strict match
    if m and parse_number(m.group(1)) is not None:
        return m.group(1).strip(), "marker"
    phrases = [(mm.start(), mm.group(1)) for mm in _GSM_ANSWER_IS.finditer(completion)]
    phrases += [(mm.start(), mm.group(1)) for mm in _GSM_A_LINE.finditer(completion)]
    for _, tail in sorted(phrases, reverse=True):  # the last phrase that holds a number
        number = _first_number(tail)
        if number is not None and parse_number(number) is not None:
            return number, "answer_is"
    for number in reversed(_GSM_NUMBER.findall(completion)):
        if parse_number(number) is not None:
            return number, "fallback"
    return None, None


def verify_gsm8k(problem: Problem, completion: str) -> Check:
    """Numeric exact match of the completion's answer with `problem.reference`."""
    try:
        reference = parse_number(str(problem.reference))
        if reference is None:
            return Check("error", detail=f"reference {problem.reference!r} is not a number")
        if not isinstance(completion, str):
            return Check("error", detail=f"completion is {type(completion).__name__}, not str")
        answer, method = extract_gsm8k_answer(completion)
        if answer is None:
            return Check("incorrect", detail="no answer found")
        value = parse_number(answer)
        status = "correct" if value == reference else "incorrect"
        return Check(status, extracted=answer, method=method)
    except Exception as exc:  # noqa: BLE001 - a verifier never raises
        return Check("error", detail=f"gsm8k verifier crashed: {type(exc).__name__}: {exc}")


class GSM8KVerifier(Verifier):
    """GSM8K: the completion's numeric answer equals the reference exactly (see the module doc)."""

    version = "1"
    container = "analysis"

    def check(self, problem: Problem, completion: str) -> Check:
        return verify_gsm8k(problem, completion)
