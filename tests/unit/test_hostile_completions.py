"""Any string a model can emit gets a verdict from every verifier, within its timeout + 2 s:
1 MB of adversarial text, lone surrogates, NUL and control characters. (The code verifier also
runs programs: its hostile programs are in test_sandbox*.py; the SWE-bench verifier's in its
own suite.)"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.records import VERDICT_STATUSES, Sample
from monkeyflow.stages import verify_samples
from monkeyflow.verify import get_verifier

MB = 1_000_000
STAND_IN_REPL = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'stand_in_lean_repl.py'}"


def hostile(prefix: str) -> list[str]:
    body = MB - 1000
    return [
        prefix + "\\boxed{" + "1+" * (body // 2) + "1}",
        prefix + "(" * body,
        prefix + "\\frac{" * (body // 6),
        prefix + "#### " + "9" * body,
        prefix + "The answer is " + "\\sqrt{" * (body // 6),
        prefix + ("\udcff\x00\x1b[2J" * (body // 8)),
        prefix + "```lean\n" + "theorem x : True := by\n" * (body // 24),
    ]


CASES = [
    ("gsm8k", {}, 2.0),
    ("math", {"timeout_s": 2}, 2.0),
    ("minif2f", {"repl": STAND_IN_REPL, "timeout_s": 2, "workers": 1, "machine_workers": 8}, 2.0),
    ("humaneval", {"workers": 1}, 5.0),  # the code verifier: HumanEval's timeout_s
]


@pytest.mark.parametrize("dataset, options, timeout", CASES, ids=[c[0] for c in CASES])
def test_every_verifier_judges_hostile_completions_in_time(
    dataset, options, timeout, tmp_path, monkeypatch
):
    import tempfile

    if dataset == "humaneval":
        from monkeyflow.verify.sandbox import backend_works

        if not (backend_works("bwrap") or backend_works("nsjail")):
            pytest.skip("no sandbox backend: apt-get install bubblewrap")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the lean pool's worker slots
    monkeypatch.setenv("STAND_IN_LEAN_STATE", str(tmp_path))
    (problem,) = get_dataset(DatasetSpec(dataset, limit=1)).problems()
    verifier = get_verifier(get_dataset(DatasetSpec(dataset)).verifier, options)
    try:
        for i, text in enumerate(hostile("")):
            start = time.monotonic()
            (verdict,), _ = verify_samples(
                [problem], [Sample(problem.problem_id, i, text)], verifier
            )
            elapsed = time.monotonic() - start
            assert verdict.status in VERDICT_STATUSES and verdict.status != "correct"
            assert verdict.status != "error", (
                verdict.detail
            )  # a sample never causes an infrastructure error
            assert elapsed < timeout + 2, (i, elapsed, verdict.detail)
    finally:
        verifier.close()


def test_over_the_cap_is_incorrect_unjudged():
    (problem,) = get_dataset(DatasetSpec("math", limit=1)).problems()
    big = "\\boxed{" + problem.reference + "}" + " " * (2 * MB)
    (verdict,), stats = verify_samples([problem], [Sample(problem.problem_id, 0, big)], "math")
    assert verdict.status == "incorrect" and "over the verifier's cap" in verdict.detail
