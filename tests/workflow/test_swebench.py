"""SWE-bench Lite end to end with real Snakemake: two real instances (the shipped pytest
snapshots), SWE-bench predictions files imported as 3 attempts per instance (backend
`predictions`), judged by the swebench verifier's local runtime, up to counts and pass@k."""

from __future__ import annotations

import json

import polars as pl
import pytest

from monkeyflow.verify.swebench import jail
from tests import swebench_support as sb

from .helpers import make_project, snakemake

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(bool(jail.missing_tools()), reason=f"needs {jail.missing_tools()}"),
]


def rows_of(*instance_ids: str) -> list[int]:
    return sorted(sb.instances()[i].metadata["row"] for i in instance_ids)


@pytest.fixture(scope="module")
def project(tmp_path_factory, swebench_cache, swebench_verdicts):
    folder = tmp_path_factory.mktemp("swebench")
    gold = sb.instances()[sb.PYTEST_11143].reference
    attempts = [  # one predictions file per attempt, in the SWE-bench format
        {sb.PYTEST_11143: gold, sb.PYTEST_11148: ""},
        {sb.PYTEST_11143: None, sb.PYTEST_11148: sb.not_applying()},
        {sb.PYTEST_11143: gold.replace("\n", "\r\n"), sb.PYTEST_11148: None},
    ]
    preds = folder / "predictions"
    preds.mkdir()
    for n, patches in enumerate(attempts):
        lines = [
            json.dumps({"instance_id": i, "model_patch": p, "model_name_or_path": "demo"})
            for i, p in patches.items()
        ]
        (preds / f"attempt-{n}.jsonl").write_text("\n".join(lines) + "\n")
    config = {
        "datasets": {"swebench_lite": {"rows": rows_of(sb.PYTEST_11143, sb.PYTEST_11148)}},
        "models": {"demo": {"backend": "predictions", "path": str(preds)}},
        "sampling": {"num_samples": 3, "shard_size": 3},
        # the unit tests' options: a gold verdict they made this session is reused
        "swebench": {"cache_dir": str(swebench_cache), "timeout_s": 300},
        "passk": {"ks": [1, 2, 3]},
    }
    make_project(folder, config)
    (folder / "results" / "cache").mkdir(parents=True)
    (folder / "results" / "cache" / "verdicts").symlink_to(swebench_verdicts)
    snakemake(folder, "results/summary/passk.parquet", timeout=900)
    return folder


def test_counts_and_pass_at_k(project):
    (counts_file,) = project.glob("results/swebench_lite/demo/*/counts.parquet")
    counts = {r["problem_id"]: r for r in pl.read_parquet(counts_file).to_dicts()}
    assert (counts[sb.PYTEST_11143]["n"], counts[sb.PYTEST_11143]["c"]) == (3, 2)
    assert (counts[sb.PYTEST_11148]["n"], counts[sb.PYTEST_11148]["c"]) == (3, 0)
    passk = pl.read_parquet(project / "results/summary/passk.parquet")
    ours = passk.filter(pl.col("dataset") == "swebench_lite").sort("k")
    by_k = dict(zip(ours["k"].to_list(), ours["pass_at_k"].to_list(), strict=True))
    # 11143: 2 of 3 correct -> pass@1 2/3, pass@2 1, pass@3 1; 11148: 0 of 3
    assert by_k[1] == pytest.approx((2 / 3 + 0) / 2)
    assert by_k[2] == pytest.approx(0.5) and by_k[3] == pytest.approx(0.5)


def test_samples_keep_the_attempt_order_and_verdicts_say_why(project):
    (verdict_file,) = project.glob("results/swebench_lite/demo/*/verdicts/shard-0.parquet")
    verdicts = {
        (r["problem_id"], r["sample_index"]): r for r in pl.read_parquet(verdict_file).to_dicts()
    }
    assert verdicts[(sb.PYTEST_11143, 0)]["status"] == "correct"
    assert verdicts[(sb.PYTEST_11143, 1)]["detail"].startswith("empty patch")
    assert verdicts[(sb.PYTEST_11143, 2)]["status"] == "correct"  # the CRLF copy of gold
    assert verdicts[(sb.PYTEST_11148, 1)]["detail"].startswith("patch does not apply")
    log = next(project.glob("logs/verify_shard/swebench_lite/demo/*/shard-0.log")).read_text()
    # the two gold copies normalise to one patch: judged once
    assert "6 samples, 4 distinct completions" in log  # the gold patch's two spellings: one
