"""Code benchmarks: HumanEval (Chen et al., 2021), APPS (Hendrycks et al., 2021; the MapCoder
selection of 150) and CodeContests (Li et al., 2022; the paper's 140 test problems).

Each problem's `metadata` holds what `monkeyflow.verify.code` runs: `kind` (stdio | call |
humaneval), `tests` (list of {input, output, group}), `fn_name` (call), `prompt`/`test`/
`entry_point` (humaneval), `timeout_s` (CPU seconds per test) and, for CodeContests, the
problem's own `time_limit_s` and `memory_bytes`.

Prompts: a short instruction, then few-shot Q/A pairs whose answers are ```python blocks, then
the problem (`prompt`); the same as chat messages (`chat`). The exemplars are written here (not
taken from any test split), so no benchmark problem leaks into another's prompt.
"""

from __future__ import annotations

import re
from typing import Any

from monkeyflow.data.base import Dataset, DatasetError, fewshot_chat, require_str
from monkeyflow.records import Problem, RecordError

CODE_STOP = ("Q:", "Question:")  # the paper's stop strings for CodeContests

STDIO_INSTRUCTION = (
    "Write a Python 3 program that solves the programming problem. It reads the input from "
    "standard input and writes the answer to standard output. Put the whole program in one "
    "```python code block."
)
CALL_INSTRUCTION = (
    "Write Python 3 code that solves the programming problem by defining the function of the "
    "starter code; the function is called with the arguments and must return the answer. Put "
    "the code in one ```python code block."
)
HUMANEVAL_INSTRUCTION = (
    "Complete the Python function. Write the whole function, with its signature and the imports "
    "it needs, in one ```python code block."
)

STDIO_SHOTS: list[tuple[str, str]] = [
    (
        "Two integers a and b are given. Print their sum.\n\nInput\n\nThe only line contains two "
        "integers a and b (-10^9 ≤ a, b ≤ 10^9).\n\nOutput\n\nPrint one integer: a + b.\n\n"
        "Example\n\nInput\n\n3 4\n\nOutput\n\n7",
        "a, b = map(int, input().split())\nprint(a + b)",
    ),
    (
        "You are given t words. For each word, print it reversed if its length is even, and "
        "unchanged otherwise.\n\nInput\n\nThe first line contains t (1 ≤ t ≤ 100). Each of the "
        "next t lines contains a word of at most 100 lowercase letters.\n\nOutput\n\nPrint t "
        "lines: the answers in order.\n\nExample\n\nInput\n\n2\nab\nabc\n\nOutput\n\nba\nabc",
        "import sys\n\n\ndef main():\n    data = sys.stdin.read().split()\n    t = int(data[0])\n"
        "    answers = [w[::-1] if len(w) % 2 == 0 else w for w in data[1 : 1 + t]]\n"
        '    print("\\n".join(answers))\n\n\nmain()',
    ),
]
CALL_SHOTS: list[tuple[str, str, str]] = [  # (description, starter code, solution)
    (
        "Given a list of integers, return the sum of its even elements.\n\nExamples:\n"
        "sum_even([1, 2, 3, 4]) # returns 6\nsum_even([]) # returns 0",
        "def sum_even(numbers):",
        "def sum_even(numbers):\n    return sum(n for n in numbers if n % 2 == 0)",
    ),
    (
        "Return True if the string reads the same backwards, ignoring case, and False "
        "otherwise.\n\nExamples:\nis_palindrome('Abba') # returns True\n"
        "is_palindrome('abc') # returns False",
        "def is_palindrome(s):",
        "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]",
    ),
]
HUMANEVAL_SHOTS: list[tuple[str, str]] = [  # (prompt, whole function)
    (
        'from typing import List\n\n\ndef running_max(numbers: List[int]) -> List[int]:\n    """Return'
        " the running maximum of the list.\n    >>> running_max([1, 3, 2, 5])\n    [1, 3, 3, 5]\n"
        '    """\n',
        "from typing import List\n\n\ndef running_max(numbers: List[int]) -> List[int]:\n"
        "    result = []\n    for n in numbers:\n        result.append(n if not result else max(result[-1], n))\n"
        "    return result",
    ),
    (
        'def count_vowels(s: str) -> int:\n    """Count the vowels (a, e, i, o, u, either case) in s.\n'
        '    >>> count_vowels("Hello")\n    2\n    """\n',
        'def count_vowels(s: str) -> int:\n    return sum(1 for c in s.lower() if c in "aeiou")',
    ),
]


