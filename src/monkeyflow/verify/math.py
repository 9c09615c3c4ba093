"""Verifiers for GSM8K (numeric answers) and MATH (LaTeX answers checked for equivalence).

GSM8K: the answer is read from `#### <number>` (method `marker`), else from "The answer is X" /
"the final answer is X" / a trailing `A: X` line (`answer_is`), else the last number in the text
(`fallback`), and compared with the reference as an exact rational number.

MATH: the answer is the last `\\boxed{}` (method `boxed`), else the Minerva line "Final Answer: The
final answer is X. I hope it is correct." (`minerva`). It is correct if it equals the reference
after string normalisation (`normalize_math_answer`), or else if an equivalence backend says so:
`math_verify` (the maintained `math-verify` library, the default) or `sympy` (a hand-written
LaTeX -> sympy translation plus `simplify(a - b) == 0`). `bench/math_verifiers.py` measures both.

The symbolic step runs under a wall-clock timeout (`DEFAULT_TIMEOUT_S`): with SIGALRM in the main
thread (no per-call cost), in a persistent per-thread worker process elsewhere (signals only work
in the main thread). A timeout gives status `timeout`; a crash of the checker gives `error`, never
`incorrect`.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction

from monkeyflow.records import Problem
from monkeyflow.verify.base import Check, Verifier
from monkeyflow.verify.latex import last_boxed

DEFAULT_TIMEOUT_S = 5.0
# Chosen by bench/math_verifiers.py: both backends grade all 5000 MATH solutions and all 1254
# constructed pairs right (after the sympy one was tuned on them); on 20 held-out forms
# (intervals, sets, unions, inequalities, \exp) math-verify gets 17, the sympy one 12, and
# math-verify parses 4998/5000 references to sympy against 4781. The sympy backend is ~4x faster
# (~1.5 vs ~6 ms per call), which the string fast path makes matter little.
DEFAULT_BACKEND = "math_verify"
# How the timeout is enforced: `auto` = SIGALRM in the main thread, a worker process elsewhere.
DEFAULT_ISOLATION = "auto"

# ----------------------------------------------------------------------------------------------
# GSM8K
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# MATH: extraction and string normalisation
# ----------------------------------------------------------------------------------------------

_MINERVA = re.compile(
    r"Final Answer:\s*The final answer is\s*(.*?)\s*(?:\.\s*I hope\b|$)",
    re.IGNORECASE | re.MULTILINE,
)


def extract_math_answer(completion: str) -> tuple[str | None, str | None]:
    """(answer, method): the last `\\boxed{}`, else the Minerva final-answer line."""
    boxed = last_boxed(completion)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "boxed"
    found = _MINERVA.findall(completion)
    if found:
        answer = found[-1].strip()
        if len(answer) >= 2 and answer.startswith("$") and answer.endswith("$"):
            answer = answer.strip("$").strip()
        if answer:
            return answer, "minerva"
    return None, None


_UNIT_WORDS = (
    "units?|square units|sq units|cubic units|cm|centimeters?|mm|m|meters?|km|kilometers?|"
    "inches|inch|in|feet|foot|ft|yards?|miles?|mph|degrees?|dollars?|cents?|hours?|hrs?|minutes?|"
    "mins?|seconds?|days?|weeks?|months?|years?|pounds?|lbs?|ounces?|oz|grams?|gm|g|kg|liters?|"
    "points?|ways|students|people|meals|edges|integers|digits|multiples|teachers|children tickets|"
    "square feet|square inches|square meters|square centimeters|sq ft|percent|per cent"
)
_TRAILING_TEXT_UNIT = re.compile(
    r"^(.*?\d.*?)\s*\\(?:text|mbox|mathrm|textrm)\{\s*(?:" + _UNIT_WORDS + r")\s*\.?\s*\}"
    r"(?:\^\{?[23]\}?)?$",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_BARE_UNIT = re.compile(
    r"^(.*?\d.*?)\s+(?:" + _UNIT_WORDS + r")\.?(?:\^\{?[23]\}?)?$", re.IGNORECASE | re.DOTALL
)
_TEXT_WRAPPER = re.compile(
    r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}"
)
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_SHORT_ASSIGN = re.compile(r"^\s*[a-zA-Z](?:_\{?[0-9a-zA-Z]\}?)?\s*=\s*(?=\S)")
_SHORT_ASSIGN_RIGHT = re.compile(r"(?<=\S)\s*=\s*[a-zA-Z](?:_\{?[0-9a-zA-Z]\}?)?\s*$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _fix_fracs(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}` (Hendrycks' fix_fracs)."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b, rest = part[0], part[1], part[2:]
        if b == "{":
            out += "{" + a + "}" + b + rest
        else:
            out += "{" + a + "}{" + b + "}" + rest
    return out


def _fix_sqrt(s: str) -> str:
    """`\\sqrt3` -> `\\sqrt{3}`."""
    return re.sub(r"\\sqrt(?![a-zA-Z{\[])\s*([0-9a-zA-Z])", r"\\sqrt{\1}", s)


def normalize_math_answer(answer: str) -> str:
    """A canonical string for a MATH answer; equal strings mean equal answers.

    Drops `$`, spaces, `\\left`/`\\right`, degree signs, `\\%`, units in `\\text{}`, a trailing
    `.`, a short `x =` on the left, thousands separators; turns `\\dfrac` into `\\frac`, `\\frac12`
    into `\\frac{1}{2}`, `a/b` (integers) into `\\frac{a}{b}`, `.5` into `0.5`.
    """
    s = answer.strip()
    s = s.replace("\n", " ").replace("~", " ").replace("{,}", "")
    s = re.sub(r"(?<!\\)\\[,;:! ]", " ", s)  # spacing commands, not the row break `\\ `
    s = re.sub(r"\\(?:dfrac|tfrac)", r"\\frac", s)
    s = _LEFT_RIGHT.sub("", s)
    s = s.replace("\\displaystyle", "")
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    for _ in range(2):  # "5\text{ cm}^2", then a bare "5 cm"
        m = _TRAILING_TEXT_UNIT.match(s) or _TRAILING_BARE_UNIT.match(s)
        if m:
            s = m.group(1).strip()
    s = _TEXT_WRAPPER.sub(r"\1", s)
    if s.count("=") == 1:  # "x = 5" and "5 = x" are the answer 5
        s = _SHORT_ASSIGN.sub("", s, count=1)
        s = _SHORT_ASSIGN_RIGHT.sub("", s, count=1)
    s = s.strip().rstrip(".").strip()
    if _THOUSANDS.match(s.replace(" ", "")):
        s = s.replace(",", "")
    s = re.sub(r"\s+", "", s)
    s = _fix_sqrt(s)
    s = _fix_fracs(s)
    m = re.fullmatch(r"(-?)(\d+)/(\d+)", s)
    if m:
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    m = re.fullmatch(r"\(([A-Za-z])\)", s)  # a multiple-choice letter "(C)"
    if m:
        s = m.group(1)
    if re.fullmatch(r"-?\d+\.\d*?0+", s):  # "18.50" -> "18.5", "18.00" -> "18"
        s = s.rstrip("0").rstrip(".")
    return s


# ----------------------------------------------------------------------------------------------
# Equivalence backends: (reference, answer) -> bool; they may raise (-> `error`) or be slow.
# ----------------------------------------------------------------------------------------------


def _math_verify_equivalent(reference: str, answer: str) -> bool:
    """math-verify 0.9: parse both as LaTeX math and compare (its own timeouts off; ours wrap it)."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = parse(f"${reference}$", parsing_timeout=None, raise_on_error=True)
    pred = parse(f"${answer}$", parsing_timeout=None, raise_on_error=True)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None, raise_on_error=True))


