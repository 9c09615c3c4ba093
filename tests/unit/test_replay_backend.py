"""The replay backend: reading released samples (monkey_business layout), matching problems by
row index, carrying the released labels into verdicts, and its errors."""

from __future__ import annotations

import polars as pl
import pytest

from monkeyflow.config import load_config
from monkeyflow.io import write_jsonl
from monkeyflow.records import Problem, Sample
from monkeyflow.sampling.base import ModelSpec, SamplingParams, ShardRequest, get_backend
from monkeyflow.sampling.replay_backend import ReplayError, load_released_rows
from monkeyflow.stages import read_samples, sample_shard, verify_samples

from ..monkey_business import released_rows, tiny_tokenizer, write_released


def problem(row: int, reference: str = "7") -> Problem:
    return Problem(
        problem_id=f"gsm8k-{row:05d}",
        dataset="gsm8k",
        prompt=f"Question {row}\nAnswer:",
        reference=reference,
        chat=[{"role": "user", "content": f"Question {row}"}],
        metadata={"row": row},
    )


PROBLEMS = [problem(3, "7"), problem(11, "20")]


def backend(path, **options):
    spec = ModelSpec(
        name="released",
        backend="replay",
        path=str(path),
        options={"config": "GSM8K_Toy", **options},
    )
    return get_backend(spec, str(path))


@pytest.fixture
def released(tmp_path):
    rows = released_rows(PROBLEMS, 6, 0.5, seed=3)
    rows.append({**rows[0], "orig_dset_idx": 99})  # a problem outside our subset is ignored
    write_released(tmp_path / "released", "GSM8K_Toy", rows)
    return tmp_path / "released", rows


def test_samples_and_labels_come_from_the_released_rows(released):
    path, rows = released
    requests = [ShardRequest(p, start=2, count=3) for p in PROBLEMS]
    samples = backend(path).generate(requests, SamplingParams(), run="r")
    assert [(s.problem_id, s.sample_index) for s in samples][:3] == [
        ("gsm8k-00003", i) for i in (2, 3, 4)
    ]
    by_key = {(s.problem_id, s.sample_index): s for s in samples}
    assert by_key[("gsm8k-00011", 4)].text == rows[1]["samples"][4]
    assert by_key[("gsm8k-00011", 4)].label is rows[1]["is_corrects"][4]
    assert all(s.prompt_tokens is None and s.cumulative_logprob is None for s in samples)
    unlabelled = backend(path, labels=False).generate(requests, SamplingParams(), run="r")
    assert all(s.label is None for s in unlabelled)


def test_token_counts_with_a_tokenizer(released, tmp_path):
    path, _ = released
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    (sample,) = backend(path, tokenizer=str(tokenizer)).generate(
        [ShardRequest(PROBLEMS[0], 0, 1)], SamplingParams(), "r"
    )
    assert (
        sample.completion_tokens == len(sample.text.split()) and sample.prompt_tokens == 4
    )  # Question, 3, Answer, :


def test_more_samples_than_released_is_a_clear_error(released):
    path, _ = released
    with pytest.raises(ReplayError, match=r"has 6 released samples.*num_samples <= 6"):
        backend(path).generate([ShardRequest(PROBLEMS[0], start=4, count=4)], SamplingParams(), "r")


def test_a_problem_without_released_samples_is_named(released):
    path, _ = released
    with pytest.raises(
        ReplayError, match=r"gsm8k-00005 \(row 5\) has no released samples.*3 problems"
    ):
        backend(path).generate([ShardRequest(problem(5), 0, 1)], SamplingParams(), "r")


