"""SWE-bench Lite without running tests: the dataset, the predictions backend, patch text
(extraction, normal form, repair), the sandbox and Apptainer command lines, grading helpers."""

from __future__ import annotations

import json
import subprocess

import pytest

from monkeyflow.data import DatasetError, DatasetSpec, get_dataset
from monkeyflow.records import Problem
from monkeyflow.sampling.base import ModelSpec, SamplingParams, ShardRequest
from monkeyflow.sampling.predictions_backend import (
    PredictionsBackend,
    PredictionsError,
    load_predictions,
)
from monkeyflow.stages import verification_key
from monkeyflow.verify import get_verifier
from monkeyflow.verify.swebench import apptainer, jail, local, spec
from monkeyflow.verify.swebench.patchtext import extract_patch, normalise_patch, repair_diff
from tests import swebench_support as sb

ID = sb.PYTEST_11143


# -- dataset -------------------------------------------------------------------------------------
def test_bundled_lite_has_300_instances_with_what_the_verifier_needs():
    problems = sb.instances()
    assert len(problems) == 300
    p = problems[ID]
    m = p.metadata
    assert m["repo"] == "pytest-dev/pytest" and m["version"] == "8.0"
    assert m["base_commit"] == "6995257cf470d2143ad1683824962de4071c0eb7"
    assert m["environment_setup_commit"].startswith("10056865")
    assert m["FAIL_TO_PASS"] == [
        "testing/test_assertrewrite.py::TestIssue11140::test_constant_not_picked_as_module_docstring"
    ]
    assert len(m["PASS_TO_PASS"]) == 114 and m["test_patch"].startswith("diff --git")
    assert p.reference.startswith("diff --git a/src/_pytest/assertion/rewrite.py")


def test_oracle_prompt_holds_the_issue_and_the_files_the_gold_patch_edits():
    p = sb.instances()[ID]
    assert "[start of src/_pytest/assertion/rewrite.py]" in p.prompt
    assert '1 """Rewrite assertion AST to produce nice error messages."""' in p.prompt
    assert "unified diff" in p.prompt and p.chat == [{"role": "user", "content": p.prompt}]
    assert p.metadata["oracle_found"] == ["src/_pytest/assertion/rewrite.py"]
    django = sb.instances()["django__django-15202"]  # no snapshot shipped
    assert "(file not available here)" in django.prompt and django.metadata["oracle_found"] == []


def test_hub_source_reads_a_local_folder_of_the_hub_layout(tmp_path):
    from monkeyflow.data.base import read_bundled

    rows = read_bundled("swebench_lite/swe-bench-lite.json")[:3]
    folder = tmp_path / "SWE-bench_Lite"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec_ = DatasetSpec(name="swebench_lite", source="hub", hub={"path": str(folder)})
    problems = get_dataset(spec_).problems()
    assert [p.problem_id for p in problems] == [r["instance_id"] for r in rows]
    assert problems[0].metadata["FAIL_TO_PASS"] == json.loads(rows[0]["FAIL_TO_PASS"])
    del rows[1]["test_patch"]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError, match="malformed row 1: .*'test_patch'"):
        get_dataset(spec_).problems()