def fenced(code: str) -> str:
    """`code` as a ```python block (the answer format of every code prompt)."""
    return f"```python\n{code.rstrip()}\n```"


def qa_prompt(instruction: str, shots: list[tuple[str, str]], question: str) -> str:
    """Plain few-shot text: instruction, `Q: ... A: ...` pairs, then the question and `A:`."""
    body = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in shots)
    return f"{instruction}\n\n{body}Q: {question}\nA:"


class CodeDataset(Dataset):
    """Shared prompt building for the code benchmarks."""

    stop = CODE_STOP
    default_fewshot = 2
    instruction = STDIO_INSTRUCTION

    def _take(self, shots: list) -> list:
        if self.num_fewshot > len(shots):
            raise DatasetError(
                f"datasets.{self.name}.num_fewshot: at most {len(shots)} exemplars exist, got {self.num_fewshot}"
            )
        return shots[: self.num_fewshot]

    def _make(
        self, problem_id: str, instruction: str, shots, question: str, reference: str, meta
    ) -> Problem:
        return Problem(
            problem_id=problem_id,
            dataset=self.name,
            prompt=qa_prompt(instruction, shots, question),
            reference=reference,
            chat=fewshot_chat(instruction, shots, question),
            metadata=meta,
        )

    def stdio_shots(self) -> list[tuple[str, str]]:
        return [(q, fenced(a)) for q, a in self._take(STDIO_SHOTS)]

    def call_shots(self) -> list[tuple[str, str]]:
        return [(call_question(d, s), fenced(a)) for d, s, a in self._take(CALL_SHOTS)]


def call_question(description: str, starter_code: str) -> str:
    return f"{description.strip()}\n\nStarter code:\n{fenced(starter_code.strip())}"


# -- HumanEval -----------------------------------------------------------------------------
class HumanEval(CodeDataset):
    name = "humaneval"
    verifier = "code"
    bundled_file = "humaneval/HumanEval.jsonl.gz"
    hub_defaults = {"path": "openai/openai_humaneval", "split": "test"}
    prompt_version = "humaneval-qa-1"
    timeout_s = 5.0

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        prompt = require_str(row, "prompt")
        test = require_str(row, "test")
        entry_point = require_str(row, "entry_point")
        task_id = require_str(row, "task_id")
        shots = [(fenced(p), fenced(a)) for p, a in self._take(HUMANEVAL_SHOTS)]
        meta = {
            "kind": "humaneval",
            "task_id": task_id,
            "prompt": prompt,
            "test": test,
            "entry_point": entry_point,
            "timeout_s": self.timeout_s,
        }
        number = task_id.rsplit("/", 1)[-1]
        problem_id = (
            f"humaneval-{int(number):03d}" if number.isdigit() else f"humaneval-{index:03d}"
        )
        question = fenced(prompt)
        return self._make(
            problem_id,
            HUMANEVAL_INSTRUCTION,
            shots,
            question,
            row.get("canonical_solution") or "",
            meta,
        )


# -- APPS ----------------------------------------------------------------------------------
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.M)


