"""`monkeyflow verify humaneval|apps ...`: programs verified in the sandbox from the command line."""

from __future__ import annotations

import gzip
import json

import polars as pl

from monkeyflow.cli import main
from monkeyflow.data.base import bundled_path


def test_cli_verifies_humaneval_canonical_and_wrong_solutions(tmp_path, capsys):
    with gzip.open(bundled_path("humaneval/HumanEval.jsonl.gz"), "rt") as fh:
        rows = [json.loads(line) for line in fh][:4]
    samples = []
    for i, row in enumerate(rows):
        pid = f"humaneval-{i:03d}"
        good = f"```python\n{row['prompt']}{row['canonical_solution']}```"
        wrong = f"```python\n{row['prompt']}    return None\n```"
        samples += [
            {"problem_id": pid, "sample_index": 0, "text": good},
            {"problem_id": pid, "sample_index": 1, "text": wrong},
            {"problem_id": pid, "sample_index": 2, "text": "I cannot write code."},
        ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    assert main(["problems", "humaneval", "-o", str(tmp_path / "p.jsonl")]) == 0
    assert (
        main(
            [
                "verify",
                "humaneval",
                str(tmp_path / "s.jsonl"),
                "--problems",
                str(tmp_path / "p.jsonl"),
                "-o",
                str(tmp_path / "v.parquet"),
            ]
        )
        == 0
    )
    verdicts = pl.read_parquet(tmp_path / "v.parquet")
    assert verdicts["status"].to_list() == ["correct", "incorrect", "incorrect"] * 4
    assert main(["passk", str(tmp_path / "v.parquet"), "--k", "1", "3"]) == 0
    out = capsys.readouterr().out
    assert "0.3333" in out and "1.0" in out


def test_cli_verifies_apps_programs(tmp_path):
    assert main(["problems", "apps", "--limit", "3", "-o", str(tmp_path / "p.jsonl")]) == 0
    problems = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    samples = [
        {
            "problem_id": p["problem_id"],
            "sample_index": 0,
            "text": "```python\nwhile True: pass\n```",
        }
        for p in problems
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    assert (
        main(
            [
                "verify",
                "apps",
                str(tmp_path / "s.jsonl"),
                "--problems",
                str(tmp_path / "p.jsonl"),
                "-o",
                str(tmp_path / "v.parquet"),
            ]
        )
        == 0
    )
    statuses = pl.read_parquet(tmp_path / "v.parquet")["status"].to_list()
    assert len(statuses) == 3 and set(statuses) <= {"timeout", "incorrect"}
