"""A third-party monkeyflow plugin, as a user would write it in their own package: one dataset,
one verifier and one sampling backend, registered only through entry points (see
`install_toy_plugin`, which puts it on a path with its package metadata)."""

from __future__ import annotations

import os
import re

from monkeyflow.data import Dataset
from monkeyflow.records import Check, Problem, Sample
from monkeyflow.sampling import Backend
from monkeyflow.verify import Verifier


class ToyArithmetic(Dataset):
    """`a + b = ?` for a, b < 10: ten problems, answers are the sums."""

    verifier = "toy-exact"
    stop = ("\n",)

    def load_rows(self):
        return [{"a": i, "b": (3 * i) % 10} for i in range(10)]

    def to_problem(self, row, index):
        question = f"{row['a']} + {row['b']} = "
        return Problem(f"toy-{index:02d}", self.name, question, str(row["a"] + row["b"]))


class ToyExact(Verifier):
    """Correct iff the answer (after "The final answer is", else the whole completion),
    stripped, equals the reference (case-folded unless told)."""

    # The version comes from the environment only so that a test can "release a fix".
    version = os.environ.get("TOY_VERIFIER_VERSION", "1")
    container = "analysis"
    options_schema = {
        "case_sensitive": {"type": "boolean", "default": True, "description": "compare case"},
        "workers": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "x-runtime": True,
            "description": "unused",
        },
    }

    def check(self, problem, completion):
        found = re.search(r"final answer is (.*?)\. I hope", completion)
        answer = (found.group(1) if found else completion).strip()
        if not self.options["case_sensitive"]:
            answer = answer.lower()
        status = "correct" if answer == problem.reference else "incorrect"
        return Check(status, extracted=answer, method="exact", detail="string match")


class ToyEcho(Backend):
    """No model: sample i of a problem is `template` with the reference answer when
    i % every == 0, else with -7777 (wrong for every dataset here)."""

    needs_weights = False
    container = "analysis"
    options_schema = {
        "every": {
            "type": "integer",
            "minimum": 1,
            "default": 2,
            "description": "how often it is right",
        },
        "template": {
            "type": "string",
            "default": " {answer}",
            "description": "the completion's text",
        },
        "speed": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "x-run-key": False,
            "description": "unused",
        },
        "delay_s": {
            "type": "number",
            "minimum": 0,
            "default": 0,
            "x-run-key": False,
            "description": "seconds to sleep per shard (a slow model, for fault tests)",
        },
    }

    def generate(self, requests, params, run):
        import time

        time.sleep(self.options["delay_s"])
        out = []
        for r in requests:
            for i in range(r.start, r.start + r.count):
                right = i % self.options["every"] == 0
                text = self.options["template"].format(
                    answer=r.problem.reference if right else "-7777"
                )
                out.append(Sample(r.problem.problem_id, i, text, 3, 1, "stop", -1.0))
        return out


ENTRY_POINTS = {
    "monkeyflow.datasets": {"toy-arith": "toy_plugin:ToyArithmetic"},
    "monkeyflow.verifiers": {"toy-exact": "toy_plugin:ToyExact"},
    "monkeyflow.backends": {"toy-echo": "toy_plugin:ToyEcho"},
}


def install_toy_plugin(folder) -> str:
    """Put this module and its distribution metadata (entry points) into `folder`, as `pip
    install` would into site-packages; returns the folder to add to sys.path / PYTHONPATH."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_plugin.py").write_text(Path(__file__).read_text())
    info = folder / "toy_plugin-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    lines = []
    for group, entries in ENTRY_POINTS.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {ref}" for name, ref in entries.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return str(folder)