class APPS(CodeDataset):
    name = "apps"
    verifier = "code"
    bundled_file = "apps/selected150.jsonl"
    hub_defaults = {}  # the 150-problem selection exists only as the bundled file
    # apps-qa-2: the selection is de-duplicated (the file repeats 22 of its 150 rows: 128
    # distinct problems), which changes the problem set, so runs get new keys.
    prompt_version = "apps-qa-2"
    timeout_s = 4.0  # APPS's own per-test timeout

    def load_rows(self) -> list[dict[str, Any]]:
        if self.spec.source == "hub":
            raise DatasetError(
                "datasets.apps.source: the APPS selection (MapCoder's selected150) is bundled; use "
                "source: bundled"
            )
        return distinct_rows(super().load_rows())

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        description = require_str(row, "description")
        tests = row.get("test_list")
        if not isinstance(tests, list) or not tests:
            raise RecordError("field 'test_list' must be a non-empty list")
        for t in tests:
            if not isinstance(t, dict) or "input" not in t or "output" not in t:
                raise RecordError("each entry of 'test_list' needs 'input' and 'output'")
        starter = row.get("starter_code") or ""
        meta: dict[str, Any] = {
            "apps_id": row.get("id"),
            "difficulty": row.get("difficulty"),
            "timeout_s": self.timeout_s,
            "tests": [{"input": t["input"], "output": t["output"], "group": "test"} for t in tests],
        }
        if starter.strip():
            match = _DEF.search(starter)
            if not match:
                raise RecordError("field 'starter_code' has no function definition")
            meta.update(kind="call", fn_name=match.group(1), starter_code=starter)
            instruction, shots, question = (
                CALL_INSTRUCTION,
                self.call_shots(),
                call_question(description, starter),
            )
        else:
            meta["kind"] = "stdio"
            instruction, shots, question = (
                STDIO_INSTRUCTION,
                self.stdio_shots(),
                description.strip(),
            )
        return self._make(f"apps-{row.get('id', index)}", instruction, shots, question, "", meta)


def distinct_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without repeats of a problem (same APPS id, or the same row), first kept, in order."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        key = ("id", row["id"]) if row.get("id") is not None else ("row", repr(sorted(row.items())))
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


# -- CodeContests --------------------------------------------------------------------------
PYTHON3 = 3  # the `language` code of Python 3 solutions in deepmind/code_contests


def has_image(description: str) -> bool:
    """Whether a CodeContests statement relies on an image (the paper drops those problems)."""
    return "<image>" in description or "[Image]" in description


def _time_limit_s(value: Any) -> float | None:
    if isinstance(value, dict):
        seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        return seconds or None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    return None


class CodeContests(CodeDataset):
    name = "codecontests"
    verifier = "code"
    hub_defaults = {"path": "deepmind/code_contests", "split": "test"}
    prompt_version = "codecontests-qa-1"
    extra_timeout_s = 10.0  # the paper's timeout: the problem's time limit + 10 s
    default_time_limit_s = 2.0

    def load_rows(self) -> list[dict[str, Any]]:
        if self.spec.source != "hub":
            raise DatasetError(
                "datasets.codecontests.source: CodeContests has no bundled copy (its hidden tests are "
                "too large); set source: hub (hub.path defaults to deepmind/code_contests, or a local "
                "folder of its files)"
            )
        rows = super().load_rows()
        return [r for r in rows if not has_image(str(r.get("description", "")))]

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        description = require_str(row, "description")
        tests = []
        for group in ("public", "private", "generated"):
            block = row.get(f"{group}_tests") or {}
            inputs, outputs = block.get("input") or [], block.get("output") or []
            if len(inputs) != len(outputs):
                raise RecordError(
                    f"field '{group}_tests' has {len(inputs)} inputs but {len(outputs)} outputs"
                )
            tests += [
                {"input": i, "output": o, "group": group}
                for i, o in zip(inputs, outputs, strict=True)
            ]
        if not tests:
            raise RecordError("the problem has no public, private or generated tests")
        time_limit = _time_limit_s(row.get("time_limit")) or self.default_time_limit_s
        solutions = row.get("solutions") or {}
        reference = next(
            (
                s
                for lang, s in zip(
                    solutions.get("language") or [], solutions.get("solution") or [], strict=False
                )
                if lang == PYTHON3
            ),
            "",
        )
        meta = {
            "kind": "stdio",
            "name": row.get("name"),
            "time_limit_s": time_limit,
            "timeout_s": time_limit + self.extra_timeout_s,
            "memory_bytes": int(row.get("memory_limit_bytes") or 0),
            "tests": tests,
        }
        return self._make(
            f"codecontests-{index:03d}",
            STDIO_INSTRUCTION,
            self.stdio_shots(),
            description.strip(),
            reference,
            meta,
        )
