"""Shared fixtures: the embedded model, converted once per machine, and tiny workflow configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL_CACHE = Path(
    os.environ.get("MONKEYFLOW_TEST_CACHE", Path.home() / ".cache" / "monkeyflow-tests")
)


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    """No test leaves its environment variables to the next (the real vLLM sets LD_PRELOAD to
    tcmalloc in its process; every later subprocess then ran under that allocator)."""
    from monkeyflow.sampling.vllm_backend import restore_environ

    saved = dict(os.environ)
    yield
    restore_environ(saved)


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded SmolLM2 converted to safetensors (prepared once, reused across runs)."""
    from monkeyflow.models import prepare_model

    target = MODEL_CACHE / "models" / "smollm2-135m"
    if not (target / "manifest.json").exists() or not (target / "model.safetensors").exists():
        prepare_model("embedded:smollm2-135m", target)
    return target


@pytest.fixture(scope="session")
def swebench_cache() -> Path:
    """Where the swebench verifier's tests keep environments and installed trees (built once per
    machine, like the embedded model: a pytest venv and two installed trees, ~40 MB)."""
    target = MODEL_CACHE / "swebench"
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture(scope="session")
def swebench_verdicts(tmp_path_factory) -> Path:
    """A verdict cache shared by this session's swebench tests (the unit tests and the workflow
    test judge the same gold patch with the same options: it runs once per session)."""
    return tmp_path_factory.mktemp("swebench-verdicts")
