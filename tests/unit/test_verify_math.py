"""The GSM8K and MATH verifiers (monkeyflow.verify.math)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from monkeyflow.data.base import read_bundled
from monkeyflow.data.gsm8k import reference_answer as gsm8k_reference
from monkeyflow.data.math import reference_answer as math_reference
from monkeyflow.records import Problem
from monkeyflow.verify import get_verifier
from monkeyflow.verify import math as vm
from monkeyflow.verify.base import Check

MODEL_COLUMNS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def gsm(reference: str) -> Problem:
    return Problem("gsm8k-t", "gsm8k", "", reference)


def mth(reference: str) -> Problem:
    return Problem("math-t", "math", "", reference)


# --------------------------------------------------------------------------- registry


def test_registered():
    assert isinstance(get_verifier("gsm8k"), vm.GSM8KVerifier)
    math = get_verifier("math", {"backend": "sympy", "timeout_s": 2})
    assert isinstance(math, vm.MathVerifier) and math.options["backend"] == "sympy"
    assert math.identity() == {
        "name": "math",
        "version": vm.MathVerifier.version,
        "options": {"backend": "sympy", "timeout_s": 2, "max_completion_bytes": 1_000_000},
    }


# --------------------------------------------------------------------------- GSM8K


def test_gsm8k_every_test_solution_is_correct_against_its_reference():
    rows = read_bundled("gsm8k/test.jsonl")
    assert len(rows) == 1319
    bad = []
    for i, row in enumerate(rows):
        check = vm.verify_gsm8k(gsm(gsm8k_reference(row["answer"])), row["answer"])
        if check.status != "correct" or check.method != "marker":
            bad.append((i, check))
    assert bad == []


def test_gsm8k_example_model_solution_labels_agree():
    rows = read_bundled("gsm8k/example_model_solutions.jsonl")
    total, disagree = 0, []
    for i, row in enumerate(rows):
        reference = row["ground_truth"].split("A:")[-1].strip().replace(",", "")
        for col in MODEL_COLUMNS:
            check = vm.verify_gsm8k(gsm(reference), row[col]["solution"])
            total += 1
            if (check.status == "correct") != row[col]["is_correct"]:
                disagree.append((i, col, reference, check))
    assert total == 5276
    assert disagree == []  # 100% agreement (NOTES: the A:/last-number rule reproduces all labels)


@pytest.mark.parametrize(
    ("completion", "reference", "status", "method", "extracted"),
    [
        ("so 9 * 2 = 18\n#### 18", "18", "correct", "marker", "18"),
        ("#### 1,000", "1000", "correct", "marker", "1,000"),
        ("#### $18.00.", "18", "correct", "marker", "$18.00."),
        ("#### -3", "-3", "correct", "marker", "-3"),
        ("The answer is 18.", "18", "correct", "answer_is", "18"),
        ("So the final answer is $1,250.50", "1250.5", "correct", "answer_is", "$1,250.50"),
        ("The answer is: -7", "-7", "correct", "answer_is", "-7"),
        ("reasoning\nA: 18", "18", "correct", "answer_is", "18"),
        ("She has 3 eggs, then 12, so 15 eggs", "15", "correct", "fallback", "15"),
        ("The temperature fell to -5", "-5", "correct", "fallback", "-5"),
        ("10 - 3 = 7", "7", "correct", "fallback", "7"),
        ("#### 17", "18", "incorrect", "marker", "17"),
        ("#### 18\nQuestion: next #### 4", "18", "correct", "marker", "18"),  # first marker
        ("The answer is 18 but #### 19", "18", "incorrect", "marker", "19"),  # marker first
        ("It costs $.5 each", "0.5", "correct", "fallback", "$.5"),
    ],
)
def test_gsm8k_cases(completion, reference, status, method, extracted):
    check = vm.verify_gsm8k(gsm(reference), completion)
    assert (check.status, check.method, check.extracted) == (status, method, extracted)


def test_gsm8k_no_answer_and_bad_reference():
    assert vm.verify_gsm8k(gsm("18"), "I don't know") == Check(
        "incorrect", detail="no answer found"
    )
    assert vm.verify_gsm8k(gsm("18"), "").detail == "no answer found"
    assert vm.verify_gsm8k(gsm("#### $."), "#### 5").status == "error"
    assert vm.verify_gsm8k(gsm("18"), None).status == "error"  # type: ignore[arg-type]


def test_parse_number():
    assert vm.parse_number("18.00") == vm.parse_number("18") == vm.parse_number("$18.")
    assert vm.parse_number("1,000") == 1000
    assert vm.parse_number("-3") == -3
    assert vm.parse_number(".") is None and vm.parse_number("$") is None
    assert vm.parse_number("1" * 500) is None


# --------------------------------------------------------------------------- MATH extraction


def test_math_extraction_methods():
    assert vm.extract_math_answer("so $\\boxed{\\frac{1}{2}}$.") == ("\\frac{1}{2}", "boxed")
    assert vm.extract_math_answer("\\boxed{1} then \\boxed{2}") == ("2", "boxed")
    minerva = "work\nFinal Answer: The final answer is $[2,5)$. I hope it is correct."
    assert vm.extract_math_answer(minerva) == ("[2,5)", "minerva")
    both = "$\\boxed{24}$.\nFinal Answer: The final answer is $25$. I hope it is correct."
    assert vm.extract_math_answer(both) == ("25", "minerva")  # the final statement wins
    assert vm.extract_math_answer("no answer here") == (None, None)
    assert vm.extract_math_answer("\\boxed{unfinished") == (None, None)


def test_math_no_answer_found():
    check = vm.verify_math(mth("5"), "I think it is five")
    assert (check.status, check.detail, check.extracted) == ("incorrect", "no answer found", None)


# --------------------------------------------------------------------------- MATH grading


def test_math_every_test_solution_is_correct_against_its_reference():
    """All 5000 with the default backend; the string fast path makes this ~1 s."""
    rows = read_bundled("math/test.jsonl")
    assert len(rows) == 5000
    bad = []
    for i, row in enumerate(rows):
        check = vm.verify_math(mth(math_reference(row["solution"])), row["solution"])
        if check.status != "correct":
            bad.append((i, check))
    assert bad == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["math_verify", "sympy"])
def test_math_every_reference_equals_itself_without_fast_path(backend):
    """The backend alone (no string fast path) on all 5000 references (~20 s for math_verify)."""
    refs = [math_reference(row["solution"]) for row in read_bundled("math/test.jsonl")]
    bad = [r for r in refs if vm.run_backend(backend, r, r) != ("ok", True)]
    assert bad == []


def test_math_reference_equals_itself_without_fast_path_sample():
    rows = read_bundled("math/test.jsonl")
    refs = [math_reference(row["solution"]) for row in random.Random(0).sample(rows, 60)]
    for backend in ("math_verify", "sympy"):
        assert [r for r in refs if vm.run_backend(backend, r, r) != ("ok", True)] == []


EQUIVALENT = [
    ("\\frac{1}{2}", "\\dfrac{1}{2}"),
    ("\\frac{3}{4}", "3/4"),
    ("\\frac{1}{2}", "0.5"),
    ("0.5", "\\frac12"),
    ("\\left( 1, 2 \\right)", "(1,2)"),
    ("10\\%", "10"),
    ("x=5", "5"),
    ("5", "x = 5"),
    ("5^\\circ", "5"),
    ("45", "45^{\\circ}"),
    ("162\\text{ minutes}", "162"),
    ("12", "12\\text{ cm}^2"),
    ("1000", "1,000"),
    ("\\text{(C)}", "C"),
    ("-\\frac{2}{3}", "\\frac{-2}{3}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("6p^4 + 5p^2 - 4", "-4 + 5p^2 + 6p^4"),
    ("\\begin{pmatrix} -3 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix}-3\\\\-2\\end{pmatrix}"),
    ("0,4", "4, 0"),
    ("y = 2x + 3", "y = 3 + 2x"),
    ("18", "18.00"),
]
NOT_EQUIVALENT = [
    ("5", "6"),
    ("5", "-5"),
    ("\\frac{1}{3}", "\\frac{2}{5}"),
    ("\\frac{1}{3}", "0.33"),
    ("(1, 2)", "(2, 1)"),
    ("[0, 1)", "[0, 1]"),
    ("\\sqrt{2}", "2"),
    ("\\text{(C)}", "(D)"),
    ("\\text{Monday}", "\\text{Tuesday}"),
    ("x=5", "x=6"),
]


@pytest.mark.parametrize("backend", ["math_verify", "sympy"])
def test_math_equivalent_pairs(backend):
    wrong = [
        (r, a) for r, a in EQUIVALENT if vm.check_math_answer(r, a, backend=backend)[0] != "correct"
    ]
    assert wrong == []


@pytest.mark.parametrize("backend", ["math_verify", "sympy"])
def test_math_non_equivalent_pairs(backend):
    wrong = [
        (r, a)
        for r, a in NOT_EQUIVALENT
        if vm.check_math_answer(r, a, backend=backend)[0] != "incorrect"
    ]
    assert wrong == []


def test_math_verifier_records_method_and_backend():
    check = vm.verify_math(mth("x + 1"), "so $\\boxed{1 + x}$")
    assert (check.status, check.method, check.extracted) == ("correct", "boxed", "1 + x")
    assert check.detail == vm.DEFAULT_BACKEND + "; last \\boxed"
    check = vm.verify_math(mth("\\frac{1}{2}"), "so $\\boxed{0.5}$")
    assert (check.status, check.detail) == ("correct", "numeric match; last \\boxed")
    check = vm.verify_math(
        mth("\\frac{1}{2}"), "Final Answer: The final answer is $\\dfrac12$. I hope"
    )
    assert (check.status, check.method) == ("correct", "minerva")
    assert check.detail == "string match; final-answer statement"


def test_normalize_math_answer():
    n = vm.normalize_math_answer
    assert n("\\left( \\dfrac{1}{2}, 3 \\right)") == n("(\\frac12,3)")
    assert n("$5$.") == "5"
    assert n("\\text{Friday}") == "Friday"
    assert n("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}") == "\\begin{pmatrix}1\\\\2\\end{pmatrix}"
    assert n("\\text{(C)}") != n("\\text{(D)}")


# --------------------------------------------------------------------------- timeouts, errors


def test_timeout_in_main_thread(monkeypatch):
    def slow(reference, answer):
        while True:  # pure Python: SIGALRM interrupts it
            time.sleep(0.01)

    monkeypatch.setitem(vm.BACKENDS, "math_verify", slow)
    t = time.monotonic()
    check = vm.verify_math(mth("x"), "\\boxed{y}", timeout_s=0.2)
    assert time.monotonic() - t < 2
    assert check.status == "timeout" and "0.2" in check.detail


def test_timeout_swallowed_once_still_fires(monkeypatch):
    def swallows_first_alarm(reference, answer):
        try:
            time.sleep(5)
        except BaseException:  # noqa: BLE001 - like a bare `except:` deep inside sympy
            pass
        time.sleep(5)  # the alarm re-fires every 50 ms, so this is cut short too
        return True

    monkeypatch.setitem(vm.BACKENDS, "math_verify", swallows_first_alarm)
    t = time.monotonic()
    assert vm.check_math_answer("x", "y", timeout_s=0.1)[0] == "timeout"
    assert time.monotonic() - t < 1


def test_real_slow_expression_times_out():
    # math-verify evaluates 10^(10^10) while comparing: a real hang, cut by the timeout.
    check = vm.verify_math(mth("5"), "\\boxed{10^{10^{10}}}", timeout_s=0.3)
    assert check.status == "timeout"


def test_checker_crash_gives_error(monkeypatch):
    def crash(reference, answer):
        raise RuntimeError("boom")

    monkeypatch.setitem(vm.BACKENDS, "math_verify", crash)
    check = vm.verify_math(mth("x"), "\\boxed{y}")
    assert check.status == "error" and "RuntimeError: boom" in check.detail
    # the string fast path still answers without the backend
    assert vm.verify_math(mth("5"), "\\boxed{5}").status == "correct"


def test_outer_alarm_is_restored():
    import signal

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        assert vm.check_math_answer("x", "y")[0] == "incorrect"  # reaches the backend
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 0.5
        time.sleep(0.7)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


DOUBLES = "tests.unit.math_doubles:"  # misbehaving checkers, imported by the worker process


@pytest.fixture
def doubles_importable(monkeypatch):
    """The worker process (started by the test's thread) finds `tests.unit.math_doubles`."""
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )


