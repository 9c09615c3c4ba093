"""The code datasets: HumanEval and APPS from the bundled files, CodeContests through the hub
path (a small local dataset folder written here)."""

from __future__ import annotations

import json

import pytest

from monkeyflow.data import DATASETS, DatasetError, DatasetSpec, get_dataset
from monkeyflow.data.base import read_bundled
from monkeyflow.data.code import CALL_SHOTS, STDIO_SHOTS, has_image
from monkeyflow.records import Problem
from monkeyflow.verify.sandbox import backend_works


def test_humaneval_problems():
    problems = get_dataset(DatasetSpec("humaneval")).problems()
    assert len(problems) == 164
    first = problems[0]
    assert first.problem_id == "humaneval-000" and first.dataset == "humaneval"
    assert (
        first.metadata["kind"] == "humaneval"
        and first.metadata["entry_point"] == "has_close_elements"
    )
    assert first.reference.startswith("    for idx, elem")  # the canonical solution
    assert first.prompt.endswith(first.metadata["prompt"] + "```\nA:")
    assert first.prompt.count("\nQ: ") == 3 and first.chat[-1]["role"] == "user"
    assert len(first.chat) == 1 + 2 * 2 + 1
    assert DATASETS.get("humaneval").verifier == "code"


def test_apps_problems():
    problems = get_dataset(DatasetSpec("apps")).problems()
    # the bundled selection repeats 22 of its 150 rows: 128 distinct problems, one each
    assert len(problems) == 128 == len({p.problem_id for p in problems})
    assert len(read_bundled("apps/selected150.jsonl")) == 150
    kinds = [p.metadata["kind"] for p in problems]
    assert kinds.count("call") == 79 and kinds.count("stdio") == 49
    call = next(p for p in problems if p.metadata["kind"] == "call")
    assert call.metadata["fn_name"] in call.metadata["starter_code"]
    assert "Starter code:" in call.prompt and "def sum_even" in call.prompt  # call-based exemplars
    stdio = next(p for p in problems if p.metadata["kind"] == "stdio")
    assert "Starter code:" not in stdio.prompt.split("Q: ")[-1] and "a, b = map(int" in stdio.prompt
    assert all(p.metadata["tests"] and p.metadata["timeout_s"] == 4.0 for p in problems)
    with pytest.raises(DatasetError, match="bundled"):
        get_dataset(DatasetSpec("apps", source="hub")).problems()


def test_fewshot_count():
    zero = get_dataset(DatasetSpec("apps", num_fewshot=0)).problems()[0]
    assert zero.prompt.count("Q: ") == 1 and len(zero.chat) == 2
    with pytest.raises(DatasetError, match="at most 2 exemplars"):
        get_dataset(DatasetSpec("humaneval", num_fewshot=3)).problems()


def codecontests_row(name: str, description: str, n_private: int = 1) -> dict:
    return {
        "name": name,
        "description": description,
        "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
        "private_tests": {"input": [f"{i} {i}\n" for i in range(n_private)], "output": [f"{2 * i}\n" for i in range(n_private)]},
        "generated_tests": {"input": ["10 -3\n"], "output": ["7\n"]},
        "time_limit": {"seconds": 2, "nanos": 500000000},
        "memory_limit_bytes": 256 << 20,
        "solutions": {"language": [2, 3], "solution": ["int main() {}", "print(sum(map(int, input().split())))"]},
        "source": 2,
        "difficulty": 7,
    }  # fmt: skip


@pytest.fixture
def codecontests_dir(tmp_path):
    pytest.importorskip("datasets", reason="the hub path needs `datasets` (the sample extra)")
    rows = [
        codecontests_row("1_A. Sum", "Print a + b.", n_private=2),
        codecontests_row("2_B. Picture", "Look at the figure <image> and print a + b."),
        codecontests_row("3_C. Image", "As shown [Image], print a + b."),
        codecontests_row("4_D. Again", "Print a + b again."),
    ]
    folder = tmp_path / "code_contests"
    folder.mkdir()
    with open(folder / "test.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return folder


def test_codecontests_from_a_hub_folder(codecontests_dir):
    spec = DatasetSpec(
        "codecontests", source="hub", hub={"path": str(codecontests_dir), "split": "test"}
    )
    problems = get_dataset(spec).problems()
    assert [p.metadata["name"] for p in problems] == [
        "1_A. Sum",
        "4_D. Again",
    ]  # image problems dropped
    first = problems[0]
    assert first.problem_id == "codecontests-000" and first.metadata["kind"] == "stdio"
    assert [t["group"] for t in first.metadata["tests"]] == [
        "public",
        "private",
        "private",
        "generated",
    ]
    assert (
        first.metadata["time_limit_s"] == 2.5 and first.metadata["timeout_s"] == 12.5
    )  # the paper: + 10 s
    assert first.metadata["memory_bytes"] == 256 << 20
    assert first.reference == "print(sum(map(int, input().split())))"  # the Python 3 solution
    assert first.prompt.endswith("Q: Print a + b.\nA:")
    assert DATASETS.get("codecontests").verifier == "code"
    assert has_image("x <image> y") and has_image("[Image]") and not has_image("image")


def test_codecontests_has_no_bundled_copy():
    with pytest.raises(DatasetError, match="source: hub"):
        get_dataset(DatasetSpec("codecontests")).problems()


@pytest.mark.skipif(
    not (backend_works("bwrap") or backend_works("nsjail")), reason="no sandbox backend"
)
def test_exemplars_and_reference_solutions_pass(codecontests_dir):
    from monkeyflow.verify.code import CodeJudge

    spec = DatasetSpec(
        "codecontests", source="hub", hub={"path": str(codecontests_dir), "split": "test"}
    )
    contest = get_dataset(spec).problems()[0]
    plus = {"kind": "stdio", "timeout_s": 2.0, "tests": [{"input": "3 4\n", "output": "7"}]}
    words = {
        "kind": "stdio",
        "timeout_s": 2.0,
        "tests": [{"input": "2\nab\nabc\n", "output": "ba\nabc"}],
    }
    sum_even = {
        "kind": "call",
        "fn_name": "sum_even",
        "timeout_s": 2.0,
        "tests": [{"input": "[1, 2, 3, 4]", "output": [6]}],
    }
    palindrome = {
        "kind": "call",
        "fn_name": "is_palindrome",
        "timeout_s": 2.0,
        "tests": [{"input": "Abba", "output": [True]}],
    }
    pairs = [(contest, contest.reference)]
    for meta, (_, answer) in zip([plus, words], STDIO_SHOTS, strict=True):
        pairs.append((Problem("shot", "test", "", "", metadata=meta), f"```python\n{answer}\n```"))
    for meta, (_, _, answer) in zip([sum_even, palindrome], CALL_SHOTS, strict=True):
        pairs.append((Problem("shot", "test", "", "", metadata=meta), f"```python\n{answer}\n```"))
    with CodeJudge(workers=1) as judge:
        checks = judge.verify_many(pairs)
    assert [c.status for c in checks] == ["correct"] * 5, [c.detail for c in checks]
    assert checks[0].detail == "passed 4/4 tests"
