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
    saved = dict(os.environ)
    yield
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded SmolLM2 converted to safetensors (prepared once, reused across runs)."""
    from monkeyflow.models import prepare_model

    target = MODEL_CACHE / "models" / "smollm2-135m"
    if not (target / "manifest.json").exists() or not (target / "model.safetensors").exists():
        prepare_model("embedded:smollm2-135m", target)
    return target
