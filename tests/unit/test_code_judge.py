"""Judging code: extraction, the CodeContests output rule, HumanEval/APPS/stdio verdicts, the
cache and the batch API. Needs a sandbox backend (apt-get install bubblewrap)."""

from __future__ import annotations

import pytest

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.records import Problem
from monkeyflow.verify import get_verifier
from monkeyflow.verify.code import CodeJudge, extract_code, outputs_match, verify_code
from monkeyflow.verify.sandbox import SandboxError, backend_works

needs_sandbox = pytest.mark.skipif(
    not (backend_works("bwrap") or backend_works("nsjail")),
    reason="no sandbox backend: apt-get install bubblewrap",
)


# -- pure functions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "got, expected, same",
    [
        ("5\n", "5", True),
        ("YES", "yes", True),  # case-insensitive
        ("1 2\n3", "1\n2 3\n", True),  # whitespace-insensitive
        ("1 2", "1 2 3", False),  # token count
        ("0.333333", "0.3333333333", True),  # float within 1e-5
        ("0.3333", "0.3333333333", False),
        ("1e-6", "0", True),  # either a float: tolerance
        ("3", "3.000001", True),
        ("10", "010", True),  # ints compare as numbers
        ("100000000000000000001", "100000000000000000000", False),  # exactly, however large
        ("-0", "0", True),
        ("abc", "abd", False),
        ("1_000", "1000", False),  # python's int() would accept this; the rule does not
        ("nan", "nan", True),  # same string
        ("", "", True),
        ("", "0", False),
        # integers never go through floats; decimals compare exactly (Decimal), within 1e-5
        ("9007199254740992.0", "9007199254740993", False),
        ("9007199254740993.0", "9007199254740993", True),
        ("12345678901234567890.000001", "12345678901234567890", True),
        ("1e999999999", "1", False),  # huge exponents: no overflow, no blow-up
        ("1.00000000000000000001e30", "1e30", False),  # differs by 1e10
        ("inf", "inf", True),
        ("inf", "1e999", False),  # not numbers: strings
        ("0x10", "16", False),
    ],
)
def test_outputs_match(got, expected, same):
    assert outputs_match(got, expected) is same


@needs_sandbox
def test_special_judge_hook(judge):
    from monkeyflow.verify.code import output_judge

    @output_judge("any_divisor_of_12")
    def divisor(got, expected, test_input):
        return got.strip().isdigit() and 12 % int(got) == 0

    problem = stdio([{"input": "", "output": "12"}])
    problem.metadata["output_judge"] = "any_divisor_of_12"
    assert judge.verify(problem, "```python\nprint(3)\n```").status == "correct"
    assert judge.verify(problem, "```python\nprint(5)\n```").status == "incorrect"
    problem.metadata["output_judge"] = "no_such_judge"
    with pytest.raises(ValueError, match="output_judge"):
        judge.verify(problem, "```python\nprint(3)\n```")


@pytest.mark.parametrize(
    "completion, code, method",
    [
        ("Here:\n```python\nprint(1)\n```\nDone", "print(1)\n", "fenced"),
        ("```\nx = 1\n```", "x = 1\n", "fenced"),
        ("```py\na\n```\n```python\nb\n```", "a\n", "fenced"),  # the first block
        ("```python\nprint(1)", "print(1)", "fenced_open"),  # cut off by max_tokens
        (" ```python\nprint(2)```", "print(2)", "fenced"),
        ("print(3)\n", "print(3)\n", "raw"),
        ("This is prose, not code.", None, None),
        ("", None, None),
    ],
)
def test_extract_code(completion, code, method):
    assert extract_code(completion) == (code, method)


def test_extract_raw_continuation_compiles_after_the_prefix():
    prefix = "def f(x):\n"
    assert extract_code("    return x + 1\n", prefix) == ("    return x + 1\n", "raw")
    assert extract_code("    return x +\n", prefix) == (None, None)


# -- verdicts -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def judge():
    with CodeJudge(workers=2) as j:
        yield j


@pytest.fixture(scope="module")
def humaneval():
    return get_dataset(DatasetSpec("humaneval")).problems()