# -- predictions -----------------------------------------------------------------------------------
def _preds(path, rows, as_list=False):
    path.write_text(json.dumps(rows) if as_list else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def _row(instance, patch, **extra):
    return {"instance_id": instance, "model_patch": patch, "model_name_or_path": "m", **extra}


def test_predictions_from_files_folders_and_globs_in_a_stable_order(tmp_path):
    folder = tmp_path / "preds"
    folder.mkdir()
    _preds(folder / "b.jsonl", [_row("x__y-1", "B1"), _row("x__y-2", "B2")])
    _preds(folder / "a.json", [_row("x__y-1", "A1"), _row("x__y-1", None)], as_list=True)
    by_folder = load_predictions(str(folder))
    assert by_folder == {"x__y-1": ["A1", "", "B1"], "x__y-2": ["B2"]}
    assert load_predictions(str(folder / "*.json*")) == by_folder
    assert load_predictions(str(folder / "b.jsonl")) == {"x__y-1": ["B1"], "x__y-2": ["B2"]}
    indexed = _preds(
        tmp_path / "i.jsonl",
        [_row("x__y-1", "second", sample_index=1), _row("x__y-1", "first", sample_index=0)],
    )
    assert load_predictions(str(indexed)) == {"x__y-1": ["first", "second"]}
    with pytest.raises(PredictionsError, match="no predictions of model 'other'"):
        load_predictions(str(folder), model_name="other")


def test_bad_predictions_get_clear_errors(tmp_path):
    mixed = _preds(tmp_path / "m.jsonl", [_row("x__y-1", "a", sample_index=0), _row("x__y-1", "b")])
    with pytest.raises(PredictionsError, match="some predictions have a sample_index"):
        load_predictions(str(mixed))
    twice = _preds(
        tmp_path / "t.jsonl",
        [_row("x__y-1", "a", sample_index=0), _row("x__y-1", "b", sample_index=0)],
    )
    with pytest.raises(PredictionsError, match="a sample_index repeats"):
        load_predictions(str(twice))
    (tmp_path / "bad.jsonl").write_text('{"instance_id": "x__y-1"}\n')
    with pytest.raises(PredictionsError, match="missing field 'model_patch'"):
        load_predictions(str(tmp_path / "bad.jsonl"))
    for path in (tmp_path / "nope.jsonl", tmp_path / "nothing-*.jsonl"):
        problem = PredictionsBackend.check_config(ModelSpec("m", "predictions", str(path)), {})
        assert problem and str(path) in problem


def _problem(instance_id):
    return Problem(instance_id, "swebench_lite", "p", "gold", metadata={"row": 0})


def test_missing_predictions_are_reported_not_invented(tmp_path, capsys):
    path = _preds(tmp_path / "p.jsonl", [_row("x__y-1", "a"), _row("x__y-1", "b")])
    requests = [ShardRequest(_problem("x__y-1"), 0, 3), ShardRequest(_problem("x__y-2"), 0, 3)]
    backend = PredictionsBackend(ModelSpec("m", "predictions", str(path)), str(path))
    with pytest.raises(PredictionsError, match=r"x__y-1 \(2\), x__y-2 \(0\)"):
        backend.generate(requests, SamplingParams(), "run")
    spec_ = ModelSpec("m", "predictions", str(path), options={"missing": "empty"})
    samples = PredictionsBackend(spec_, str(path)).generate(requests, SamplingParams(), "run")
    assert [(s.problem_id, s.sample_index, s.text, s.finish_reason) for s in samples] == [
        ("x__y-1", 0, "a", None),
        ("x__y-1", 1, "b", None),
        ("x__y-1", 2, "", "missing"),
        ("x__y-2", 0, "", "missing"),
        ("x__y-2", 1, "", "missing"),
        ("x__y-2", 2, "", "missing"),
    ]
    assert "2 instance(s) have fewer predictions" in capsys.readouterr().err


# -- patch text ------------------------------------------------------------------------------------
def test_extraction_and_normal_form():
    gold = sb.instances()[ID].reference
    fenced = f"Here is the fix:\n```diff\n{gold}```\nHope it helps."
    assert normalise_patch(extract_patch(fenced)) == normalise_patch(gold)
    assert normalise_patch(gold.replace("\n", "\r\n")) == normalise_patch(gold)
    with_index = gold.replace("\n--- a/", "\nindex 1234abc..5678def 100644\n--- a/", 1)
    assert normalise_patch(with_index) == normalise_patch(gold)
    assert normalise_patch(extract_patch("I could not find the bug.")) == ""
    verifier = get_verifier("swebench")
    problem = sb.instances()[ID]
    identity = verifier.identity()
    keys = {
        verification_key(identity, problem, verifier.cache_text(problem, text))
        for text in (gold, fenced, gold.replace("\n", "\r\n"))
    }
    assert len(keys) == 1  # one verdict for the three spellings of the gold patch


def _git_apply_check(tmp_path, diff: str) -> subprocess.CompletedProcess:
    repo = tmp_path / "repo"
    (repo / "src/_pytest/assertion").mkdir(parents=True, exist_ok=True)
    (repo / sb.REWRITE).write_text(sb.file_text(ID, sb.REWRITE))
    (repo / "patch.diff").write_text(diff)
    return subprocess.run(
        ["git", "apply", "--check", "patch.diff"], cwd=repo, capture_output=True, text=True
    )


def test_repair_makes_a_sloppy_model_diff_apply(tmp_path):
    good = sb.make_diff(sb.REWRITE, sb.file_text(ID, sb.REWRITE), sb.gold_text())
    assert _git_apply_check(tmp_path, good).returncode == 0
    sloppy = good.split("\n", 1)[1]  # no diff --git header
    sloppy = sloppy.replace("@@ -676,6 +676,7 @@", "@@ -676,9 +676,3 @@")  # wrong counts
    sloppy = sloppy.replace("\n \n", "\n\n")  # blank context lines without their space
    sloppy = f"```diff\n{sloppy}```"
    broken = extract_patch(sloppy)
    assert _git_apply_check(tmp_path, broken).returncode != 0
    repaired = repair_diff(broken)
    assert repaired.startswith(f"diff --git a/{sb.REWRITE} b/{sb.REWRITE}\n")
    assert _git_apply_check(tmp_path, repaired).returncode == 0, repaired
    assert repair_diff(good) == good  # a correct diff is left as it is


# -- sandbox and apptainer command lines ---------------------------------------------------------
def test_the_sandbox_has_no_network_one_writable_tree_and_an_unprivileged_uid():
    box = jail.Jail(
        writable=(("/cache/work/1/tree", "/testbed"),),
        readonly=(("/cache/trees/i/venv", "/cache/envs/e/venv"),),
        cwd="/testbed",
        env={"PATH": "/cache/envs/e/venv/bin:/usr/bin"},
    )
    argv = jail.build_argv(box, ["bash", "-c", "pytest"], as_root=True)
    assert "--unshare-net" in argv and "--die-with-parent" in argv
    binds = [argv[i + 1 : i + 3] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [["/cache/work/1/tree", "/testbed"]]
    assert ["/cache/trees/i/venv", "/cache/envs/e/venv"] in [
        argv[i + 1 : i + 3] for i, a in enumerate(argv) if a == "--ro-bind"
    ]
    inner = argv[argv.index("--") + 1 :]
    assert inner[:2] == ["setpriv", "--reuid=65534"] and "--no-new-privs" in inner
    assert "prlimit" in inner and "--nproc=1024" in inner and inner[-3:] == ["bash", "-c", "pytest"]
    trusted = jail.build_argv(jail.Jail(network=True, drop_uid=False), ["true"], as_root=False)
    assert "--unshare-net" not in trusted and "--unshare-user" in trusted
    assert "setpriv" not in trusted


def test_apptainer_command_lines():
    assert apptainer.image_uri("django__django-11099") == (
        "docker://swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    )
    sif = local.Path("/c/sif/x.sif")
    assert apptainer.pull_argv("apptainer", sif, "docker://a/b") == [
        "apptainer", "pull", "--force", "/c/sif/x.sif", "docker://a/b"
    ]  # fmt: skip
    argv = apptainer.exec_argv("apptainer", sif, local.Path("/w/in"), "SCRIPT")
    for flag in ("--containall", "--no-home", "--writable-tmpfs"):
        assert flag in argv
    assert argv[argv.index("--network") + 1] == "none" and "--net" in argv
    assert argv[argv.index("--pwd") + 1] == "/testbed"
    assert argv[argv.index("--bind") + 1] == "/w/in:/monkeyflow-in:ro"
    assert argv[-4:] == ["/c/sif/x.sif", "bash", "-c", "SCRIPT"]
    script = apptainer.container_script(spec.apply_commands())
    assert "git apply --verbose" in script and "patch --batch --fuzz=5 -p1 -i" in script
    assert script.rstrip().endswith("bash /monkeyflow-in/eval.sh")
    instance = spec.instance_row(sb.instances()[ID].metadata)
    eval_sh = apptainer.eval_script(instance)
    assert (
        "conda activate testbed" in eval_sh
        and "pytest -rA testing/test_assertrewrite.py" in eval_sh
    )


def test_apptainer_logs_are_graded_with_the_harness_parser():
    instance = spec.instance_row(sb.instances()[ID].metadata)
    start, end = spec.markers()
    passed = "\n".join(f"PASSED {t}" for t in instance["FAIL_TO_PASS"] + instance["PASS_TO_PASS"])
    log = f"+ : '{start}'\n{passed}\n+ : '{end}'\n"
    assert apptainer.grade_log(instance, log, 0, None, 1.0).status == "correct"
    failing = log.replace(
        f"PASSED {instance['FAIL_TO_PASS'][0]}", f"FAILED {instance['FAIL_TO_PASS'][0]}"
    )
    assert apptainer.grade_log(instance, failing, 1, None, 1.0).status == "incorrect"
    assert apptainer.grade_log(instance, "boom", 1, None, 1.0).status == "error"


def test_apptainer_runtime_without_apptainer_is_an_error(tmp_path):
    problem = sb.instances()[ID]
    verifier = get_verifier(
        "swebench",
        {"runtime": "apptainer", "apptainer": "no-such-apptainer", "cache_dir": str(tmp_path)},
    )
    check = verifier.check(problem, problem.reference)
    assert check.status == "error" and "no-such-apptainer" in check.detail


def test_flaky_tests_take_the_majority_of_runs():
    runs = [{"t": "FAILED", "u": "PASSED"}, {"t": "PASSED", "u": "FAILED"}, {"t": "PASSED"}]
    assert local.majority(runs, ["t", "u"]) == {"t": "PASSED", "u": "FAILED"}


def test_cli_flags_belong_to_the_swebench_verifier(tmp_path):
    from monkeyflow.cli import main

    samples = tmp_path / "s.jsonl"
    samples.write_text(
        json.dumps({"problem_id": "gsm8k-00000", "sample_index": 0, "text": "1"}) + "\n"
    )
    code = main(
        ["verify", "gsm8k", str(samples), "-o", str(tmp_path / "v.parquet"), "--runtime", "local"]
    )
    assert code == 2
