"""Judging code samples: extract the program from a completion, run it on the problem's tests in
the sandbox (`monkeyflow.verify.sandbox`) and compare.

`problem.metadata` (written by `monkeyflow.data.code`) says how:
- kind `stdio`: run the program once per test with the test's input on stdin; its stdout must
  match the expected output token-wise (the CodeContests rule, `outputs_match`).
- kind `call`: the program (a module) serves calls; the host calls `fn_name` with the test's
  arguments and compares the return value (APPS call-based problems).
- kind `humaneval`: the program is `prompt + completion`; HumanEval's `check(candidate)` runs on
  the host with `candidate` a proxy (`Candidate`) whose calls cross to the program as data.
The checker never shares a process with the candidate; values come back as plain data rebuilt
from exact built-in types, anything else is a wrong answer (see docs/sandbox.md).
Limits: `timeout_s` per test (CPU; the wall clock gets 2x + 1 s), `memory_bytes`.

Verdicts: `correct` when every test passes; `timeout` or `incorrect` from the first failing test
(wrong answer, runtime error, memory, output limit, no code found, broke its sandbox); a sandbox
that fails a known-good probe stops the job (`SandboxInfrastructureError`) instead of giving
`error` verdicts. The detail names the first failing test and why.
"""

from __future__ import annotations

import ast
import atexit
import builtins
import decimal
import functools
import hashlib
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from monkeyflow.hashing import content_hash
from monkeyflow.io import encode_text
from monkeyflow.records import Problem
from monkeyflow.verify.base import Check, InfrastructureFailure, Verifier
from monkeyflow.verify.sandbox import (
    Limits,
    ProgramEnded,
    ReplyError,
    RunResult,
    SandboxError,
    SandboxPool,
    Session,
    default_workers,
)

JUDGE_VERSION = "code-judge-2"  # bump when a verdict for the same program and tests may change
DEFAULT_MEMORY_BYTES = 1 << 30  # Python needs more than the C++ limits CodeContests states
CODE_KINDS = ("stdio", "call", "humaneval")

# -- extraction ------------------------------------------------------------------------------
# Linear in the completion: the info string after an opening fence is one `[^\n`]*` (two
# adjacent starred classes backtracked quadratically on a long unterminated fence line).
_FENCE_OPEN = re.compile(r"^[ \t]*```[^\n`]*\n", re.M)
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$", re.M)
RAW_COMPILE_BYTES = 64 << 10  # a longer unfenced completion is sent to the sandbox unchecked


def extract_code(completion: str, prefix: str = "") -> tuple[str | None, str | None]:
    """(code, method) from a completion: the first fenced code block (`fenced`; `fenced_open`
    when the closing fence is missing), else the whole text if `prefix + text` compiles
    (`raw`), else (None, None).

    Host work is bounded: the fence search is linear, and an unfenced completion longer than
    `RAW_COMPILE_BYTES` is not compiled here (its `compile` could take seconds and gigabytes
    on the trusted side) but returned as `raw`, for the sandbox to run (and reject) it."""
    opening = _FENCE_OPEN.search(completion)
    if opening:
        closing = _FENCE_CLOSE.search(completion, opening.end())
        if closing:
            return completion[opening.end() : closing.start()], "fenced"
        inline = completion.find("```", opening.end())
        if inline >= 0:  # a closing fence right after code on the same line
            return completion[opening.end() : inline], "fenced"
        return completion[opening.end() :], "fenced_open"
    if completion.strip():
        if len(prefix) + len(completion) > RAW_COMPILE_BYTES:
            return completion, "raw"
        try:
            compile(prefix + completion, "<completion>", "exec", dont_inherit=True)
        except Exception:  # SyntaxError, ValueError (NUL), RecursionError, MemoryError, ...
            return None, None
        return completion, "raw"
    return None, None


# -- output comparison -----------------------------------------------------------------------
_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:e[+-]?\d+)?")  # lowercased tokens
_EXACT = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[], flags=[])