def test_unknown_backends_are_refused():
    with pytest.raises(ValueError, match="unknown MATH equivalence backend"):
        vm.run_backend("_slow_for_tests", "", "1")
    assert "_slow_for_tests" not in vm.MathVerifier.options_schema["backend"]["enum"]


def test_worker_thread_uses_a_process_with_timeout_and_error(doubles_importable):
    results = {}

    def work():
        results["ok"] = vm.check_math_answer("x + 1", "1 + x")
        results["no"] = vm.check_math_answer("x", "y")
        results["slow"] = vm.run_backend(DOUBLES + "slow", "", "30", timeout_s=0.3)
        results["crash"] = vm.run_backend(DOUBLES + "crash", "", "", timeout_s=1)
        results["after"] = vm.check_math_answer("2", "2.0", backend="sympy")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    assert results["ok"] == ("correct", "math_verify")
    assert results["no"] == ("incorrect", "math_verify")
    assert results["slow"] == ("timeout", None)
    assert results["crash"][0] == "error" and "checker crashed" in results["crash"][1]
    assert results["after"][0] == "correct"


def test_worker_stuck_beyond_signals_is_killed_and_replaced(doubles_importable):
    results = {}

    def work():
        # start the thread's worker (imports sympy and math-verify) before timing the hang
        results["warm"] = vm.run_backend(DOUBLES + "slow", "", "0", timeout_s=60)
        t = time.monotonic()
        results["hang"] = vm.run_backend(DOUBLES + "hang", "", "60", timeout_s=0.2)
        results["hang_s"] = time.monotonic() - t
        results["after"] = vm.check_math_answer("x + 1", "1 + x")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(120)
    assert results["warm"] == ("ok", False)
    assert results["hang"] == ("timeout", None)
    assert results["hang_s"] < 0.2 + vm._WORKER_GRACE_S + 1
    assert results["after"] == ("correct", "math_verify")


