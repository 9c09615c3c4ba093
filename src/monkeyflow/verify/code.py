"""Judging code samples: extract the program from a completion, run it on the problem's tests in
the sandbox (`monkeyflow.verify.sandbox`) and compare.

`problem.metadata` (written by `monkeyflow.data.code`) says how:
- kind `stdio`: run the program once per test with the test's input on stdin; its stdout must
  match the expected output token-wise (the CodeContests rule, `outputs_match`).
- kind `call`: define the program, call `fn_name` with the test's arguments and compare the
  return value (APPS call-based problems).
- kind `humaneval`: run `prompt + completion + test + check(entry_point)` once.
Limits: `timeout_s` per test (CPU; the wall clock gets 2x + 1 s), `memory_bytes`.

Verdicts: `correct` when every test passes; `timeout` or `incorrect` from the first failing test
(wrong answer, runtime error, memory, output limit, no code found); `error` only when the
sandbox itself failed twice. The detail names the first failing test and why.
"""

from __future__ import annotations

import atexit
import re
import secrets
import signal
import threading
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from monkeyflow.hashing import content_hash
from monkeyflow.records import Problem
from monkeyflow.verify.base import Check, Verifier
from monkeyflow.verify.sandbox import Limits, RunResult, SandboxError, SandboxPool, default_workers

JUDGE_VERSION = "code-judge-1"  # bump when a verdict for the same program and tests may change
DEFAULT_MEMORY_BYTES = 1 << 30  # Python needs more than the C++ limits CodeContests states
CODE_KINDS = ("stdio", "call", "humaneval")

# -- extraction ------------------------------------------------------------------------------
_FENCE_OPEN = re.compile(r"^[ \t]*```[ \t]*[\w+#.-]*[^\n`]*\n", re.M)
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$", re.M)


def extract_code(completion: str, prefix: str = "") -> tuple[str | None, str | None]:
    """(code, method) from a completion: the first fenced code block (`fenced`; `fenced_open`
    when the closing fence is missing), else the whole text if `prefix + text` compiles
    (`raw`), else (None, None)."""
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
        try:
            compile(prefix + completion, "<completion>", "exec")
        except (SyntaxError, ValueError):
            return None, None
        return completion, "raw"
    return None, None


# -- output comparison -----------------------------------------------------------------------
_INT = re.compile(r"[+-]?\d+")


def _number(token: str) -> int | float | None:
    if _INT.fullmatch(token):
        return int(token)
    if "_" in token:
        return None
    try:
        return float(token)
    except ValueError:
        return None


def outputs_match(got: str, expected: str, tolerance: float = 1e-5) -> bool:
    """The CodeContests rule: split on whitespace, lowercase, same token count; two ints must be
    equal, if either is a float |a - b| < tolerance, anything else must be the same string."""
    a, b = got.lower().split(), expected.lower().split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        vx, vy = _number(x), _number(y)
        if vx is None or vy is None:
            return False
        if isinstance(vx, int) and isinstance(vy, int):
            if vx != vy:
                return False
        elif not abs(vx - vy) < tolerance:
            return False
    return True


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


# -- programs --------------------------------------------------------------------------------
_CALL_HARNESS = """

def _monkeyflow_check():
    import ast as _ast
    import os as _os

    raw = {raw!r}
    expected = {expected!r}

    def norm(x):
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, dict):
            return {{k: norm(v) for k, v in x.items()}}
        return x

    def same(a, b):
        if a == b:
            return True
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        number = (int, float)
        if isinstance(a, number) and isinstance(b, number) and not isinstance(a, bool) and not isinstance(b, bool):
            return abs(a - b) < 1e-5
        return False

    def report(text):
        _os.write(3, ({nonce!r} + " " + text).encode("utf-8", "backslashreplace"))

    # APPS stores the arguments one per line, each written with str(): try them as Python
    # literals, then as plain strings; the test passes if either reading gives the answer.
    lines = raw.split("\\n")
    parsed = []
    for line in lines:
        try:
            parsed.append(_ast.literal_eval(line))
        except Exception:
            parsed.append(line)
    candidates = [parsed] if parsed == lines else [parsed, lines]
    if raw == "":
        candidates.append([])
    fn = globals().get({fn_name!r})
    if not callable(fn):
        report("missing")
        return
    answers, errors = [], []
    for args in candidates:
        try:
            got = fn(*args)
        except Exception as exc:
            errors.append(exc)
            continue
        if same(norm(got), norm(expected)):
            report("ok")
            return
        answers.append(got)
    if not answers:
        raise errors[0]
    report("wrong " + repr(answers[0])[:200])


_monkeyflow_check()
"""


def _humaneval_program(meta: dict, code: str, method: str | None, nonce: str) -> str:
    # A raw completion continues the prompt's function; a fenced block is a whole function
    # (it redefines the prompt's stub) or just its body, both valid after the prompt.
    joiner = "" if method == "raw" else "\n"
    return (
        f"{meta['prompt']}{joiner}{code}\n\n{meta['test']}\n\ncheck({meta['entry_point']})\n"
        f"import os as _monkeyflow_os\n_monkeyflow_os.write(3, {nonce + ' ok'!r}.encode())\n"
    )


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
    ) -> None:
        self.workers = workers or default_workers()
        self.pool = SandboxPool(self.workers, backend=backend)
        self.cache: MutableMapping[str, dict] = {} if cache is None else cache
        self.stop_at_first_failure = stop_at_first_failure
        self.check_exit_code = check_exit_code
        self.retries = retries
        self.runs = 0  # program runs done (tests), for throughput accounting

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
        for problem, completion in pairs:
            meta = problem.metadata
            kind = meta.get("kind")
            if kind not in CODE_KINDS:
                raise ValueError(
                    f"problem {problem.problem_id}: metadata.kind must be one of {CODE_KINDS}, got {kind!r}"
                )
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
                [JUDGE_VERSION, tests_keys[id(problem)], code, method == "raw" and kind == "humaneval",
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
        for key, code, method in slots:
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
        for _attempt in range(self.retries + 1):
            try:
                return self._run_tests(sandbox, job)
            except SandboxError as exc:
                failure = str(exc)
        return {
            "status": "error",
            "detail": f"sandbox failure after {self.retries + 1} tries: {failure}",
        }

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
            if outputs_match(got, expected):
                return None
            return "incorrect", f"wrong answer: expected {_short(expected)}, got {_short(got)}"
        nonce = secrets.token_hex(8)
        if kind == "call":
            program = job.code + _CALL_HARNESS.format(
                raw=str(test["input"]), expected=_expected_return(test["output"]),
                fn_name=meta["fn_name"], nonce=nonce,
            )  # fmt: skip
        else:
            program = _humaneval_program(meta, job.code, job.method, nonce)
        run = sandbox.run_python(program, b"", limits)
        failure = _failure(run, limits, True)  # a checker that raises exits non-zero
        if failure:
            return failure
        report = run.result.decode("utf-8", "replace")
        if not report.startswith(nonce + " "):
            return "incorrect", "the tests did not run to the end (the program exited early)"
        verdict = report[len(nonce) + 1 :]
        if verdict == "ok":
            return None
        if verdict == "missing":
            return "incorrect", f"the program does not define {meta.get('fn_name')}()"
        return (
            "incorrect",
            f"wrong answer: expected {_short(repr(_expected_return(test['output'])))}, got {_short(verdict[6:])}",
        )


_TEST_FIELDS = (
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
