"""The REPL pool against the stand-in REPL (tests/stand_in_lean_repl.py, which speaks the real
protocol's JSON): verdicts, timeouts, crashes and restarts, memory, and one header import per
worker process."""

from __future__ import annotations

import collections
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from monkeyflow.cli import main
from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.records import Problem
from monkeyflow.verify import get_verifier
from monkeyflow.verify.lean.repl import REPL_ENV, anon_rss_bytes

STAND_IN = Path(__file__).resolve().parents[1] / "stand_in_lean_repl.py"
REPL = f"{sys.executable} {STAND_IN}"


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return get_dataset(DatasetSpec("minif2f", limit=3, subset_seed=1)).problems()


@pytest.fixture
def log(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own worker slots
    path = tmp_path / "requests.jsonl"
    monkeypatch.setenv("STAND_IN_LEAN_LOG", str(path))
    monkeypatch.setenv("STAND_IN_LEAN_STATE", str(tmp_path))
    return path


def requests(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lean(**options):
    settings = {"repl": REPL, "timeout_s": 2, "workers": 2, "machine_workers": 8}
    return get_verifier("lean", {**settings, **options})


def test_verdicts_from_the_repl_answers(problems, log):
    p, q = problems[0], problems[1]
    restated_weaker = f"```lean4\ntheorem {p.metadata['name']} : True := by\n  trivial\n```"
    restated_same = f"```lean4\n{q.metadata['formal_statement']}  nlinarith [sq_nonneg 3]\n```"
    pairs = [
        (p, "  norm_num\n```"),  # success
        (p, "  linarith"),  # a Lean error message
        (p, "  stop"),  # Lean's `repeat sorry`: the sorry warning and a `sorries` entry
        (p, "  stand_in_axiom"),  # closes the goal with a forbidden axiom
        (p, restated_weaker),  # a changed statement: the given one is checked
        (q, restated_same),
        (p, "  sorry"),  # refused before Lean
    ]
    with lean() as verifier:
        checks = verifier.check_many(pairs)
    assert [c.status for c in checks] == [
        "correct",
        "incorrect",
        "incorrect",
        "incorrect",
        "incorrect",
        "correct",
        "incorrect",
    ]
    assert checks[0].extracted == "norm_num" and checks[0].method == "continuation"
    assert "linarith failed" in checks[1].detail
    assert "sorry" in checks[2].detail
    assert "Lean.ofReduceBool" in checks[3].detail
    assert checks[4].method == "restated_changed" and "unsolved goals" in checks[4].detail
    assert checks[5].method == "restated"
    assert checks[6].detail.startswith("refused before Lean")
    proofs = [r for r in requests(log) if r["kind"] == "proof"]
    assert len(proofs) == 6  # the refused one never reached Lean
    weaker = [r for r in proofs if r["theorem"] == p.metadata["name"]]
    assert len(weaker) == 5  # every proof of p was checked as theorem p, none as `True`


def test_each_worker_imports_the_header_once_and_reuses_its_environment(problems, log):
    pairs = [(p, f"  norm_num [{i}]") for i in range(6) for p in problems]
    with lean(workers=3) as verifier:
        assert all(c.status == "correct" for c in verifier.check_many(pairs))
        again = verifier.check_many([(problems[0], "  simp [again]")])
    assert again[0].status == "correct"
    rows = requests(log)
    by_pid = collections.defaultdict(collections.Counter)
    for row in rows:
        by_pid[row["pid"]][row["kind"]] += 1
    assert len(by_pid) == 3  # three workers, kept across check_many calls
    assert all(counts["header"] == 1 for counts in by_pid.values())
    assert sum(counts["proof"] for counts in by_pid.values()) == 19
    assert all(r["env"] == 0 for r in rows if r["kind"] == "proof")  # the header's environment


def test_a_timeout_kills_only_that_worker_which_imports_again(problems, log):
    p = problems[0]
    pairs = [(p, "  stand_in_hang")] + [(p, f"  norm_num [{i}]") for i in range(5)]
    with lean(workers=2, timeout_s=1.5) as verifier:
        checks = verifier.check_many(pairs)
        after = verifier.check_many([(p, f"  simp [{i}]") for i in range(4)])
    assert checks[0].status == "timeout" and "1.5 s" in checks[0].detail
    assert all(c.status == "correct" for c in checks[1:] + after)
    rows = requests(log)
    headers = collections.Counter(r["pid"] for r in rows if r["kind"] == "header")
    assert all(n == 1 for n in headers.values())
    # the worker that timed out was replaced by one new process; the other one lived on
    assert len(headers) == 3


def test_a_crash_is_retried_on_a_fresh_worker_and_never_counts_as_wrong(problems, log):
    p = problems[0]
    with lean(workers=1) as verifier:
        checks = verifier.check_many(
            [(p, "  stand_in_crash_once"), (p, "  stand_in_crash"), (p, "  norm_num")]
        )
    once, always, after = checks
    assert once.status == "correct"  # the crash was the checker's, the retry judged the proof
    assert (
        always.status == "error"
        and "crashed" in always.detail
        and "Stack overflow" in always.detail
    )
    assert "tried 2 times" in always.detail
    assert after.status == "correct"  # the pool restarted and went on
    headers = collections.Counter(r["pid"] for r in requests(log) if r["kind"] == "header")
    assert len(headers) == 4 and set(headers.values()) == {1}  # a fresh process after each crash


def test_broken_answers_and_memory_are_errors(problems, log):
    p = problems[0]
    with lean(workers=1, memory_gb=0.25, timeout_s=20) as verifier:
        memory, garbage, fine = verifier.check_many(
            [(p, "  stand_in_memory"), (p, "  stand_in_garbage"), (p, "  norm_num")]
        )
    assert memory.status == "error" and "lean.memory_gb" in memory.detail
    assert garbage.status == "error" and "not JSON" in garbage.detail
    assert fine.status == "correct"


def test_missing_toolchain_and_missing_mathlib_are_errors_that_say_what_to_do(
    problems, log, monkeypatch, tmp_path
):
    p = problems[0]
    monkeypatch.delenv(REPL_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `repl`, no `lake`
    with get_verifier("lean", {"workers": 2}) as verifier:
        checks = verifier.check_many([(p, "  norm_num"), (p, "  simp")])
    assert [c.status for c in checks] == ["error", "error"]
    assert "no Lean REPL" in checks[0].detail and "containers/lean.def" in checks[0].detail
    with get_verifier("lean", {"repl": str(tmp_path / "nowhere" / "repl")}) as verifier:
        (check,) = verifier.check_many([(p, "  norm_num")])
    assert check.status == "error" and "cannot start the Lean REPL" in check.detail
    monkeypatch.setenv("STAND_IN_LEAN_HEADER_FAIL", "1")
    with lean() as verifier:
        checks = verifier.check_many([(p, "  norm_num"), (p, "  simp")])
    assert {c.status for c in checks} == {"error"}
    assert (
        "header does not elaborate" in checks[0].detail
        and "unknown module prefix" in checks[0].detail
    )


def test_a_different_lean_version_is_refused(problems, log, monkeypatch):
    monkeypatch.setenv("STAND_IN_LEAN_VERSION", "4.22.0")
    with lean() as verifier:
        (check,) = verifier.check_many([(problems[0], "  norm_num")])
    assert (
        check.status == "error"
        and "runs Lean 4.22.0" in check.detail
        and "lean_version" in check.detail
    )
    with lean(lean_version="4.22.0") as verifier:
        assert verifier.check(problems[0], "  norm_num").status == "correct"
    with lean(lean_version=None) as verifier:
        assert verifier.check(problems[0], "  norm_num").status == "correct"


def test_workers_are_recycled_after_max_proofs(problems, log):
    with lean(workers=1, max_proofs_per_worker=2) as verifier:
        checks = verifier.check_many([(problems[0], f"  norm_num [{i}]") for i in range(5)])
    assert all(c.status == "correct" for c in checks)
    headers = collections.Counter(r["pid"] for r in requests(log) if r["kind"] == "header")
    assert len(headers) == 3 and set(headers.values()) == {1}


def test_jobs_side_by_side_share_the_machine_wide_worker_slots(problems, log):
    first = lean(workers=2, machine_workers=2)
    assert all(
        c.status == "correct"
        for c in first.check_many([(problems[0], "  simp"), (problems[1], "  simp")])
    )
    live = {r["pid"] for r in requests(log)}
    assert len(live) == 2  # both slots held by the first pool's REPLs, which stay up
    threading.Timer(1.5, first.close).start()  # the first "job" ends after 1.5 s
    start = time.monotonic()
    with lean(workers=2, machine_workers=2) as second:
        checks = second.check_many([(problems[0], "  norm_num"), (problems[1], "  ring")])
    assert all(c.status == "correct" for c in checks)
    assert time.monotonic() - start >= 1.4  # it waited for the slots instead of starting more REPLs
    assert all(anon_rss_bytes(pid) is None for pid in live)


def test_close_leaves_no_process(problems, log):
    verifier = lean(workers=2)
    verifier.check_many([(problems[0], "  norm_num"), (problems[1], "  simp")])
    pids = {r["pid"] for r in requests(log)}
    assert all(anon_rss_bytes(pid) is not None for pid in pids)
    verifier.close()
    assert all(anon_rss_bytes(pid) is None for pid in pids)


def test_lean_check_command(monkeypatch, capsys, log):
    assert main(["lean-check", "--option", f"repl={REPL}", "--option", "workers=2"]) == 0
    assert "6/6 as expected" in capsys.readouterr().out
    monkeypatch.setenv("STAND_IN_LEAN_ACCEPT_ALL", "1")  # a checker that accepts anything
    assert main(["lean-check", "--option", f"repl={REPL}", "--statements"]) == 1
    out = capsys.readouterr().out
    assert "FAIL monkeyflow_false_gcd" in out and "3/6 as expected" in out
    assert "130/130 bundled statements elaborate" in out


def test_verify_command_on_minif2f(problems, log, tmp_path):
    import polars as pl

    from monkeyflow.io import write_jsonl

    samples = tmp_path / "samples.jsonl"
    texts = ["  norm_num", "  linarith", "  stand_in_crash"]
    write_jsonl(
        samples,
        [
            {"problem_id": problems[0].problem_id, "sample_index": i, "text": t}
            for i, t in enumerate(texts)
        ],
    )
    problems_file = tmp_path / "problems.jsonl"
    write_jsonl(problems_file, [p.to_dict() for p in problems])
    out = tmp_path / "verdicts.parquet"
    args = ["verify", "minif2f", str(samples), "--problems", str(problems_file), "-o", str(out)]
    assert main([*args, "--option", f"repl={REPL}", "--option", "machine_workers=4"]) == 0
    assert pl.read_parquet(out)["status"].to_list() == ["correct", "incorrect", "error"]