def stdio(tests, timeout_s=2.0) -> Problem:
    return Problem(
        problem_id="t", dataset="test", prompt="", reference="",
        metadata={"kind": "stdio", "timeout_s": timeout_s, "tests": tests},
    )  # fmt: skip


@needs_sandbox
def test_every_humaneval_canonical_solution_passes(judge, humaneval):
    checks = judge.verify_many([(p, p.reference) for p in humaneval])
    failed = {
        p.problem_id: c.detail
        for p, c in zip(humaneval, checks, strict=True)
        if c.status != "correct"
    }
    assert failed == {}
    assert {c.method for c in checks} == {"raw"}


@needs_sandbox
def test_a_canonical_solution_fails_another_problems_tests(judge, humaneval):
    shifted = [(humaneval[i], humaneval[i - 1].reference) for i in range(len(humaneval))]
    checks = judge.verify_many(shifted)
    passed = [
        p.problem_id for (p, _), c in zip(shifted, checks, strict=True) if c.status == "correct"
    ]
    assert passed == []
    assert all(
        c.status in ("incorrect", "timeout") and c.detail.startswith("tests: ") for c in checks
    )


@needs_sandbox
def test_humaneval_fenced_whole_function_and_early_exit(judge, humaneval):
    problem = humaneval[0]
    meta = problem.metadata
    whole = f"```python\n{meta['prompt']}{problem.reference}```"
    assert judge.verify(problem, whole).status == "correct"
    cheat = "```python\nimport sys\nsys.exit(0)\n```"
    check = judge.verify(problem, cheat)
    assert check.status == "incorrect" and "exited before answering" in check.detail


@needs_sandbox
def test_stdio_verdicts_name_the_first_failing_test(judge):
    tests = [
        {"input": f"{i} {i}\n", "output": str(2 * i), "group": g}
        for i, g in enumerate(["public", "private", "generated"])
    ]
    problem = stdio(tests)
    assert (
        judge.verify(
            problem, "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
        ).status
        == "correct"
    )
    check = judge.verify(
        problem, "```python\na, b = map(int, input().split())\nprint(a * b if a else 0)\n```"
    )
    assert (check.status, check.detail) == (
        "incorrect",
        "private test 2/3: wrong answer: expected '2', got '1'",
    )
    check = judge.verify(problem, "```python\nprint(1 // int(input().split()[0]))\n```")
    assert check.status == "incorrect"
    assert (
        check.detail
        == "public test 1/3: runtime error: exit code 1: ZeroDivisionError: integer division or modulo by zero"
    )
    check = judge.verify(problem, "no code here")
    assert (check.status, check.extracted) == ("incorrect", None)


@needs_sandbox
def test_exit_code_and_running_every_test():
    problem = stdio([{"input": "", "output": "ok"}, {"input": "", "output": "no"}])
    crash_after_answer = "```python\nprint('ok')\nraise SystemExit(2)\n```"
    with CodeJudge(workers=1) as strict:
        assert (
            strict.verify(problem, crash_after_answer).detail
            == "test 1/2: runtime error: exit code 2: no message"
        )
    with CodeJudge(workers=1, check_exit_code=False, stop_at_first_failure=False) as lenient:
        check = lenient.verify(problem, crash_after_answer)
        assert check.status == "incorrect"
        assert (
            check.detail
            == "passed 1/2; first failure test 2/2: wrong answer: expected 'no', got 'ok'"
        )
        assert lenient.runs == 2


@needs_sandbox
def test_apps_call_based_compares_return_values(judge):
    problems = {p.metadata.get("fn_name"): p for p in get_dataset(DatasetSpec("apps")).problems()}
    good = {
        "drop_cap": "def drop_cap(s):\n    return ' '.join(w.capitalize() if len(w) > 2 else w for w in s.split(' '))",
        "super_size": "def super_size(n):\n    return int(''.join(sorted(str(n), reverse=True)))",
        "validate_pin": "import re\ndef validate_pin(pin):\n    return bool(re.fullmatch(r'\\d{4}|\\d{6}', pin))",
    }
    for name, code in good.items():
        check = judge.verify(problems[name], f"```python\n{code}\n```")
        assert check.status == "correct", (name, check.detail)
    check = judge.verify(problems["super_size"], "```python\ndef super_size(n):\n    return n\n```")
    assert check.detail == "test 1/10: wrong answer: expected '96', got '69'"
    check = judge.verify(problems["super_size"], "```python\ndef other(n):\n    return n\n```")
    assert check.detail == "test 1/10: the program does not define super_size()"


