"""Config validation and expansion, hashing, atomic io, records and dataset preparation."""

from __future__ import annotations

import json
import os

import pytest

from monkeyflow.config import ConfigError, load_config
from monkeyflow.data import DatasetError, DatasetSpec, get_dataset
from monkeyflow.hashing import content_hash, derive_seed
from monkeyflow.io import atomic_path, read_jsonl, write_jsonl
from monkeyflow.records import Problem, RecordError, Sample, Verdict

BASE = {
    "datasets": {"gsm8k": {"limit": 4}, "math": {"limit": 4}},
    "models": {"smol": {"backend": "transformers", "path": "embedded:smollm2-135m"}},
    "sampling": {"num_samples": 8, "shard_size": 4},
}


def with_changes(**changes):
    cfg = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def test_config_expands_every_pair_with_defaults():
    exps = load_config(BASE)
    assert [(e.dataset, e.model) for e in exps] == [("gsm8k", "smol"), ("math", "smol")]
    e = exps[0]
    assert e.num_shards == 2 and e.params.temperature == 0.6 and e.params.top_p == 0.95
    assert e.params.max_tokens == 512 and e.params.stop == ("Q:", "Question:")
    assert len(e.run) == 12 and e.folder == f"results/gsm8k/smol/{e.run}"


def test_run_key_ignores_num_samples_and_resources_but_not_sampling():
    run = {e.dataset: e.run for e in load_config(BASE)}
    assert {e.dataset: e.run for e in load_config(with_changes(sampling__num_samples=64))} == run
    # Engine-size options of a backend stay out of the key (each backend accepts its own options:
    # tensor_parallel_size is vLLM's).
    vllm = with_changes(models__smol={"backend": "vllm", "path": "embedded:smollm2-135m"})
    gpu = with_changes(
        models__smol={"backend": "vllm", "path": "embedded:smollm2-135m", "tensor_parallel_size": 4}
    )
    assert {e.dataset: e.run for e in load_config(gpu)} == {
        e.dataset: e.run for e in load_config(vllm)
    }
    with pytest.raises(ConfigError, match=r"models\.smol\.tensor_parallel_size: unknown key"):
        load_config(with_changes(models__smol__tensor_parallel_size=4))
    for key, value in [
        ("sampling__temperature", 0.8),
        ("sampling__seed", 1),
        ("sampling__max_tokens", 100),
        ("sampling__top_p", 0.5),
        ("sampling__shard_size", 2),
        ("datasets__gsm8k__limit", 5),
        ("datasets__gsm8k__num_fewshot", 0),
        ("sampling__stop", ["###"]),
    ]:
        changed = {e.dataset: e.run for e in load_config(with_changes(**{key: value}))}
        assert changed["gsm8k"] != run["gsm8k"], key


def test_run_keys_of_existing_configs_do_not_drift():
    # Pinned: a change here orphans every finished shard of every user. New optional keys must
    # stay out of the key when unset; a deliberate change bumps RUN_KEY_VERSION (or a backend's
    # sampler_version: the transformers backend's 2, its decoder loop, changed these two).
    assert {e.dataset: e.run for e in load_config(BASE)} == {
        "gsm8k": "45a9e1451d9d",
        "math": "610f818074e3",
    }
    vllm = with_changes(models__smol={"backend": "vllm", "path": "embedded:smollm2-135m"})
    assert {e.dataset: e.run for e in load_config(vllm)} == {
        "gsm8k": "c65875f074da",
        "math": "1ae61f8514cf",
    }


def test_rows_select_exactly_those_problems_and_enter_the_run_key():
    spec = DatasetSpec.from_config("gsm8k", {"rows": [42, 7, 1318]})
    problems = get_dataset(spec).problems()
    assert [p.problem_id for p in problems] == ["gsm8k-00007", "gsm8k-00042", "gsm8k-01318"]
    everything = get_dataset(DatasetSpec(name="gsm8k")).problems()
    assert problems == [everything[7], everything[42], everything[1318]]
    cfg = with_changes(datasets__gsm8k={"rows": [7, 42]})
    runs = {e.dataset: e.run for e in load_config(cfg)}
    assert (
        runs["gsm8k"]
        != {e.dataset: e.run for e in load_config(with_changes(datasets__gsm8k={}))}["gsm8k"]
    )
    assert runs == {
        e.dataset: e.run for e in load_config(with_changes(datasets__gsm8k={"rows": [42, 7]}))
    }
    with pytest.raises(
        DatasetError, match=r"rows \[5000\] are out of range \(the source has 1319 rows"
    ):
        get_dataset(DatasetSpec.from_config("gsm8k", {"rows": [3, 5000]})).problems()


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        ([1, 1], {}, "datasets.gsm8k.rows"),
        ([], {}, "datasets.gsm8k.rows"),
        ([-1], {}, "datasets.gsm8k.rows"),
        (["3"], {}, "datasets.gsm8k.rows"),
        ([1, 2], {"limit": 2}, "datasets.gsm8k: give either rows or limit, not both"),
    ],
)
def test_bad_rows_are_named(rows, extra, message):
    cfg = with_changes(datasets__gsm8k={"rows": rows, **extra})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(cfg)


def test_overrides_dataset_model_and_experiment_levels():
    cfg = with_changes(datasets__math__sampling={"temperature": 0.9})
    cfg["experiments"] = [{"dataset": "math", "model": "smol", "sampling": {"max_tokens": 7}}]
    (e,) = load_config(cfg)
    assert (e.dataset, e.params.temperature, e.params.max_tokens) == ("math", 0.9, 7)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (with_changes(datasets__gsm8k__limt=3), "datasets.gsm8k.limt: unknown key 'limt'"),
        (with_changes(sampling__temperature="hot"), "sampling.temperature"),
        (with_changes(sampling__num_samples=6), "sampling.num_samples"),
        (with_changes(models__smol__backend="tgi"), "models.smol.backend"),
        ({**BASE, "datasets": {"gsm9k": {}}}, "unknown dataset 'gsm9k'"),
        ({**BASE, "experiments": [{"dataset": "gsm8k", "model": "nope"}]}, "experiments.0.model"),
        ({"models": BASE["models"]}, "'datasets' is a required property"),
    ],
)
def test_config_errors_name_the_key(cfg, message):
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert message in str(err.value)


