"""What the config names must exist: checked when the config is read, before any job runs."""

from __future__ import annotations

import pytest

from monkeyflow.config import ConfigError, load_config
from monkeyflow.models import ModelError, prepare_model


def config_with(model: dict) -> dict:
    return {"datasets": {"gsm8k": {"limit": 2}}, "models": {"m": model}}


def model_folder(tmp_path, *files):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("{}")
    return folder


@pytest.mark.parametrize(
    "files, message",
    [
        ((), "lacks config.json, weights (*.safetensors or pytorch_model*.bin), tokenizer files"),
        (("config.json", "tokenizer.json"), "lacks weights"),
        (
            ("config.json", "model.safetensors"),
            "lacks tokenizer files (tokenizer.json or tokenizer.model)",
        ),
    ],
)
def test_a_local_model_folder_needs_config_weights_and_tokenizer(tmp_path, files, message):
    folder = model_folder(tmp_path, *files)
    with pytest.raises(ConfigError, match=r"config error at models\.m\.path: model folder") as err:
        load_config(config_with({"backend": "transformers", "path": str(folder)}))
    assert message in str(err.value)


def test_a_complete_local_folder_passes(tmp_path):
    folder = model_folder(tmp_path, "config.json", "model.safetensors", "tokenizer.json")
    (e,) = load_config(config_with({"backend": "vllm", "path": str(folder)}))
    assert e.model == "m"


@pytest.mark.parametrize(
    "model, message",
    [
        (
            {"backend": "transformers", "path": "/nowhere/model"},
            "local model folder '/nowhere/model' does not exist",
        ),
        (
            {"backend": "vllm", "path": "./models/mine"},
            "local model folder './models/mine' does not exist",
        ),
        (
            {"backend": "transformers", "path": "embedded:llama-9000"},
            "unknown embedded model 'embedded:llama-9000'",
        ),
        (
            {"backend": "transformers", "path": "not a model id"},
            "neither an existing folder nor a Hugging Face id",
        ),
        (
            {"backend": "replay", "path": "/nowhere/released.jsonl"},
            "released samples '/nowhere/released.jsonl' do not exist",
        ),
        (
            {"backend": "replay", "path": "org/release", "tokenizer": "./tok"},
            "tokenizer './tok' does not exist",
        ),
    ],
)
def test_missing_things_are_config_errors_naming_the_key(model, message):
    with pytest.raises(ConfigError) as err:
        load_config(config_with(model))
    assert "config error at models.m.path" in str(err.value) and message in str(err.value)


def test_hub_ids_are_not_checked_offline_at_config_time():
    (e,) = load_config(
        config_with({"backend": "vllm", "path": "meta-llama/Meta-Llama-3-8B-Instruct"})
    )
    assert e.model == "m"


def test_an_unresolvable_hub_id_fails_prepare_model_and_leaves_no_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = tmp_path / "models" / "x"
    with pytest.raises(
        ModelError, match="cannot resolve the Hugging Face model 'no-such-org/no-such-model'"
    ):
        prepare_model("no-such-org/no-such-model", out)
    assert not out.exists()


def test_a_hub_id_in_the_local_cache_resolves(tmp_path, monkeypatch):
    # the layout huggingface_hub keeps under HF_HUB_CACHE
    repo = tmp_path / "hub" / "models--acme--tiny"
    (repo / "snapshots" / "0").mkdir(parents=True)
    (repo / "snapshots" / "0" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    manifest = prepare_model("acme/tiny", tmp_path / "models" / "tiny")
    assert manifest["kind"] == "hub" and (tmp_path / "models" / "tiny" / "manifest.json").exists()