_SYMPY_FUNCS = {
    "sqrt": "sqrt",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "cot": "cot",
    "sec": "sec",
    "csc": "csc",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "ln": "log",
    "log": "log",
    "exp": "exp",
    "pi": "pi",
    "infty": "oo",
    "cdot": "*",
    "times": "*",
    "div": "/",
}
_SAFE_EXPR = re.compile(r"^[A-Za-z0-9+\-*/()., ]*$")
_IDENT = re.compile(r"[A-Za-z]+")
_ALLOWED_IDENTS = {
    "sqrt",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "asin",
    "acos",
    "atan",
    "log",
    "exp",
    "pi",
    "oo",
    "root",
    "Matrix",
}


def _brace_arg(s: str, i: int) -> tuple[str, int]:
    """The `{...}` group (or single character) starting at s[i]; (content, index after it)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise ValueError("missing argument")
    if s[i] != "{":
        if s[i] == "\\":
            m = re.match(r"\\[a-zA-Z]+", s[i:])
            if m:
                return s[i : i + m.end()], i + m.end()
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    raise ValueError("unbalanced braces")


def _latex_to_expr(s: str) -> str:
    """A (sympy-parseable) expression string for one LaTeX math expression, or ValueError."""
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if s.startswith("\\frac", i):
            num, i = _brace_arg(s, i + 5)
            den, i = _brace_arg(s, i)
            out.append(f"(({_latex_to_expr(num)})/({_latex_to_expr(den)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            index = None
            if i < len(s) and s[i] == "[":
                close = s.index("]", i)
                index, i = s[i + 1 : close], close + 1
            arg, i = _brace_arg(s, i)
            if index is None:
                out.append(f"sqrt({_latex_to_expr(arg)})")
            else:
                out.append(f"root({_latex_to_expr(arg)},{_latex_to_expr(index)})")
        elif ch == "^":
            arg, i = _brace_arg(s, i + 1)
            out.append(f"**({_latex_to_expr(arg)})")
        elif ch == "\\":
            m = re.match(r"\\([a-zA-Z]+)", s[i:])
            if not m:
                raise ValueError(f"unsupported LaTeX at {s[i : i + 10]!r}")
            name = m.group(1)
            if name not in _SYMPY_FUNCS:
                raise ValueError(f"unsupported command \\{name}")
            out.append(f" {_SYMPY_FUNCS[name]} ")
            i += m.end()
        elif ch in "{}":
            out.append("(" if ch == "{" else ")")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _split_top_level(s: str, sep: str = ",") -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


class _Unreadable(ValueError):
    """The hand-written translator cannot read this answer (so it cannot be shown equal)."""


def _to_sympy(latex: str):
    """A sympy expression for a normalised LaTeX scalar; `_Unreadable` if it cannot be read."""
    from sympy import SympifyError
    from sympy.parsing.sympy_parser import TokenError

    try:
        return _parse_scalar(latex)
    except (ValueError, TypeError, SyntaxError, SympifyError, TokenError) as exc:
        raise _Unreadable(f"cannot read {latex!r}: {type(exc).__name__}") from None


def _parse_scalar(latex: str):
    mixed = re.fullmatch(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}", latex)
    if mixed:  # a mixed number: 6\frac{3}{4} is 27/4, not 6 * 3/4
        sign, whole, num, den = mixed.groups()
        latex = f"{sign}\\frac{{{int(whole) * int(den) + int(num)}}}{{{den}}}"
    from sympy import Symbol
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    text = _latex_to_expr(latex)
    if not _SAFE_EXPR.match(text) or re.search(r"[A-Za-z]\s*\.", text):
        raise ValueError(f"unsafe or unsupported expression {text!r}")

    def split_word(m: re.Match) -> str:  # `xy` is x*y; a longer unknown word is text, not math
        word = m.group(0)
        if word in _ALLOWED_IDENTS:
            return word
        if len(word) > 2:
            raise ValueError(f"word {word!r}")
        return "*".join(word)

    text = _IDENT.sub(split_word, text)
    local = {c: Symbol(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    from sympy import I

    local["i"] = I
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)
    return parse_expr(text, local_dict=local, transformations=transformations, evaluate=True)


def _sympy_scalar_equal(a: str, b: str) -> bool:
    from sympy import Float, N, nsimplify, simplify

    if a == b:
        return True
    try:
        if a.count("=") == 1 and b.count("=") == 1:
            # The same equation: lhs - rhs proportional (sides swapped, both sides scaled).
            (la, ra), (lb, rb) = a.split("="), b.split("=")
            x = _to_sympy(la) - _to_sympy(ra)
            y = _to_sympy(lb) - _to_sympy(rb)
            if x == 0 or y == 0:
                return x == y
            ratio = simplify(x / y)
            return bool(ratio.is_number and ratio != 0 and ratio.is_finite)
        if "=" in a or "=" in b:
            return False
        x, y = _to_sympy(a), _to_sympy(b)
    except _Unreadable:  # e.g. words, or LaTeX the translator lacks: the string test was final
        return False
    if not x.free_symbols and not y.free_symbols:
        if x.has(Float) or y.has(Float):  # a decimal on either side: close enough
            vx, vy = complex(N(x)), complex(N(y))
            return abs(vx - vy) <= 1e-6 * max(1.0, abs(vx))
        x, y = nsimplify(x), nsimplify(y)
    diff = simplify(x - y)
    return bool(diff == 0)


def _sympy_equivalent(reference: str, answer: str) -> bool:
    """Hand-written backend: normalise, split tuples/lists/matrices, `simplify(a - b) == 0`."""
    a, b = normalize_math_answer(reference), normalize_math_answer(answer)
    if a == b:
        return True
    ma = re.fullmatch(r"\\begin\{[pb]matrix\}(.*)\\end\{[pb]matrix\}", a)
    mb = re.fullmatch(r"\\begin\{[pb]matrix\}(.*)\\end\{[pb]matrix\}", b)
    if ma or mb:
        if not (ma and mb):
            return False
        rows_a = [r.split("&") for r in ma.group(1).split("\\\\")]
        rows_b = [r.split("&") for r in mb.group(1).split("\\\\")]
        if [len(r) for r in rows_a] != [len(r) for r in rows_b]:
            return False
        return all(
            _sympy_scalar_equal(x, y)
            for ra, rb in zip(rows_a, rows_b, strict=True)
            for x, y in zip(ra, rb, strict=True)
        )
    brackets = "()[]"
    open_a, close_a = (a[0], a[-1]) if a and a[0] in brackets and a[-1] in brackets else ("", "")
    open_b, close_b = (b[0], b[-1]) if b and b[0] in brackets and b[-1] in brackets else ("", "")
    inner_a = a[1:-1] if open_a else a
    inner_b = b[1:-1] if open_b else b
    parts_a, parts_b = _split_top_level(inner_a), _split_top_level(inner_b)
    if len(parts_a) > 1 or len(parts_b) > 1:
        if len(parts_a) != len(parts_b) or (open_a, close_a) != (open_b, close_b):
            return False
        if open_a:  # a tuple or an interval: in order
            return all(_sympy_scalar_equal(x, y) for x, y in zip(parts_a, parts_b, strict=True))
        remaining = list(parts_b)  # a bare list of answers: in any order
        for x in parts_a:
            for k, y in enumerate(remaining):
                if _sympy_scalar_equal(x, y):
                    del remaining[k]
                    break
            else:
                return False
        return True
    return _sympy_scalar_equal(a, b)


def _slow_for_tests(reference: str, answer: str) -> bool:
    """Sleeps `answer` seconds (to test timeouts in a worker process)."""
    time.sleep(float(answer))
    return False


def _crash_for_tests(reference: str, answer: str) -> bool:
    raise RuntimeError("checker crashed (test)")


def _hang_for_tests(reference: str, answer: str) -> bool:
    """Blocks SIGALRM and sleeps: stands for a hang in C code that no signal can interrupt."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(float(answer))
    return False