def test_hashes_are_stable_and_order_free():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert derive_seed("run", "p", 3, 0) == derive_seed("run", "p", 3, 0)
    assert derive_seed("run", "p", 3, 0) != derive_seed("run", "p", 4, 0)
    assert 0 <= derive_seed("x") < 2**63


def test_jsonl_zst_round_trip_is_byte_stable(tmp_path):
    rows = [{"b": 1, "a": "ü"}, {"a": None}]
    write_jsonl(tmp_path / "x.jsonl.zst", rows)
    write_jsonl(tmp_path / "y.jsonl.zst", rows)
    assert (tmp_path / "x.jsonl.zst").read_bytes() == (tmp_path / "y.jsonl.zst").read_bytes()
    assert read_jsonl(tmp_path / "x.jsonl.zst") == rows


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert not target.exists() and os.listdir(tmp_path) == []


def test_records_validate_fields():
    with pytest.raises(RecordError, match="text"):
        Sample.from_dict({"problem_id": "p", "sample_index": 0})
    with pytest.raises(RecordError, match="sample_index"):
        Sample.from_dict({"problem_id": "p", "sample_index": -1, "text": ""})
    with pytest.raises(RecordError, match="status"):
        Verdict(problem_id="p", sample_index=0, status="maybe")
    p = Problem("p", "gsm8k", "prompt", "3")
    assert Problem.from_dict(p.to_dict()) == p


def test_gsm8k_and_math_problems_are_canonical():
    gsm = get_dataset(DatasetSpec(name="gsm8k", limit=5, subset_seed=1)).problems()
    assert len(gsm) == 5 and len({p.problem_id for p in gsm}) == 5
    assert gsm == get_dataset(DatasetSpec(name="gsm8k", limit=5, subset_seed=1)).problems()
    assert gsm != get_dataset(DatasetSpec(name="gsm8k", limit=5, subset_seed=2)).problems()
    first = get_dataset(DatasetSpec(name="gsm8k")).problems()[0]
    assert first.problem_id == "gsm8k-00000" and first.reference == "18"
    assert "<<" not in first.prompt and "####" in first.prompt  # cleaned few-shot exemplars
    assert first.chat[-1] == {
        "role": "user",
        "content": first.prompt.split("Question: ")[-1].split("\nAnswer:")[0],
    }
    math = get_dataset(DatasetSpec(name="math")).problems()
    assert len(math) == 5000 and math[0].reference == "2"
    assert math[0].prompt.count("I hope it is correct.") == 4 and math[0].prompt.endswith(
        "Solution:"
    )


def test_hub_source_reads_local_dataset_folders(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [
        {"question": f"What is {i}+1?", "answer": f"{i}+1={i + 1}\n#### {i + 1}"} for i in range(6)
    ]
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DatasetSpec(
        name="gsm8k", source="hub", hub={"path": str(folder), "name": None, "split": "test"}
    )
    problems = get_dataset(spec).problems()
    assert [p.reference for p in problems] == ["1", "2", "3", "4", "5", "6"]
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(saved))
    spec = DatasetSpec(name="gsm8k", source="hub", limit=2, hub={"path": str(saved)})
    assert len(get_dataset(spec).problems()) == 2


def test_malformed_rows_name_row_and_field(tmp_path):
    pytest.importorskip("datasets")
    folder = tmp_path / "bad"
    folder.mkdir()
    rows = [
        {"question": "ok?", "answer": "#### 1"},
        {"question": "no answer here", "answer": "forty"},
    ]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = DatasetSpec(name="gsm8k", source="hub", hub={"path": str(folder)})
    with pytest.raises(DatasetError, match=r"malformed row 1: .*####"):
        get_dataset(spec).problems()
    rows[1] = {"question": "where is the answer field"}
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError, match=r"malformed row 1: .*field 'answer'"):
        get_dataset(spec).problems()
    missing = DatasetSpec(name="gsm8k", source="hub", hub={"path": str(tmp_path / "nope")})
    with pytest.raises(DatasetError, match="could not load"):
        get_dataset(missing).problems()


def test_jsonl_is_read_in_bounded_pieces_and_damage_is_still_caught(tmp_path):
    """`iter_jsonl` decompresses as it goes: lines longer than a read, many lines, a truncated
    file and a flipped byte all behave as a whole-file read would."""
    import zstandard

    from monkeyflow.io import CorruptFileError, _raw_lines, iter_jsonl, write_jsonl

    rows = [{"i": i, "text": "y" * (3 << 20 if i == 2 else i)} for i in range(5000)]
    path = tmp_path / "s.jsonl.zst"
    write_jsonl(path, rows)
    assert list(iter_jsonl(path)) == rows
    assert len(list(_raw_lines(path, chunk_bytes=7))) == 5000
    data = path.read_bytes()
    (tmp_path / "cut.jsonl.zst").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="cut.jsonl.zst"):
        list(iter_jsonl(tmp_path / "cut.jsonl.zst"))
    flipped = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(b'{"a": 1}\n'))
    flipped[-1] ^= 1
    (tmp_path / "bad.jsonl.zst").write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match="bad.jsonl.zst"):
        list(iter_jsonl(tmp_path / "bad.jsonl.zst"))