def _number(token: str) -> int | decimal.Decimal | None:
    """An integer token as int; a token written as a decimal (a point or an exponent) as an
    exact Decimal; anything else (nan, inf, 1_000, 0x10) None."""
    if _INT.fullmatch(token):
        return int(token)
    if _DECIMAL.fullmatch(token):
        return decimal.Decimal(token)
    return None


def outputs_match(got: str, expected: str, tolerance: float = 1e-5) -> bool:
    """The CodeContests rule, exactly: split on whitespace, lowercase, same token count; then
    per token: the same string, or two integers equal as integers (any size, never through a
    float), or, when either token is written as a decimal (a point or an exponent), both
    numbers within `tolerance` of each other, computed in exact decimal arithmetic (so
    9007199254740993 and 9007199254740992.0 differ by 1)."""
    a, b = got.lower().split(), expected.lower().split()
    if len(a) != len(b):
        return False
    limit = decimal.Decimal(repr(tolerance))
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        vx, vy = _number(x), _number(y)
        if vx is None or vy is None:
            return False
        if isinstance(vx, int) and isinstance(vy, int):
            if vx != vy:
                return False
            continue
        difference = _EXACT.subtract(decimal.Decimal(vx), decimal.Decimal(vy))
        if _EXACT.compare(_EXACT.abs(difference), limit) != -1:
            return False
    return True


# Special judges: problems with several correct outputs name one in `metadata.output_judge`
# (options in `metadata.output_judge_options`). A judge is trusted host code: it gets the
# program's stdout, the test's expected output and input (plain strings) and the options, and
# returns whether the answer is right.
OUTPUT_JUDGES: dict[str, Any] = {}


def output_judge(name: str):
    """Register a special judge: `@output_judge("name") def judge(got, expected, input, **options)`."""

    def register(fn):
        OUTPUT_JUDGES[name] = fn
        return fn

    return register


@output_judge("tokens")
def _tokens_judge(got: str, expected: str, test_input: str, tolerance: float = 1e-5) -> bool:
    return outputs_match(got, expected, tolerance)


@output_judge("exact")
def _exact_judge(got: str, expected: str, test_input: str) -> bool:
    """Byte-exact output except trailing whitespace at the end of each line and of the text."""
    lines = lambda text: [line.rstrip() for line in text.rstrip().splitlines()]  # noqa: E731
    return lines(got) == lines(expected)


@output_judge("unordered_lines")
def _unordered_lines_judge(got: str, expected: str, test_input: str) -> bool:
    """The same lines (each compared token-wise) in any order."""
    norm = lambda text: sorted(" ".join(line.lower().split()) for line in text.strip().splitlines())  # noqa: E731
    return norm(got) == norm(expected)


def _judge_output(meta: dict, got: str, expected: str, test_input: str) -> bool:
    name = meta.get("output_judge") or "tokens"
    judge = OUTPUT_JUDGES.get(name)
    if judge is None:
        raise ValueError(
            f"metadata.output_judge: unknown special judge {name!r} (known: {', '.join(sorted(OUTPUT_JUDGES))})"
        )
    return bool(judge(got, expected, test_input, **(meta.get("output_judge_options") or {})))


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


# -- call-based checks: the checker runs here, the candidate in the sandbox ------------------
class _CallFailed(BaseException):
    """A call could not be answered with a plain value: the program ended, or replied with
    something that is not data. A BaseException, so a checker's `except Exception` cannot
    swallow it; the harness also records it, so the verdict is a failure either way."""