BACKENDS: dict[str, Callable[[str, str], bool]] = {
    "math_verify": _math_verify_equivalent,
    "sympy": _sympy_equivalent,
    "_slow_for_tests": _slow_for_tests,
    "_crash_for_tests": _crash_for_tests,
    "_hang_for_tests": _hang_for_tests,
}

# ----------------------------------------------------------------------------------------------
# Running a backend under a wall-clock timeout
# ----------------------------------------------------------------------------------------------


class _Deadline(BaseException):
    """Raised by SIGALRM; a BaseException so that `except Exception` in sympy cannot swallow it."""


def _call_with_alarm(fn: Callable[..., bool], args: tuple, timeout_s: float) -> tuple[str, object]:
    """("ok", value) | ("timeout", None) | ("error", message); main thread only."""
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _Deadline()

    start = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    # Re-fire every 50 ms in case a bare `except:` somewhere swallows the first alarm.
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.05)
    try:
        try:
            return "ok", fn(*args)
        finally:
            try:
                armed[0] = False
            finally:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
                if old_delay > 0:  # someone else's timer was running: put it back
                    left = old_delay - (time.monotonic() - start)
                    signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)
    except _Deadline:
        return "timeout", None
    except RecursionError:
        return "error", "RecursionError"
    except Exception as exc:  # noqa: BLE001
        return "error", f"{type(exc).__name__}: {exc}"[:500]