def test_exit_closes_every_worker_process():
    def work():
        vm.check_math_answer("x + 1", "1 + x", isolation="process")

    threads = [threading.Thread(target=work) for _ in range(3)]  # three threads, three workers
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    procs = [w.proc for w in vm._ALL_WORKERS]
    assert len(procs) >= 3 and all(p.poll() is None for p in procs)
    vm._close_workers()  # what atexit runs
    assert vm._ALL_WORKERS == [] and all(p.poll() is not None for p in procs)


def test_signal_isolation_off_main_thread_is_refused():
    out = {}

    def work():
        try:
            vm.run_backend("sympy", "1", "2", isolation="signal")
        except RuntimeError as exc:
            out["exc"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "main thread" in str(out["exc"])


# --------------------------------------------------------------------------- garbage in


GARBAGE = [
    "",
    " ",
    "\x00",
    "####",
    "#### ",
    "#### -",
    "#### ,,,",
    "#### $$$",
    "A:",
    "A: .",
    "The answer is",
    "\\boxed{",
    "\\boxed{}",
    "\\boxed",
    "\\boxed }",
    "}}}{{{",
    "$$$$",
    "\\frac{",
    "\\boxed{\\frac{1}{0}}",
    "\\boxed{1/0}",
    "\\boxed{\\sqrt{}}",
    "\\boxed{^^^}",
    "\\boxed{__import__('os').system('echo pwned')}",
    "\\boxed{\\left(}",
    "\\boxed{\\\\\\\\}",
    "Final Answer: The final answer is $. I hope it is correct.",
    "9" * 5000,
    "-" * 1000,
    "\\boxed{" + "(" * 300 + "}",
    "\\boxed{" + "{" * 200 + "1" + "}" * 200 + "}",
    "\udcff",
]


def _fuzz_strings(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("0123456789-+.,$#A:=()[]{}\\^_/ xyze%") + [
        "\\boxed{",
        "\\frac",
        "\\sqrt",
        "\\left",
        "\\right",
        "####",
        "The answer is ",
        "\\text{",
        "\\infty",
        "\\pi",
        "Final Answer: The final answer is ",
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@pytest.mark.parametrize("backend", ["math_verify", "sympy"])
def test_garbage_never_raises(backend):
    for text in GARBAGE + _fuzz_strings(150):
        for reference in ("5", "\\frac{1}{2}", "x"):
            g = vm.verify_gsm8k(gsm(reference if reference == "5" else "5"), text)
            assert isinstance(g, Check)
            m = vm.verify_math(mth(reference), text, backend=backend, timeout_s=0.3)
            assert isinstance(m, Check) and m.status in ("correct", "incorrect", "timeout", "error")
        # garbage as the reference too
        assert isinstance(
            vm.verify_math(mth(text or "?"), "\\boxed{5}", backend=backend, timeout_s=0.3), Check
        )


# --------------------------------------------------------------------------- bounded work

MB = 1_000_000
ADVERSARIAL = {
    "boxed sum": "\\boxed{" + "1+" * (MB // 2) + "1}",
    "unclosed box": "\\boxed{" + "1+" * (MB // 2),
    "nested boxes": "\\boxed{" * (MB // 8) + "1" + "}" * (MB // 8),
    "many boxes": "\\boxed{1} and " * (MB // 14),
    "spaces": "\\boxed{x" + " " * MB + "= 5}",
    "units": "\\boxed{1" + "\\text{ cm}" * (MB // 10) + "}",
    "phrases": "The answer is " * (MB // 14),
    "final lines": "Final Answer: The final answer is $1$. I hope it is correct.\n" * (MB // 60),
    "braces": "{" * MB,
    "zeros": "\\boxed{1." + "0" * MB + "1}",
    "display": "Final Answer: The final answer is \\[" + "x" * MB,
    "bad bytes": "\\boxed{\udcff" + "\x00\x01\x7f" * (MB // 3) + "}",
    "4001 chars": "\\boxed{" + "1+" * 2000 + "1}",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("verifier", ["math", "gsm8k"])
def test_one_megabyte_adversarial_answer_gets_a_verdict_in_time(verifier, name):
    timeout_s = 1.0
    judge = get_verifier(verifier, {"timeout_s": timeout_s} if verifier == "math" else {})
    reference = "5" if verifier == "gsm8k" else "x^2+1"
    t = time.monotonic()
    check = judge.check_many([(Problem("p", verifier, "", reference), ADVERSARIAL[name])])[0]
    assert time.monotonic() - t < timeout_s + 2
    assert check.status in ("correct", "incorrect", "timeout")  # a verdict, never `error`


@pytest.mark.parametrize(
    "text", ["\\boxed{\udcff}", "\\boxed{5\x00}", "\\boxed{\x1b[31m5}", "\x00"]
)
def test_bad_characters_get_verdicts(text):
    assert vm.verify_math(mth("5"), text).status in ("incorrect", "correct")
    assert vm.verify_gsm8k(gsm("5"), text).status in ("incorrect", "correct")


def test_check_many_compares_each_distinct_answer_once(monkeypatch):
    calls = []
    real = vm.BACKENDS["math_verify"]

    def counting(reference, answer):
        calls.append(answer)
        return real(reference, answer)

    monkeypatch.setitem(vm.BACKENDS, "math_verify", counting)
    texts = [f"Step {i}: ... so $\\boxed{{1 + x}}$" for i in range(20)]
    texts += [f"Try {i}.\nFinal Answer: The final answer is $x+2$." for i in range(10)]
    pairs = [(mth("x + 1"), t) for t in texts]
    many = vm.MathVerifier().check_many(pairs)
    assert sorted(set(calls)) == ["1 + x", "x+2"] and len(calls) == 2
    one_by_one = [vm.verify_math(p, t) for p, t in pairs]
    assert many == one_by_one
    assert [c.status for c in many] == ["correct"] * 20 + ["incorrect"] * 10
