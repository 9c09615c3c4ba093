"""The MATH verifier: the final answer statement of a completion checked against the reference.

Extraction (`monkeyflow.text.final_answer`): the last `\\boxed{}` (method `boxed`), Minerva
final-answer line or "final answer" statement (`minerva`), or "the answer is" sentence
(`answer_is`), whichever comes last; adjacent boxes of that statement form one multi-part
answer; an earlier intermediate box never counts. MATH references are read with the same rule.

Decision (`monkeyflow.verify.mathcheck.compare`): string match of normal forms, exact numeric
match, multi-part answers as a tuple or a set, then an equivalence backend (`math_verify`, the
default, or `sympy`) under a wall-clock timeout. All symbolic work for one sample ends within
`timeout_s`; extraction and normalisation are linear in the completion's length. The verdict's
`detail` is "<rule that decided>; <how the answer was found>".

`MathVerifier.check_many` compares each distinct (reference, extracted answer) once: repeated
sampling makes most samples of a problem share a final answer (answer-level de-duplication).

This module also keeps the names other code imports (`verify_gsm8k`, `normalize_math_answer`,
`check_math_answer`, `run_backend`, ...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from monkeyflow.records import Problem
from monkeyflow.text.final_answer import FinalAnswer, final_answer
from monkeyflow.verify.base import Check, Verifier, check_safely
from monkeyflow.verify.gsm8k import (  # noqa: F401 - re-exported
    GSM8KVerifier,
    extract_gsm8k_answer,
    parse_number,
    verify_gsm8k,
)
from monkeyflow.verify.mathcheck.backends import BACKENDS, _to_sympy  # noqa: F401
from monkeyflow.verify.mathcheck.compare import (  # noqa: F401 - re-exported
    DEFAULT_BACKEND,
    MAX_ANSWER_CHARS,
    check_math_answer,
)
from monkeyflow.verify.mathcheck.normalize import normalize_math_answer  # noqa: F401
from monkeyflow.verify.mathcheck.timeouts import (  # noqa: F401 - re-exported
    _ALL_WORKERS,
    _WORKER_GRACE_S,
    DEFAULT_ISOLATION,
    DEFAULT_TIMEOUT_S,
    _close_workers,
    run_backend,
)


def extract_math_answer(completion: str) -> tuple[str | None, str | None]:
    """(answer, method) of the final answer statement; a multi-part answer joined by ", "."""
    found = final_answer(completion)
    if found is None:
        return None, None
    return found.text, found.method


def _judge(
    problem: Problem,
    found: FinalAnswer | None,
    decide,
) -> Check:
    if found is None:
        return Check("incorrect", detail="no answer found")
    status, rule = decide(str(problem.reference), found.parts)
    return Check(status, extracted=found.text, method=found.method, detail=f"{rule}; {found.note}")


def verify_math(
    problem: Problem,
    completion: str,
    *,
    backend: str = DEFAULT_BACKEND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
) -> Check:
    """The completion's final answer checked against `problem.reference` (module doc)."""
    try:
        if not isinstance(completion, str):
            return Check("error", detail=f"completion is {type(completion).__name__}, not str")
        start = time.monotonic()

        def decide(reference: str, parts: tuple[str, ...]) -> tuple[str, str]:
            return check_math_answer(
                reference,
                parts,
                backend=backend,
                timeout_s=timeout_s,
                isolation=isolation,
                deadline=start + timeout_s,
            )

        return _judge(problem, final_answer(completion), decide)
    except Exception as exc:  # noqa: BLE001 - a verifier never raises
        return Check("error", detail=f"math verifier crashed: {type(exc).__name__}: {exc}")


class MathVerifier(Verifier):
    """MATH: the final answer statement is equivalent to the reference (see the module doc)."""

    # 2: final-statement extraction, multi-part answers, no token-merging normalisation,
    # decimal commas, numeric fast path, bounded work (verdicts changed).
    version = "2"
    container = "analysis"
    options_schema = {
        "backend": {
            "type": "string",
            "enum": sorted(BACKENDS),
            "default": DEFAULT_BACKEND,
            "description": "equivalence backend after the string match: math_verify (default) or sympy",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULT_TIMEOUT_S,
            "description": "wall-clock seconds of symbolic equivalence checking per sample (over it: status timeout)",
        },
        "isolation": {
            "type": "string",
            "enum": ["auto", "signal", "process"],
            "default": DEFAULT_ISOLATION,
            "x-runtime": True,
            "description": "how the timeout is enforced: SIGALRM in the main thread, a worker process, or auto",
        },
    }

    def check(self, problem: Problem, completion: str) -> Check:
        return verify_math(problem, completion, **self.options_for_check())

    def options_for_check(self) -> dict:
        return {k: self.options[k] for k in ("backend", "timeout_s", "isolation")}

    def check_many(self, pairs: Sequence[tuple[Problem, str]]) -> list[Check]:
        """Checks in order; each distinct (reference, extracted answer) is compared once.

        The verdict of a repeated answer is the one its first occurrence got (the comparison
        depends only on the reference and the answer), with its own extraction method and note.
        """
        options = self.options_for_check()
        decided: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
        checks = []
        for problem, completion in pairs:
            if not isinstance(completion, str):
                checks.append(check_safely(self, problem, completion))
                continue
            try:
                found = final_answer(completion)
                start = time.monotonic()

                def decide(reference: str, parts: tuple[str, ...], start=start) -> tuple[str, str]:
                    key = (reference, parts)
                    if key not in decided:
                        decided[key] = check_math_answer(
                            reference, parts, deadline=start + options["timeout_s"], **options
                        )
                    return decided[key]

                checks.append(_judge(problem, found, decide))
            except Exception as exc:  # noqa: BLE001 - one bad pair never fails the batch
                checks.append(
                    Check("error", detail=f"math verifier crashed: {type(exc).__name__}: {exc}")
                )
        return checks