_WORKER_GRACE_S = 2.0  # extra wait before a worker stuck in C code is killed
_WORKER_START_S = 120.0  # importing sympy and math-verify in a fresh process


class _Worker:
    """A child Python process that runs backends (under its own SIGALRM) for one thread."""

    def __init__(self) -> None:
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from monkeyflow.verify.math import _worker_main; _worker_main()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._buf = b""
        _ALL_WORKERS.append(self)
        if self._readline(_WORKER_START_S) != b"ready":
            self.close()
            raise RuntimeError("verifier worker process did not start")

    def _readline(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("verifier worker process exited")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def call(self, backend: str, args: tuple, timeout_s: float) -> tuple[str, object]:
        request = json.dumps({"backend": backend, "args": list(args), "timeout": timeout_s})
        self.proc.stdin.write(request.encode() + b"\n")
        self.proc.stdin.flush()
        line = self._readline(timeout_s + _WORKER_GRACE_S)
        if line is None:
            self.close()  # stuck where SIGALRM cannot reach it
            return "timeout", None
        reply = json.loads(line)
        return reply["status"], reply["value"]

    def close(self) -> None:
        if self in _ALL_WORKERS:
            _ALL_WORKERS.remove(self)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


_ALL_WORKERS: list[_Worker] = []
_THREAD_STATE = threading.local()


@atexit.register
def _close_workers() -> None:
    for worker in list(_ALL_WORKERS):  # close() removes the worker from the list
        try:
            worker.close()
        except Exception:  # noqa: BLE001
            pass


def _worker_main() -> None:
    """The worker loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    import math_verify  # noqa: F401 - import up front, not inside the first timed call

    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        fn = BACKENDS[request["backend"]]
        status, value = _call_with_alarm(fn, tuple(request["args"]), request["timeout"])
        if status == "ok":
            value = bool(value)
        out.write(json.dumps({"status": status, "value": value}).encode() + b"\n")
        out.flush()


def run_backend(
    backend: str,
    reference: str,
    answer: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
) -> tuple[str, object]:
    """Run an equivalence backend under a timeout: ("ok", bool) | ("timeout", None) | ("error", msg).

    isolation: `signal` (SIGALRM; main thread only), `process` (a persistent worker process per
    thread, restarted after a hang), or `auto` (signal in the main thread, else process).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown MATH equivalence backend {backend!r}; known: {sorted(BACKENDS)}")
    in_main = threading.current_thread() is threading.main_thread()
    if isolation == "auto":
        isolation = "signal" if in_main and hasattr(signal, "setitimer") else "process"
    if isolation == "signal":
        if not in_main:
            raise RuntimeError("isolation='signal' works only in the main thread")
        return _call_with_alarm(BACKENDS[backend], (reference, answer), timeout_s)
    if isolation != "process":
        raise ValueError(f"isolation must be auto, signal or process, not {isolation!r}")
    worker = getattr(_THREAD_STATE, "worker", None)
    if worker is None or worker.proc.poll() is not None:
        _THREAD_STATE.worker = worker = _Worker()
    try:
        status, value = worker.call(backend, (reference, answer), timeout_s)
    except (EOFError, OSError, ValueError) as exc:
        worker.close()
        return "error", f"verifier worker failed: {type(exc).__name__}: {exc}"
    if worker.proc.poll() is not None:
        _THREAD_STATE.worker = None
    return status, value


# ----------------------------------------------------------------------------------------------
# The MATH verifier
# ----------------------------------------------------------------------------------------------


def check_math_answer(
    reference: str,
    answer: str,
    *,
    backend: str = DEFAULT_BACKEND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
) -> tuple[str, str]:
    """(status, detail) for an extracted answer against a reference."""
    if normalize_math_answer(answer) == normalize_math_answer(reference):
        return "correct", "string match"
    status, value = run_backend(backend, reference, answer, timeout_s, isolation)
    if status == "ok":
        return ("correct" if value else "incorrect"), backend
    if status == "timeout":
        return "timeout", f"{backend} equivalence check took over {timeout_s:g} s"
    return "error", f"{backend} equivalence check crashed: {value}"


def verify_math(
    problem: Problem,
    completion: str,
    *,
    backend: str = DEFAULT_BACKEND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolation: str = DEFAULT_ISOLATION,
) -> Check:
    """The completion's boxed (or Minerva) answer checked against `problem.reference`."""
    try:
        if not isinstance(completion, str):
            return Check("error", detail=f"completion is {type(completion).__name__}, not str")
        answer, method = extract_math_answer(completion)
        if answer is None:
            return Check("incorrect", detail="no answer found")
        status, detail = check_math_answer(
            str(problem.reference),
            answer,
            backend=backend,
            timeout_s=timeout_s,
            isolation=isolation,
        )
        return Check(status, extracted=answer, method=method, detail=detail)
    except Exception as exc:  # noqa: BLE001 - a verifier never raises
        return Check("error", detail=f"math verifier crashed: {type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------------------------
# Registered verifiers (monkeyflow.verify.base.VERIFIERS)
# ----------------------------------------------------------------------------------------------


class GSM8KVerifier(Verifier):
    """GSM8K: the completion's numeric answer equals the reference exactly (see the module doc)."""

    version = "1"
    container = "analysis"

    def check(self, problem: Problem, completion: str) -> Check:
        return verify_gsm8k(problem, completion)


class MathVerifier(Verifier):
    """MATH: the boxed (or Minerva) answer is equivalent to the reference (see the module doc)."""

    version = "1"
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
            "description": "wall-clock seconds for one symbolic equivalence check (over it: status timeout)",
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
        o = self.options
        return verify_math(
            problem,
            completion,
            backend=o["backend"],
            timeout_s=o["timeout_s"],
            isolation=o["isolation"],
        )
