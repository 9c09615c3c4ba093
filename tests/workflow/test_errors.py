"""Bad configs and bad data stop the workflow with a message that names the problem, before or
without leaving anything that looks complete."""

from __future__ import annotations

import json

import pytest

from .helpers import make_project, snakemake

pytestmark = pytest.mark.workflow

MODEL = {"smol": {"backend": "transformers", "path": "embedded:smollm2-135m"}}


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"datasets": {"gsm8k": {"limt": 2}}, "models": MODEL},
            "config error at datasets.gsm8k.limt: unknown key 'limt'",
        ),
        ({"datasets": {"gsm9k": {}}, "models": MODEL}, "unknown dataset 'gsm9k'"),
        (
            {"datasets": {"gsm8k": {}}, "models": MODEL, "sampling": {"top_p": 2}},
            "config error at sampling.top_p",
        ),
        (
            {"datasets": {"gsm8k": {}}, "models": {"smol": {"backend": "transformers"}}},
            "config error at models.smol: 'path' is a required property",
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, config, message):
    folder = make_project(tmp_path, config)
    result = snakemake(folder, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (folder / "results").exists() and not (folder / "data").exists()


def test_malformed_dataset_row_fails_its_job_and_leaves_no_problem_file(tmp_path):
    rows = [
        {"question": "1+1?", "answer": "2\n#### 2"},
        {"question": "broken row", "answer": "no marker"},
    ]
    source = tmp_path / "source"
    source.mkdir()
    (source / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "datasets": {"gsm8k": {"source": "hub", "hub": {"path": str(source)}}},
        "models": MODEL,
    }
    folder = make_project(tmp_path / "project", config)
    result = snakemake(folder, "--until", "prepare_problems", check=False)
    assert result.returncode != 0
    assert "malformed row 1" in result.stdout + result.stderr
    assert not list((folder / "data").rglob("*.jsonl"))
    log = next((folder / "logs" / "prepare_problems").rglob("*.log")).read_text()
    assert "field 'answer' has no '#### <number>' line" in log


def test_lint_is_clean():
    from .helpers import REPO

    result = snakemake(REPO, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