@needs_sandbox
def test_cache_means_a_program_runs_once():
    problem = stdio([{"input": "1 2\n", "output": "3"}])
    answer = "```python\nprint(sum(map(int, input().split())))\n```"
    cache: dict = {}
    with CodeJudge(workers=1, cache=cache) as judge:
        first = judge.verify_many(
            [(problem, answer), (problem, "Sure!\n" + answer)]
        )  # same program twice
        assert judge.runs == 1 and len(cache) == 1
        assert judge.verify(problem, answer) == first[0]
        assert judge.runs == 1
    with CodeJudge(workers=1, cache=dict(cache)) as fresh:  # a persisted cache carries over
        assert fresh.verify(problem, answer).status == "correct" and fresh.runs == 0


@needs_sandbox
def test_a_sandbox_that_fails_the_probe_stops_the_job(monkeypatch):
    """Infrastructure that fails a known-good probe too: no verdict (nothing cached), the job
    fails loudly (through verify_samples as well) instead of writing `error` verdicts."""
    from monkeyflow.records import Sample
    from monkeyflow.stages import verify_samples
    from monkeyflow.verify import InfrastructureFailure
    from monkeyflow.verify.code import CodeVerifier, SandboxInfrastructureError

    problem = stdio([{"input": "", "output": "1"}])
    with CodeJudge(workers=1) as judge:

        def broken(self, *args, **kwargs):
            raise SandboxError("the sandbox exited")

        monkeypatch.setattr("monkeyflow.verify.sandbox.Sandbox.run_python", broken)
        with pytest.raises(SandboxInfrastructureError, match="probe"):
            judge.verify(problem, "```python\nprint(1)\n```")
        assert judge.cache == {}
        with CodeVerifier(workers=1) as verifier, pytest.raises(InfrastructureFailure):
            verify_samples([problem], [Sample("t", 0, "```python\nprint(1)\n```")], verifier)
        monkeypatch.undo()
        assert judge.verify(problem, "```python\nprint(1)\n```").status == "correct"


def test_a_program_that_breaks_its_sandbox_is_incorrect(monkeypatch):
    """The sandbox dies during one sample's run only: the probe passes in a fresh sandbox, so
    the sample is `incorrect` with the reason (never `error`, which would drop it from n)."""
    from monkeyflow.verify.sandbox import Sandbox

    problem = stdio([{"input": "", "output": "1"}])
    real = Sandbox.run_python

    def dies_on_marker(self, source, *args, **kwargs):
        if "BREAK" in str(source):
            self.close()
            raise SandboxError("the sandbox exited")
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "run_python", dies_on_marker)
    with CodeJudge(workers=1) as judge:
        check = judge.verify(problem, "```python\nprint('BREAK')\n```")
        assert check.status == "incorrect" and "broke its sandbox" in check.detail
        assert judge.verify(problem, "```python\nprint(1)\n```").status == "correct"


@needs_sandbox
def test_registered_verifiers(humaneval):
    from monkeyflow.data import DATASETS
    from monkeyflow.verify.code import CodeVerifier

    for name in ("humaneval", "apps", "codecontests"):
        assert DATASETS.get(name).verifier == "code"
    with get_verifier("code") as verifier:
        assert isinstance(verifier, CodeVerifier)
        assert verifier.check(humaneval[1], humaneval[1].reference).status == "correct"
    assert verify_code(humaneval[1], humaneval[1].reference).status == "correct"


@needs_sandbox
def test_unknown_kind_is_rejected(judge):
    with pytest.raises(ValueError, match="metadata.kind"):
        judge.verify(Problem("x", "test", "", "", metadata={}), "print(1)")
