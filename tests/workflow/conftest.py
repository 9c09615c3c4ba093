"""Fixtures of the workflow tests: the toy plugin package (a dataset, verifier and backend that
need no model, so a whole workflow runs in seconds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
from toy_plugin import install_toy_plugin  # noqa: E402


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory):
    """Environment variables that put the toy plugin (with its entry points) on the path."""
    path = install_toy_plugin(tmp_path_factory.mktemp("site"))
    return {"PYTHONPATH": ":".join(p for p in [path, os.environ.get("PYTHONPATH", "")] if p)}