class Candidate:
    """Stands in for the program's function `name` in the trusted checker (HumanEval's
    `check(candidate)`, the APPS call loop). Calling it sends the arguments to the sandboxed
    program as data; the answer comes back as plain data rebuilt from exact built-in types
    (None, bool, int, float, str, list, tuple, dict). An exception the program raised is raised
    here as the built-in exception of the same name (RuntimeError for others)."""

    def __init__(self, session: Session, name: str) -> None:
        self._session, self.__name__ = session, name
        self.failure: tuple[str, str] | None = None  # set on the first call that failed

    def __call__(self, *args, **kwargs):
        if self.failure is not None:
            raise _CallFailed(self.failure[1])
        try:
            reply = self._session.call(self.__name__, args, kwargs)
        except (TypeError, ValueError) as exc:  # the checker passed something not plain data
            raise RuntimeError(f"the checker's arguments cannot be sent: {exc}") from None
        except ProgramEnded:
            self.failure = ("ended", "the program ended before answering a call")
            raise _CallFailed(self.failure[1]) from None
        except ReplyError as exc:
            self.failure = ("incorrect", f"wrong answer: {exc}")
            raise _CallFailed(self.failure[1]) from None
        if "value" in reply:
            return reply["value"]
        if "missing" in reply:
            self.failure = ("incorrect", f"the program does not define {self.__name__}()")
            raise _CallFailed(self.failure[1])
        if "unsupported" in reply:
            self.failure = (
                "incorrect",
                f"wrong answer: the return value is not plain data ({reply['unsupported']}); "
                "only None, bool, int, float, str, list, tuple and dict are compared",
            )
            raise _CallFailed(self.failure[1])
        kind = getattr(builtins, reply["raised"], None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            kind = RuntimeError
        try:
            exc = kind(reply["message"])
        except Exception:
            exc = RuntimeError(reply["message"])
        exc.monkeyflow_raised = f"{reply['raised']}: {reply['message']}"
        raise exc


def _same(a, b) -> bool:
    """APPS's comparison of a return value, on plain values: equal, or lists element-wise, or
    two numbers (not bools) within 1e-5."""
    if a == b:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    number = (int, float)
    if type(a) in number and type(b) in number:
        return abs(a - b) < 1e-5
    return False


def _norm(x):
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    return x


def _apps_arguments(raw: str) -> list[list]:
    """APPS stores the arguments one per line, each written with str(): read them as Python
    literals, and also as plain strings when that differs (a test passes if either reading
    gives the answer)."""
    lines = raw.split("\n")
    parsed = []
    for line in lines:
        try:
            parsed.append(ast.literal_eval(line))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed.append(line)
    candidates = [parsed] if parsed == lines else [parsed, lines]
    if raw == "":
        candidates.append([])
    return candidates


def _apps_check(candidate: Candidate, raw: str, expected) -> tuple[str, str] | None:
    answers, errors = [], []
    for args in _apps_arguments(raw):
        try:
            got = candidate(*args)
        except Exception as exc:
            errors.append(exc)
            continue
        if _same(_norm(got), _norm(expected)):
            return None
        answers.append(got)
    if not answers:
        exc = errors[0]
        why = getattr(exc, "monkeyflow_raised", None) or f"{type(exc).__name__}: {exc}"
        return "incorrect", f"runtime error: {why}"[:300]
    return (
        "incorrect",
        f"wrong answer: expected {_short(repr(expected))}, got {_short(repr(answers[0]))}",
    )


@functools.lru_cache(maxsize=512)
def _humaneval_checker(prompt: str, test: str, entry_point: str):
    """Compiled (prompt, test) of a HumanEval problem: trusted code, run on the host."""
    return (
        compile(prompt, "<prompt>", "exec"),
        compile(test, "<test>", "exec"),
        test.splitlines(),
    )


class _CheckerTimeout(BaseException):
    """The trusted checker's own code ran past its deadline (on values the program returned)."""


def _deadline_tracer(deadline: float):
    """A trace function that stops the checker's Python code (the test and the prompt's helpers)
    at `deadline`: trusted code, but driven by untrusted values (`range(candidate(x))`)."""
    clock = time.monotonic

    def local(frame, event, arg):
        if event == "line" and clock() > deadline:
            raise _CheckerTimeout
        return local

    def tracer(frame, event, arg):
        if frame.f_code.co_filename in ("<test>", "<prompt>"):
            return local
        return None

    return tracer


def _humaneval_check(
    candidate: Candidate, meta: dict, deadline: float | None = None
) -> tuple[str, str] | None:
    """HumanEval's `check(candidate)` with its asserts and semantics, in a fresh namespace on
    the trusted side: the prompt's own definitions (helpers such as `poly`, trusted), the entry
    point's name and `candidate` both meaning the program's function. Its Python code stops at
    `deadline` (monotonic clock)."""
    prompt_code, test_code, lines = _humaneval_checker(
        meta["prompt"], meta["test"], meta["entry_point"]
    )
    namespace: dict[str, Any] = {"__name__": "__check__", "__builtins__": builtins}
    exec(prompt_code, namespace)
    namespace[meta["entry_point"]] = candidate
    exec(test_code, namespace)
    if deadline is not None:
        sys.settrace(_deadline_tracer(deadline))  # this thread only
    try:
        namespace["check"](candidate)
    except _CheckerTimeout:
        return "timeout", "timeout (the check ran past the wall limit on the returned values)"
    except AssertionError:
        line = _checker_line(sys.exc_info()[2], lines)
        return (
            "incorrect",
            f"wrong answer: failed {line}" if line else "wrong answer: an assertion failed",
        )
    except Exception as exc:
        why = getattr(exc, "monkeyflow_raised", None)
        if why:
            return "incorrect", f"runtime error: {why}"[:300]
        return "incorrect", f"wrong answer: the check raised {type(exc).__name__}: {exc}"[:300]
    finally:
        if deadline is not None:
            sys.settrace(None)
    return None


def _checker_line(tb, lines: list[str]) -> str | None:
    last = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<test>":
            last = tb.tb_lineno
        tb = tb.tb_next
    if last is None or not 0 < last <= len(lines):
        return None
    return _short(lines[last - 1].strip(), 120)


def _humaneval_program(meta: dict, code: str, method: str | None) -> str:
    # A raw completion continues the prompt's function; a fenced block is a whole function
    # (it redefines the prompt's stub) or just its body, both valid after the prompt. Only the
    # candidate's code goes into the sandbox: the tests stay on the trusted side.
    joiner = "" if method == "raw" else "\n"
    return f"{meta['prompt']}{joiner}{code}\n"


class SandboxInfrastructureError(InfrastructureFailure):
    """Fresh sandboxes fail a known-good probe program: the code verifier cannot judge."""


@dataclass(frozen=True)
class _Job:
    problem: Problem
    code: str
    method: str | None


def _test_label(test: dict, index: int, total: int) -> str:
    group = test.get("group")
    return f"{group + ' ' if group and group != 'test' else ''}test {index + 1}/{total}"


def _failure(run: RunResult, limits: Limits, check_exit_code: bool) -> tuple[str, str] | None:
    """(status, why) if the run failed for a reason other than its answer."""
    if run.cpu_exceeded:
        return "timeout", f"timeout (CPU limit {limits.cpu_s:g} s)"
    if run.timed_out:
        return "timeout", f"timeout (wall limit {limits.wall_s:g} s)"
    if run.output_exceeded:
        return "incorrect", f"output limit exceeded (over {limits.output_bytes} bytes)"
    err = run.stderr.decode("utf-8", "replace")
    if "MemoryError" in err or "Cannot allocate memory" in err or "bad_alloc" in err:
        return "incorrect", f"memory limit exceeded ({limits.memory_bytes >> 20} MiB)"
    if run.signal is not None:
        try:
            name = signal.Signals(run.signal).name
        except ValueError:
            name = str(run.signal)
        return "incorrect", f"runtime error: killed by {name}"
    if check_exit_code and run.exit_code != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no message"
        return "incorrect", f"runtime error: exit code {run.exit_code}: {last[:200]}"
    return None


class CodeJudge:
    """Verifies code samples in a pool of sandboxes, with a verdict cache.

    `cache`: any dict-like mapping key -> {"status", "detail"}; the caller may persist it (e.g.
    load it from and save it to a file). Keys hash the judge version, the tests and limits and
    the extracted program, so the same program for the same tests is never run twice. `error`
    verdicts are not cached. `stop_at_first_failure`: stop a sample at its first failing test.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        backend: str = "auto",
        cache: MutableMapping[str, dict] | None = None,
        stop_at_first_failure: bool = True,
        check_exit_code: bool = True,
        retries: int = 1,
        max_completion_bytes: int | None = 1_000_000,
    ) -> None:
        self.workers = workers or default_workers()
        self.pool = SandboxPool(self.workers, backend=backend)
        self.cache: MutableMapping[str, dict] = {} if cache is None else cache
        self.stop_at_first_failure = stop_at_first_failure
        self.check_exit_code = check_exit_code
        self.retries = retries
        self.max_completion_bytes = max_completion_bytes
        self.runs = 0  # program runs done (tests), for throughput accounting
        self.broken_sandboxes = 0  # samples judged incorrect for breaking their sandbox

    # -- public API ------------------------------------------------------------------------
    def verify(self, problem: Problem, completion: str) -> Check:
        """The verdict for one completion."""
        return self.verify_many([(problem, completion)])[0]

    def verify_many(self, pairs: Iterable[tuple[Problem, str]]) -> list[Check]:
        """Verdicts for many (problem, completion) pairs, in order, run on all workers."""
        pairs = list(pairs)
        tests_keys: dict[int, str] = {}
        slots: list[tuple[str | None, str | None, str | None]] = []  # (key, code, method)
        jobs: dict[str, _Job] = {}
        from monkeyflow.stages import oversized_check

        too_big: dict[int, Check] = {}
        for problem, completion in pairs:
            meta = problem.metadata
            kind = meta.get("kind")
            if kind not in CODE_KINDS:
                raise ValueError(
                    f"problem {problem.problem_id}: metadata.kind must be one of {CODE_KINDS}, got {kind!r}"
                )
            if (meta.get("output_judge") or "tokens") not in OUTPUT_JUDGES:
                raise ValueError(
                    f"problem {problem.problem_id}: metadata.output_judge must be one of "
                    f"{sorted(OUTPUT_JUDGES)}, got {meta.get('output_judge')!r}"
                )
            big = (
                oversized_check(completion, self.max_completion_bytes)
                if self.max_completion_bytes
                else None
            )
            if big is not None:
                too_big[len(slots)] = big
                slots.append((None, None, None))
                continue
            prefix = meta.get("prompt", "") if kind == "humaneval" else ""
            code, method = extract_code(completion, prefix)
            if code is None:
                slots.append((None, None, None))
                continue
            if id(problem) not in tests_keys:
                tests_keys[id(problem)] = content_hash(
                    {k: v for k, v in meta.items() if k in _TEST_FIELDS}
                )
            key = content_hash(
                [JUDGE_VERSION, tests_keys[id(problem)], hashlib.sha256(encode_text(code)).hexdigest(),
                 method == "raw" and kind == "humaneval",
                 self.stop_at_first_failure, self.check_exit_code]
            )  # fmt: skip
            slots.append((key, code, method))
            if key not in self.cache and key not in jobs:
                jobs[key] = _Job(problem, code, method)
        keys = list(jobs)
        verdicts = dict(
            zip(keys, self.pool.map(lambda sb, key: self._judge(sb, jobs[key]), keys), strict=True)
        )
        for key, verdict in verdicts.items():
            if verdict["status"] != "error":
                self.cache[key] = verdict
        out = []
        for index, (key, code, method) in enumerate(slots):
            if index in too_big:
                out.append(too_big[index])
                continue
            if key is None:
                out.append(Check("incorrect", None, None, "no code found in the completion"))
                continue
            verdict = verdicts.get(key) or self.cache[key]
            out.append(Check(verdict["status"], code, method, verdict["detail"]))
        return out

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> CodeJudge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one program -----------------------------------------------------------------------
    def _judge(self, sandbox, job: _Job) -> dict[str, str]:
        """The verdict for one program. A run that breaks its sandbox (the zygote killed or
        wedged, a clean-up that fails, the watchdog) makes the sandbox be replaced and a
        known-good probe program run in the fresh one. Probe passes: the program is run once
        more (a one-off fault of the machine must not cost a correct sample its verdict), and if
        it breaks the sandbox again it is `incorrect`, with the reason. Probe fails: the sandbox
        is tried again, and after `retries` failed probes `SandboxInfrastructureError` stops the
        whole job (no `error` verdicts that would leave the sample out of n)."""
        broke = probe_failures = 0
        while True:
            try:
                return self._run_tests(sandbox, job)
            except SandboxError as exc:
                failure = str(exc)[:300]
            probe = self._probe(sandbox)
            if probe is None:
                broke += 1
                if broke >= 2:
                    self.broken_sandboxes += 1
                    return {
                        "status": "incorrect",
                        "detail": f"the program broke its sandbox twice ({failure}); a known-good "
                        "probe program passes in a fresh one",
                    }
                continue
            probe_failures += 1
            if probe_failures > self.retries:
                raise SandboxInfrastructureError(
                    f"the code sandbox fails a known-good probe program after {probe_failures} "
                    f"tries: {failure}; the probe: {probe}"
                )

    @staticmethod
    def _probe(sandbox) -> str | None:
        """None if a known-good program runs correctly in (a fresh) `sandbox`, else why not."""
        try:
            run = sandbox.run_python(
                "import sys\nprint(sum(map(int, sys.stdin.read().split())))",
                "20 22\n",
                Limits(cpu_s=10, wall_s=20),
            )
        except SandboxError as exc:
            return str(exc)[:300]
        if run.ok and run.stdout == b"42\n":
            return None
        return f"exit code {run.exit_code}, signal {run.signal}, stdout {run.stdout[:80]!r}"

    def _run_tests(self, sandbox, job: _Job) -> dict[str, str]:
        meta = job.problem.metadata
        timeout = float(meta.get("timeout_s", 10.0))
        limits = Limits(
            cpu_s=timeout,
            wall_s=2 * timeout + 1,
            memory_bytes=max(int(meta.get("memory_bytes") or 0), DEFAULT_MEMORY_BYTES),
        )
        kind = meta["kind"]
        tests = [{"group": "test"}] if kind == "humaneval" else list(meta.get("tests") or [])
        if not tests:
            return {"status": "error", "detail": f"problem {job.problem.problem_id} has no tests"}
        first: tuple[str, str] | None = None
        passed = 0
        for index, test in enumerate(tests):
            outcome = self._run_test(sandbox, job, kind, meta, test, limits)
            self.runs += 1
            if outcome is None:
                passed += 1
                continue
            if first is None:
                label = "tests" if kind == "humaneval" else _test_label(test, index, len(tests))
                first = (outcome[0], f"{label}: {outcome[1]}")
            if self.stop_at_first_failure:
                break
        if first is None:
            return {"status": "correct", "detail": f"passed {passed}/{len(tests)} tests"}
        detail = (
            first[1]
            if self.stop_at_first_failure
            else f"passed {passed}/{len(tests)}; first failure {first[1]}"
        )
        return {"status": first[0], "detail": detail}

    def _run_test(self, sandbox, job: _Job, kind: str, meta: dict, test: dict, limits: Limits):
        """None if the test passed, else (status, why)."""
        if kind == "stdio":
            run = sandbox.run_python(job.code, str(test["input"]), limits)
            failure = _failure(run, limits, self.check_exit_code)
            if failure:
                return failure
            got = run.stdout.decode("utf-8", "replace")
            expected = _expected_stdout(test["output"])
            if _judge_output(meta, got, expected, str(test["input"])):
                return None
            return "incorrect", f"wrong answer: expected {_short(expected)}, got {_short(got)}"
        if kind == "call":
            program, module = job.code, "solution"
        else:
            program, module = _humaneval_program(meta, job.code, job.method), "solution"
        session = sandbox.open_session(program, limits, module=module)
        candidate = Candidate(session, meta["fn_name"] if kind == "call" else meta["entry_point"])
        try:
            if kind == "call":
                verdict = _apps_check(
                    candidate, str(test["input"]), _expected_return(test["output"])
                )
            else:
                verdict = _humaneval_check(candidate, meta, time.monotonic() + limits.wall_s)
        except _CallFailed:
            verdict = None  # candidate.failure says why
        finally:
            run = session.finish()
        if candidate.failure is not None:  # recorded even if the checker swallowed it
            if candidate.failure[0] != "ended":
                return candidate.failure
            failure = _failure(run, limits, True)
            if failure:
                return failure
            return (
                "incorrect",
                f"the program exited before answering a call (exit code {run.exit_code})",
            )
        return verdict


_TEST_FIELDS = (
    "output_judge",
    "output_judge_options",
    "kind",
    "tests",
    "fn_name",
    "prompt",
    "test",
    "entry_point",
    "timeout_s",
    "memory_bytes",
)


def _expected_stdout(output: Any) -> str:
    if isinstance(output, list):
        return "\n".join(str(x) for x in output)
    return str(output)


def _expected_return(output: Any) -> Any:
    # APPS wraps each call-based answer in a one-element list.
    return output[0] if isinstance(output, list) and len(output) == 1 else output


# -- module-level API and registration --------------------------------------------------------
_default: CodeJudge | None = None
_default_lock = threading.Lock()


def default_judge() -> CodeJudge:
    """A process-wide judge (one sandbox per core, in-memory cache), made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CodeJudge()
        return _default


@atexit.register
def _close_default_judge() -> None:
    """Stop the process-wide judge's sandboxes at exit (not left to garbage collection, which
    may reap their processes' handles first)."""
    global _default
    with _default_lock:
        judge, _default = _default, None
    if judge is not None:
        judge.close()


def verify_code(problem: Problem, completion: str) -> Check:
    """Verifier for code problems (humaneval, apps, codecontests): see the module docstring."""
    return default_judge().verify(problem, completion)


def verify_many(pairs: Iterable[tuple[Problem, str]], **options) -> list[Check]:
    """Verdicts for many (problem, completion) pairs; `options` as for `CodeJudge`."""
    if not options:
        return default_judge().verify_many(pairs)
    with CodeJudge(**options) as judge:
        return judge.verify_many(pairs)


class CodeVerifier(Verifier):
    """Programs run on the problem's tests in the sandbox (humaneval, apps, codecontests)."""

    version = JUDGE_VERSION
    container = "sandbox"
    options_schema = {
        "workers": {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "x-runtime": True,
            "description": "sandboxes run in parallel (null = the job's usable cores)",
        },
        "sandbox": {
            "type": "string",
            "enum": ["auto", "bwrap", "nsjail", "none"],
            "default": "auto",
            "x-runtime": True,
            "description": "isolation backend (auto = env MONKEYFLOW_SANDBOX, else bwrap, else nsjail)",
        },
        "stop_at_first_failure": {
            "type": "boolean",
            "default": True,
            "description": "stop running a program's tests at its first failing one",
        },
        "check_exit_code": {
            "type": "boolean",
            "default": True,
            "description": "a program that exits non-zero fails its test (even with the right output)",
        },
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._judge: CodeJudge | None = None

    def _get_judge(self) -> CodeJudge:
        if self._judge is None:
            o = self.options
            self._judge = CodeJudge(
                workers=o["workers"],
                backend=o["sandbox"],
                stop_at_first_failure=o["stop_at_first_failure"],
                check_exit_code=o["check_exit_code"],
                max_completion_bytes=o["max_completion_bytes"],
            )
        return self._judge

    def check(self, problem: Problem, completion: str) -> Check:
        return self.check_many([(problem, completion)])[0]

    def check_many(self, pairs) -> list[Check]:
        return self._get_judge().verify_many(pairs)

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
            self._judge = None
