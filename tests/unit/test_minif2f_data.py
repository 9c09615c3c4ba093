"""The minif2f dataset (bundled and through the hub path with a local folder), its prompt, and how
the `lean` verifier's options come from the config."""

from __future__ import annotations

import json

import pytest

from monkeyflow.cli import main
from monkeyflow.config import load_config, verifier_settings
from monkeyflow.data import DATASETS, DatasetError, DatasetSpec, get_dataset
from monkeyflow.data.minif2f import INSTRUCTION, fewshot_rows, normal_statement
from monkeyflow.io import read_jsonl
from monkeyflow.options import ConfigError
from monkeyflow.verify import VERIFIERS
from monkeyflow.verify.lean import LeanVerifier


def test_bundled_minif2f_math_is_the_130_mathd_test_statements():
    problems = get_dataset(DatasetSpec("minif2f")).problems()
    assert len(problems) == 130 and DATASETS.get("minif2f").verifier == "lean"
    names = [p.metadata["name"] for p in problems]
    assert len(set(names)) == 130 and all(n.startswith("mathd_") for n in names)
    assert sum(n.startswith("mathd_algebra") for n in names) == 70
    assert sum(n.startswith("mathd_numbertheory") for n in names) == 60
    first = problems[0]
    assert first.problem_id == f"minif2f-{first.metadata['name']}" and first.dataset == "minif2f"
    meta = first.metadata
    assert meta["formal_statement"].startswith(f"theorem {meta['name']}")
    assert (
        meta["formal_statement"].endswith(":= by\n") and first.reference == meta["formal_statement"]
    )
    assert meta["header"].startswith("import Mathlib\n") and meta["stop"] == ["Write a lean4"]


def test_prompt_is_five_complete_valid_proofs_then_the_statement():
    problem = get_dataset(DatasetSpec("minif2f")).problems()[3]
    meta = problem.metadata
    assert problem.prompt.count(INSTRUCTION) == 6
    assert problem.prompt.endswith(
        f"```lean4\n{meta['header']}{meta['informal_prefix']}{meta['formal_statement']}"
    )
    for row in fewshot_rows()[:5]:  # exemplars: valid-split statements with their proofs
        assert row["formal_statement"] + row["formal_proof"] in problem.prompt
    assert fewshot_rows()[5]["formal_statement"] not in problem.prompt
    # chat: one user/assistant pair per exemplar; answers restate the theorem in a lean4 block
    assert len(problem.chat) == 11 and problem.chat[-1]["role"] == "user"
    assert problem.chat[1]["content"].startswith("```lean4\ntheorem mathd_algebra_182")
    assert meta["formal_statement"] in problem.chat[-1]["content"]
    zero = get_dataset(DatasetSpec("minif2f", num_fewshot=0)).problems()[3]
    assert zero.prompt.count(INSTRUCTION) == 1 and len(zero.chat) == 1
    with pytest.raises(DatasetError, match="at most 67 exemplars"):
        get_dataset(DatasetSpec("minif2f", num_fewshot=68)).problems()


def test_statements_are_normalised_to_end_with_by():
    assert normal_statement("theorem t : 1 = 1 := by sorry") == "theorem t : 1 = 1 := by\n"
    assert normal_statement("theorem t : 1 = 1 :=\n") == "theorem t : 1 = 1 := by\n"
    with pytest.raises(ValueError, match="does not end with ':= by'"):
        normal_statement("theorem t : 1 = 1")


def test_hub_source_with_a_local_folder(tmp_path):
    pytest.importorskip("datasets")
    header = "import Mathlib\n\n"
    rows = [
        {"id": "mathd_algebra_1", "formal_statement": "theorem mathd_algebra_1 : (2 : ℕ) + 2 = 4 := by sorry", "header": header},
        {"id": "amc12_2000_p1", "formal_statement": "theorem amc12_2000_p1 : True := by sorry", "header": header},
        {"id": "mathd_numbertheory_2", "formal_statement": "theorem mathd_numbertheory_2 : 6 % 4 = 2 :=", "header": header},
    ]  # fmt: skip
    folder = tmp_path / "minif2f"
    folder.mkdir()
    (folder / "test.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    spec = DatasetSpec("minif2f", source="hub", hub={"path": str(folder), "split": "test"})
    problems = get_dataset(spec).problems()
    assert [p.problem_id for p in problems] == [
        "minif2f-mathd_algebra_1",
        "minif2f-mathd_numbertheory_2",
    ]
    assert (
        problems[1].metadata["formal_statement"]
        == "theorem mathd_numbertheory_2 : 6 % 4 = 2 := by\n"
    )
    assert problems[0].metadata["header"] == header and problems[1].metadata["row"] == 1
    (folder / "test.jsonl").write_text(json.dumps(rows[1]) + "\n")
    with pytest.raises(DatasetError, match="no test rows named mathd_"):
        get_dataset(spec).problems()
    rows[0]["formal_statement"] = "theorem other_name : True := by"
    (folder / "test.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(
        DatasetError, match="malformed row 0: .*does not state theorem mathd_algebra_1"
    ):
        get_dataset(spec).problems()


def test_problems_command(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    assert main(["problems", "minif2f", "--limit", "4", "-o", str(out)]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 4 and all(r["metadata"]["name"].startswith("mathd_") for r in rows)


def test_lean_options_come_from_the_top_level_lean_section():
    config = {
        "datasets": {"minif2f": {"limit": 2}},
        "models": {"m": {"backend": "replay", "path": "x"}},
        "lean": {"mode": "server", "url": "http://lean.example:8000", "timeout_s": 30},
    }
    (exp,) = load_config(config)
    assert VERIFIERS.get("lean") is LeanVerifier and exp.verifier == "lean"
    assert (
        exp.verifier_options["mode"] == "server"
        and exp.verifier_options["url"] == "http://lean.example:8000"
    )
    # what changes verdicts is in the identity (cache key, verify_shard params); where Lean runs is not
    assert exp.verifier_identity["options"] == {
        "timeout_s": 30,
        "lean_version": "4.15.0",
        "max_completion_bytes": 1_000_000,
    }
    config["verify"] = {"timeout_s": 90}  # the shared key sets every verifier's timeout...
    config["lean"].pop("timeout_s")
    assert verifier_settings(config, "minif2f")[1]["timeout_s"] == 90
    config["lean"]["timeout_s"] = 120  # ...the verifier's own section overrides it...
    assert verifier_settings(config, "minif2f")[1]["timeout_s"] == 120
    config["datasets"]["minif2f"]["verify"] = {"timeout_s": 300}  # ...and the dataset's, that
    assert verifier_settings(config, "minif2f")[1]["timeout_s"] == 300
    config["lean"] = {"mode": "cloud"}
    with pytest.raises(ConfigError, match=r"lean\.mode|lean: .*cloud|'cloud'"):
        load_config(config)


def test_resources_ask_for_workers_times_memory():
    assert LeanVerifier.resources(LeanVerifier.resolve({"workers": 4, "memory_gb": 6})) == {
        "mem_mb": 4 * 6 * 1024 + 1024
    }
    assert LeanVerifier.resources(LeanVerifier.resolve({})) == {"mem_mb": 8 * 1024 + 1024}
    assert LeanVerifier.resources(LeanVerifier.resolve({"mode": "server", "workers": 64})) == {}
    assert LeanVerifier.container == "lean"