def test_released_rows_prints_the_dataset_rows_line(released, capsys, tmp_path):
    from monkeyflow.cli import main

    path, _ = released
    assert main(["released-rows", str(path), "--config", "GSM8K_Toy"]) == 0
    out, err = capsys.readouterr()
    assert out == "rows: [3, 11, 99]\n" and "3 released problems with 6 samples each" in err
    # the printed line selects exactly the released problems
    import yaml

    from monkeyflow.data import DatasetSpec, get_dataset

    spec = DatasetSpec.from_config("gsm8k", yaml.safe_load(out))
    assert [p.problem_id for p in get_dataset(spec).problems()] == [
        "gsm8k-00003",
        "gsm8k-00011",
        "gsm8k-00099",
    ]
    (tmp_path / "rows.csv").write_text("a,b\n")  # a file: no hub lookup
    assert main(["released-rows", str(tmp_path / "rows.csv")]) == 2
    assert "unknown file type" in capsys.readouterr().err


def test_layouts_file_parquet_and_save_to_disk(released, tmp_path):
    _, rows = released
    write_jsonl(tmp_path / "one.jsonl", rows)
    assert load_released_rows(str(tmp_path / "one.jsonl")) == rows
    pl.DataFrame(rows).write_parquet(tmp_path / "rows.parquet")
    assert [r["orig_dset_idx"] for r in load_released_rows(str(tmp_path / "rows.parquet"))] == [
        3,
        11,
        99,
    ]
    import datasets

    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "saved")
    )
    loaded = load_released_rows(str(tmp_path / "saved"), "GSM8K_Toy", "test")
    assert [r["samples"] for r in loaded] == [r["samples"] for r in rows]
    write_jsonl(
        tmp_path / "bad" / "GSM8K_Toy" / "test.jsonl", [{"samples": ["a"], "orig_dset_idx": 1}]
    )
    with pytest.raises(ReplayError, match=r"row 0 lacks field\(s\) \['is_corrects'\]"):
        backend(tmp_path / "bad")


def test_labels_decide_the_verdict_and_the_answer_is_still_extracted():
    p = Problem("gsm8k-00001", "gsm8k", "q", "7")
    samples = [
        Sample("gsm8k-00001", 0, "#### 8", label=True),  # wrong text, labelled correct
        Sample("gsm8k-00001", 1, "#### 7", label=False),
        Sample("gsm8k-00001", 2, "#### 7"),  # no label: the verifier decides
    ]
    verdicts, _ = verify_samples([p], samples, "gsm8k")
    assert [v.status for v in verdicts] == ["correct", "incorrect", "correct"]
    assert [v.extracted for v in verdicts] == ["8", "7", "7"]
    assert "the verifier said incorrect" in verdicts[0].detail


def test_label_round_trips_and_stays_out_of_drawn_samples():
    assert "label" not in Sample("p", 0, "x").to_dict()
    assert Sample.from_dict(Sample("p", 0, "x", label=False).to_dict()).label is False


def test_sample_shard_without_a_model_folder(released, tmp_path):
    path, rows = released
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [p.to_dict() for p in PROBLEMS])
    spec = ModelSpec(
        name="released", backend="replay", path=str(path), options={"config": "GSM8K_Toy"}
    )
    out = tmp_path / "shard-1.jsonl.zst"
    sample_shard(problems, None, spec, SamplingParams(), "r", shard=1, shard_size=3, out=out)
    got = read_samples(out)
    assert [s.sample_index for s in got] == [3, 4, 5, 3, 4, 5]
    assert [s.label for s in got[:3]] == rows[0]["is_corrects"][3:]


def test_replay_config_and_cost_keys_stay_out_of_the_run_key():
    base = {
        "datasets": {"gsm8k": {"limit": 2}},
        "models": {
            "m": {
                "backend": "replay",
                "path": "ScalingIntelligence/monkey_business",
                "config": "GSM8K_Llama-3-8B-Instruct",
            }
        },
    }
    priced = {
        **base,
        "models": {
            "m": {
                **base["models"]["m"],
                "price": {"input": 0.1, "output": 0.2},
                "parameters": 8_000_000_000,
                "layers": 32,
                "d_model": 4096,
            }
        },
    }
    other = {
        **base,
        "models": {"m": {**base["models"]["m"], "config": "GSM8K_Llama-3-70B-Instruct"}},
    }
    (a,), (b,), (c,) = load_config(base), load_config(priced), load_config(other)
    assert a.run == b.run != c.run
