"""Verification of shards (dedupe, cache, crashes), aggregation and the command line."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from monkeyflow.cache import VerdictCache, cache_scope
from monkeyflow.cli import main
from monkeyflow.io import write_jsonl
from monkeyflow.metrics import pass_at_k
from monkeyflow.records import Problem, Sample
from monkeyflow.stages import (
    count_correct,
    passk_rows,
    read_verdict_table,
    verification_key,
    verify_samples,
    verify_shard,
)
from monkeyflow.verify import VERIFIERS, Check, Verifier

CALLS: list[str] = []


@VERIFIERS.register("test-counting")
class Counting(Verifier):
    def check(self, problem: Problem, completion: str) -> Check:
        CALLS.append(completion)
        if completion == "boom":
            raise RuntimeError("verifier bug")
        return Check(
            status="correct" if completion.strip() == problem.reference else "incorrect",
            extracted=completion,
        )


PROBLEMS = [Problem("p1", "toy", "1+1?", "2"), Problem("p2", "toy", "2+2?", "4")]


def samples(texts: dict[str, list[str]]) -> list[Sample]:
    return [Sample(pid, i, t) for pid, ts in texts.items() for i, t in enumerate(ts)]


# Keys computed by the implementation before the per-problem prefix (commit d7efe3b): every
# verdict cache written since then must still hit.
PINNED_KEYS = {
    "The answer is $\\boxed{\\frac34}$.": "2e5e697ac95d8c9dc70172ca19f7332ae87430653f66c46a633182a88ff0c0cc",
    "caf\u00e9 \ud800 lone": "0af919588561caca949cac4a588e497498d77c0f170ca3ec4d007c8d26bb8e48",
    "": "deb16bfc4bf600c5780180d753b5c3cfd65a38a49df230e2cf5113b0bb6aa873",
}


def test_verification_keys_are_pinned_and_shards_use_the_same_keys(tmp_path):
    problem = Problem(
        "math-00007",
        "math",
        "What is 1/2+1/4?",
        "\\frac{3}{4}",
        metadata={"row": 7, "level": "Level 2", "answers": ["3/4"]},
    )
    identity = {"name": "math", "version": "3", "options": {"timeout_s": 5}}
    for completion, key in PINNED_KEYS.items():
        assert verification_key(identity, problem, completion) == key
    # verify_samples stores exactly these keys in the cache
    cache = VerdictCache(tmp_path / "cache")
    judge = VERIFIERS.get("test-counting")()
    shard = samples({"p1": ["2", "3", "2"], "p2": ["4"]})
    verify_samples(PROBLEMS, shard, judge, cache)
    by_id = {p.problem_id: p for p in PROBLEMS}
    expected = sorted(
        {verification_key(judge.identity(), by_id[s.problem_id], s.text) for s in shard}
    )
    assert sorted(cache.get_many(expected, cache_scope(judge.identity()))) == expected


def test_identical_completions_are_verified_once_and_cached(tmp_path):
    CALLS.clear()
    batch = samples({"p1": ["2", "2", "3", "2"], "p2": ["4", "4"]})
    cache = VerdictCache(tmp_path / "cache.sqlite")
    verdicts, stats = verify_samples(PROBLEMS, batch, "test-counting", cache)
    assert [v.status for v in verdicts] == [
        "correct",
        "correct",
        "incorrect",
        "correct",
        "correct",
        "correct",
    ]
    assert sorted(CALLS) == ["2", "3", "4"] and stats["checked"] == 3
    CALLS.clear()
    verdicts2, stats2 = verify_samples(PROBLEMS, batch, "test-counting", cache)
    assert CALLS == [] and stats2["cached"] == 3 and verdicts2 == verdicts


def test_a_crashing_verifier_gives_error_verdicts_and_is_not_cached(tmp_path):
    CALLS.clear()
    cache = VerdictCache(tmp_path / "cache.sqlite")
    batch = samples({"p1": ["boom", "2"]}) + [Sample("ghost", 0, "2")]
    verdicts, _ = verify_samples(PROBLEMS, batch, "test-counting", cache)
    assert [v.status for v in verdicts] == ["error", "correct", "error"]
    assert "verifier bug" in verdicts[0].detail and "ghost" in verdicts[2].detail
    verify_samples(PROBLEMS, batch, "test-counting", cache)
    assert CALLS.count("boom") == 2  # errors are retried, never cached


def test_verify_shard_writes_one_row_per_sample(tmp_path):
    write_jsonl(tmp_path / "problems.jsonl", [p.to_dict() for p in PROBLEMS])
    write_jsonl(
        tmp_path / "s.jsonl.zst", [s.to_dict() for s in samples({"p2": ["4", "5"], "p1": ["2"]})]
    )
    verify_shard(
        tmp_path / "problems.jsonl",
        tmp_path / "s.jsonl.zst",
        "test-counting",
        tmp_path / "v.parquet",
    )
    frame = pl.read_parquet(tmp_path / "v.parquet")
    assert frame.select("problem_id", "sample_index", "status").rows() == [
        ("p1", 0, "correct"),
        ("p2", 0, "correct"),
        ("p2", 1, "incorrect"),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])
def test_a_shard_verified_in_parts_is_the_shard_verified_whole(tmp_path, chunk):
    """Parts of any size give the same file; completions repeated across parts are judged once;
    samples out of (problem, index) order still give a sorted file."""
    CALLS.clear()
    write_jsonl(tmp_path / "problems.jsonl", [p.to_dict() for p in PROBLEMS])
    shuffled = [Sample("p2", 1, "5"), Sample("p1", 1, "2"), Sample("p2", 0, "4")]
    shuffled += [Sample("p1", 0, "2"), Sample("p1", 2, "3"), Sample("p2", 2, "5")]
    write_jsonl(tmp_path / "s.jsonl.zst", [s.to_dict() for s in shuffled])
    stats = verify_shard(
        tmp_path / "problems.jsonl",
        tmp_path / "s.jsonl.zst",
        "test-counting",
        tmp_path / "v.parquet",
        chunk=chunk,
    )
    assert sorted(CALLS) == ["2", "3", "4", "5"]  # one call per distinct (problem, completion)
    assert stats == {"samples": 6, "unique": 4, "cached": 0, "checked": 4}
    frame = pl.read_parquet(tmp_path / "v.parquet")
    assert frame.select("problem_id", "sample_index", "status").rows() == [
        ("p1", 0, "correct"),
        ("p1", 1, "correct"),
        ("p1", 2, "incorrect"),
        ("p2", 0, "correct"),
        ("p2", 1, "incorrect"),
        ("p2", 2, "incorrect"),
    ]
    assert not list(tmp_path.glob(".v.parquet*"))  # no temporary file left


def test_an_empty_shard_gives_an_empty_verdict_file(tmp_path):
    write_jsonl(tmp_path / "problems.jsonl", [p.to_dict() for p in PROBLEMS])
    write_jsonl(tmp_path / "s.jsonl.zst", [])
    stats = verify_shard(
        tmp_path / "problems.jsonl",
        tmp_path / "s.jsonl.zst",
        "test-counting",
        tmp_path / "v.parquet",
    )
    assert stats["samples"] == 0 and pl.read_parquet(tmp_path / "v.parquet").height == 0


def test_counts_and_passk_rows():
    verdicts = pl.DataFrame(
        {
            "problem_id": ["a"] * 4 + ["b"] * 4,
            "sample_index": [0, 1, 2, 3] * 2,
            "status": [
                "correct",
                "incorrect",
                "error",
                "correct",
                "incorrect",
                "timeout",
                "incorrect",
                "correct",
            ],
            "extracted": ["1"] * 8,
            "method": ["marker", None, None, "fallback", None, None, None, "marker"],
            "detail": [""] * 8,
        }
    )
    counts = count_correct(verdicts)
    assert counts.rows(named=True) == [
        {
            "problem_id": "a",
            "n": 3,
            "c": 2,
            "c_strict": 1,
            "n_timeout": 0,
            "n_error": 1,
            "n_excluded": 1,
        },
        {
            "problem_id": "b",
            "n": 4,
            "c": 1,
            "c_strict": 1,
            "n_timeout": 1,
            "n_error": 0,
            "n_excluded": 0,
        },
    ]
    assert passk_rows(counts, [1, 2], {})[0]["errors_excluded"] == 1
    assert passk_rows(counts, [4], {})[0]["errors_excluded"] == 0  # only b has n >= 4
    lower = count_correct(verdicts, errors="incorrect")
    assert lower["n"].to_list() == [4, 4] and lower["n_excluded"].to_list() == [0, 0]
    assert passk_rows(lower, [1], {})[0]["pass_at_k"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    rows = passk_rows(counts, [1, 2, 4], {"dataset": "toy"})
    expected = pass_at_k([3, 4], [2, 1], [1, 2, 4])
    assert rows[0]["pass_at_k"] == pytest.approx(np.mean(expected[:, 0]))
    assert (
        rows[2]["k"] == 4
        and rows[2]["problems"] == 1
        and rows[2]["pass_at_k"] == pytest.approx(1.0)
    )
    with pytest.raises(ValueError, match="repeat"):
        count_correct(pl.concat([verdicts, verdicts]))


def test_cli_problems_verify_passk(tmp_path, capsys):
    assert main(["problems", "gsm8k", "--limit", "3", "-o", str(tmp_path / "p.jsonl")]) == 0
    problems = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(problems) == 3
    rows = []
    for p in problems:
        rows.append(
            {"problem_id": p["problem_id"], "sample_index": 0, "text": f"so #### {p['reference']}"}
        )
        rows.append({"problem_id": p["problem_id"], "sample_index": 1, "text": "no idea"})
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main(["verify", "gsm8k", str(tmp_path / "s.jsonl"), "-o", str(tmp_path / "v.parquet")]) == 0
    )
    table = read_verdict_table([tmp_path / "v.parquet"])
    assert table["status"].to_list() == ["correct", "incorrect"] * 3
    capsys.readouterr()
    assert main(["passk", str(tmp_path / "v.parquet"), "--k", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "0.5" in out and "1.0" in out


def test_cli_reports_bad_input_cleanly(tmp_path, capsys):
    (tmp_path / "s.jsonl").write_text('{"problem_id": "x", "text": "1"}\n')
    assert (
        main(["verify", "gsm8k", str(tmp_path / "s.jsonl"), "-o", str(tmp_path / "v.parquet")]) == 2
    )
    assert "sample_index" in capsys.readouterr().err
    assert main(["problems", "gsm9k", "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "unknown dataset 'gsm9k'" in capsys.readouterr().err
    assert not (tmp_path / "v.parquet").exists() and not (tmp_path / "p.jsonl").exists()
    assert main(["problems", "gsm8k", "--rows", "3,x", "-o", str(tmp_path / "p.jsonl")]) == 2
    assert "--rows: expected comma-separated row indices" in capsys.readouterr().err
    assert (
        main(
            ["problems", "gsm8k", "--rows", "1,2", "--limit", "2", "-o", str(tmp_path / "p.jsonl")]
        )
        == 2
    )
    assert "either rows or limit" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


def test_cli_problems_takes_exact_rows(tmp_path):
    assert main(["problems", "gsm8k", "--rows", "12, 5", "-o", str(tmp_path / "p.jsonl")]) == 0
    ids = [
        json.loads(line)["problem_id"] for line in (tmp_path / "p.jsonl").read_text().splitlines()
    ]
    assert ids == ["gsm8k-00005", "gsm8k-00012"]
