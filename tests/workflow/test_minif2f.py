"""MiniF2F end to end with real Snakemake: replayed completions (no model) judged by the lean
verifier through the stand-in REPL (tests/stand_in_lean_repl.py, the real protocol's JSON), up
to pass@k. Checks that coverage is computed and that infrastructure errors (a REPL that crashes
on a proof) are left out of n instead of counting as wrong."""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest

from monkeyflow.data import DatasetSpec, get_dataset

from ..monkey_business import write_released
from .helpers import make_project, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

STAND_IN = Path(__file__).resolve().parents[1] / "stand_in_lean_repl.py"


def completions(problem) -> list[str]:
    """Four completions per problem, by the problem's row."""
    restated_true = f"```lean4\ntheorem {problem.metadata['name']} : True := by\n  trivial\n```"
    return [
        ["  norm_num\n```", "  linarith", "  stand_in_crash", "  nlinarith [sq_nonneg 1]"],
        ["  linarith", "  sorry", "  stand_in_crash", "  stand_in_crash"],
        ["  stand_in_hang", restated_true, "  simp", "  simp"],
    ][problem.metadata["row"]]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("minif2f")
    problems = get_dataset(DatasetSpec("minif2f", rows=(0, 1, 2))).problems()
    rows = [
        {
            "samples": completions(p),
            "is_corrects": [False] * 4,  # released labels are ignored: labels: false
            "orig_dset_idx": p.metadata["row"],
        }
        for p in problems
    ]
    write_released(folder / "released", "MiniF2F-MATH_StandIn", rows)
    config = {
        "datasets": {"minif2f": {"rows": [0, 1, 2]}},
        "models": {
            "replayed": {
                "backend": "replay",
                "path": str(folder / "released"),
                "config": "MiniF2F-MATH_StandIn",
                "labels": False,
            }
        },
        "sampling": {"num_samples": 4, "shard_size": 2},
        "lean": {"repl": f"{sys.executable} {STAND_IN}", "workers": 2, "timeout_s": 1.5},
    }
    make_project(folder, config)
    log = folder / "stand-in-requests.jsonl"
    os.environ["STAND_IN_LEAN_LOG"] = str(log)
    try:
        snakemake(folder, "results/summary/passk.parquet", timeout=300)
    finally:
        del os.environ["STAND_IN_LEAN_LOG"]
    return folder


def test_coverage_is_computed_and_errors_are_not_wrong(project):
    (counts_file,) = project.glob("results/minif2f/replayed/*/counts.parquet")
    counts = {r["problem_id"]: r for r in pl.read_parquet(counts_file).to_dicts()}
    names = {
        p.metadata["row"]: p.problem_id
        for p in get_dataset(DatasetSpec("minif2f", rows=(0, 1, 2))).problems()
    }
    first, second, third = (counts[names[i]] for i in range(3))
    # row 0: correct, incorrect, REPL crash (error), correct
    assert (first["n"], first["c"], first["n_error"]) == (3, 2, 1)
    # row 1: incorrect, refused sorry, two crashes: n counts only what was judged
    assert (second["n"], second["c"], second["n_error"]) == (2, 0, 2)
    # row 2: timeout, a restated weaker theorem (incorrect), correct twice
    assert (third["n"], third["c"], third["n_timeout"], third["n_error"]) == (4, 2, 1, 0)
    passk = pl.read_parquet(project / "results/summary/passk.parquet").filter(
        pl.col("dataset") == "minif2f"
    )
    by_k = dict(zip(passk["k"], passk["pass_at_k"], strict=True))
    # pass@1 = mean of c/n over the three problems: 2/3, 0, 2/4
    assert by_k[1] == pytest.approx((2 / 3 + 0 + 2 / 4) / 3)
    assert by_k[2] == pytest.approx((1.0 + 0.0 + (1 - 1 / 6)) / 3)
    assert planned_jobs(project).get("verify_shard", 0) == 0


def test_verdicts_say_why(project):
    verdicts = pl.concat(
        [pl.read_parquet(p) for p in project.glob("results/minif2f/replayed/*/verdicts/*.parquet")]
    )
    assert verdicts.height == 12
    errors = verdicts.filter(pl.col("status") == "error")
    assert errors.height == 3 and errors["detail"].str.contains("crashed").all()
    restated = verdicts.filter(pl.col("method") == "restated_changed")
    assert restated.height == 1 and restated["status"][0] == "incorrect"


def test_each_repl_process_imported_the_header_once(project):
    rows = [
        json.loads(line) for line in (project / "stand-in-requests.jsonl").read_text().splitlines()
    ]
    headers = collections.Counter(r["pid"] for r in rows if r["kind"] == "header")
    assert headers and set(headers.values()) == {1}
    proofs = collections.Counter(r["pid"] for r in rows if r["kind"] == "proof")
    assert set(proofs) <= set(headers)
