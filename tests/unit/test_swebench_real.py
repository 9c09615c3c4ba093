"""The swebench verifier's local runtime on a real SWE-bench Lite instance (pytest-dev__pytest-11143,
its shipped snapshot, a venv built from the swebench 4.1.0 spec once per machine)."""

from __future__ import annotations

import os
import shutil

import pytest

from monkeyflow.cache import VerdictCache
from monkeyflow.records import Sample
from monkeyflow.stages import verify_samples
from monkeyflow.verify import get_verifier
from monkeyflow.verify.swebench import jail
from tests import swebench_support as sb

pytestmark = pytest.mark.skipif(
    bool(jail.missing_tools()), reason=f"needs {jail.missing_tools()} (apt-get install bubblewrap)"
)


OPTIONS = {"timeout_s": 300}  # the workflow test's too: they share the session's verdict cache


@pytest.fixture(scope="module")
def verdicts(swebench_cache, swebench_verdicts):
    """The patches judged in one call (one environment hold, as a shard does)."""
    problem = sb.instances()[sb.PYTEST_11143]
    verifier = get_verifier("swebench", {"cache_dir": str(swebench_cache), **OPTIONS})
    patches = {
        "gold": problem.reference,
        "gold_crlf": problem.reference.replace("\n", "\r\n"),
        "empty": "",
        "no_op": sb.no_op(),
        "breaks_p2p": sb.breaking_pass_to_pass(),
        "not_applying": sb.not_applying(),
    }
    samples = [Sample(problem.problem_id, i, text) for i, text in enumerate(patches.values())]
    checks, _ = verify_samples([problem], samples, verifier, VerdictCache(swebench_verdicts))
    return dict(zip(patches, checks, strict=True))


def test_gold_patch_resolves(verdicts):
    gold = verdicts["gold"]
    assert gold.status == "correct", gold.detail
    assert "1 FAIL_TO_PASS and 114 PASS_TO_PASS pass" in gold.detail
    assert "applied with `git apply --verbose`" in gold.detail
    # the same patch with CRLF line ends normalises to the same text: same verdict
    assert verdicts["gold_crlf"].status == "correct"
    assert verdicts["gold_crlf"].extracted == gold.extracted


def test_no_patch_does_not_resolve(verdicts):
    assert verdicts["empty"].status == "incorrect"
    assert "empty patch" in verdicts["empty"].detail
    no_op = verdicts["no_op"]
    assert no_op.status == "incorrect", no_op.detail
    assert "FAIL_TO_PASS testing/test_assertrewrite.py::TestIssue11140" in no_op.detail
    assert "PASS_TO_PASS not run" in no_op.detail  # stopped after the FAIL_TO_PASS phase


def test_patch_breaking_a_pass_to_pass_test_does_not_resolve(verdicts):
    broken = verdicts["breaks_p2p"]
    assert broken.status == "incorrect", broken.detail
    assert "1 FAIL_TO_PASS pass" in broken.detail
    assert "PASS_TO_PASS fail" in broken.detail and "test_get_assertion_exprs" in broken.detail


def test_non_applying_diff_is_incorrect_with_its_reason(verdicts):
    bad = verdicts["not_applying"]
    assert bad.status == "incorrect"
    assert bad.detail.startswith("patch does not apply:")
    assert "patch failed" in bad.detail or "does not" in bad.detail or "FAILED" in bad.detail


def test_hanging_test_times_out(swebench_cache):
    problem = sb.instances()[sb.PYTEST_11143]
    verifier = get_verifier("swebench", {"cache_dir": str(swebench_cache), "timeout_s": 8})
    check = verifier.check(problem, sb.hanging())
    assert check.status == "timeout", check.detail
    assert "ran over 8 s" in check.detail
    # the work copy is gone (other processes sharing the cache may have their own there)
    assert not list((swebench_cache / "work").glob(f"{os.getpid()}-*"))


def test_environment_that_cannot_be_built_is_an_error(tmp_path):
    """No snapshot for the instance: the gold patch gets `error`, never `incorrect`."""
    problem = sb.instances()[sb.PYTEST_11143]
    repos = tmp_path / "repos"
    repos.mkdir()
    verifier = get_verifier("swebench", {"cache_dir": str(tmp_path / "cache"), "repos": str(repos)})
    verifier.folders = lambda: ([repos], repos / "env_files", tmp_path / "cache")  # no bundled
    check = verifier.check(problem, problem.reference)
    assert check.status == "error"
    assert "no source snapshot pytest-dev__pytest-11143.tar.gz" in check.detail
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
