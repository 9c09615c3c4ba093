"""MiniF2F-MATH (Zheng et al., 2022): the 130 MiniF2F test statements named `mathd_*`, as Lean 4 +
Mathlib theorems (the DeepSeek-Prover-V1.5 copy; `bundled/minif2f/`), to be proved in Lean.

Each problem's `metadata` holds what `monkeyflow.verify.lean` checks: `name` (the theorem),
`header` (imports, options, `open`s: elaborated once per REPL worker), `formal_statement`
(`theorem <name> ... := by`) and `stop`. The prompt is the paper's: "Write a lean4 proof ...",
`num_fewshot` complete proofs of MiniF2F *valid* statements (`minif2f_valid_few_shot.jsonl`) as
```lean4 blocks, then the statement for the model to continue. Instruct models get the same as
chat turns, each answer a code block restating the theorem with its proof.
"""

from __future__ import annotations

import functools
from typing import Any

from monkeyflow.data.base import Dataset, DatasetError, fewshot_chat, read_bundled, require_str
from monkeyflow.records import Problem, RecordError

INSTRUCTION = (
    "Write a lean4 proof to the provided formal statement. "
    "You have access to the standard mathlib4 library."
)
# The header of every bundled statement (and of the few-shot exemplars, which have none).
DEFAULT_HEADER = (
    "import Mathlib\nimport Aesop\n\nset_option maxHeartbeats 0\n\n"
    "open BigOperators Real Nat Topology Rat\n\n"
)
FEWSHOT_FILE = "minif2f/minif2f_valid_few_shot.jsonl"
NAME_PREFIX = "mathd_"  # MiniF2F-MATH: the test problems taken from the MATH dataset


def normal_statement(statement: str) -> str:
    """A formal statement ending in `:= by` and a newline (hub copies may end in `:= by sorry`,
    `:= sorry` or `:=`)."""
    text = statement.rstrip()
    for tail in ("sorry",):
        if text.endswith(tail):
            text = text[: -len(tail)].rstrip()
    if text.endswith(":="):
        text += " by"
    if not text.endswith(":= by"):
        raise RecordError("field 'formal_statement' does not end with ':= by'")
    return text + "\n"


def lean_block(body: str) -> str:
    return f"```lean4\n{body.rstrip()}\n```"


@functools.lru_cache(maxsize=1)
def fewshot_rows() -> tuple[dict[str, Any], ...]:
    return tuple(read_bundled(FEWSHOT_FILE))


class MiniF2F(Dataset):
    name = "minif2f"
    verifier = "lean"
    bundled_file = "minif2f/minif2f.jsonl"
    # The paper's copy (unverified here: no network); a local folder of the bundled layout works.
    hub_defaults = {"path": "cat-searcher/minif2f-lean4", "split": "test"}
    default_fewshot = 5  # the paper's five few-shot proofs
    stop = ("Write a lean4",)  # the paper's stop string: the next exemplar's first words
    prompt_version = "minif2f-lean4-1"
    split = "test"

    def load_rows(self) -> list[dict[str, Any]]:
        rows = super().load_rows()
        out = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            if row.get("split") not in (None, self.split):
                continue  # the bundled file holds both splits
            name = row.get("name") or row.get("id")
            if isinstance(name, str) and name.startswith(NAME_PREFIX):
                out.append(row)
        if not out:
            raise DatasetError(
                f"dataset 'minif2f': no {self.split} rows named {NAME_PREFIX}* in the source "
                "(rows need `name` or `id`, `formal_statement`, optionally `header` and `split`)"
            )
        return out

    def shots(self) -> list[tuple[str, str, str]]:
        """(informal prefix, statement, proof) of the few-shot exemplars."""
        rows = fewshot_rows()
        if self.num_fewshot > len(rows):
            raise DatasetError(
                f"datasets.minif2f.num_fewshot: at most {len(rows)} exemplars exist, got {self.num_fewshot}"
            )
        return [
            (
                r.get("informal_prefix") or "",
                normal_statement(r["formal_statement"]),
                r["formal_proof"],
            )
            for r in rows[: self.num_fewshot]
        ]

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        name = row.get("name") or row.get("id")
        if not isinstance(name, str) or not name.strip():
            raise RecordError("missing field 'name'")
        statement = normal_statement(require_str(row, "formal_statement"))
        if f"theorem {name}" not in statement:
            raise RecordError(f"field 'formal_statement' does not state theorem {name}")
        header = row.get("header") or DEFAULT_HEADER
        if not isinstance(header, str):
            raise RecordError("field 'header' must be a string")
        if not header.endswith("\n"):
            header += "\n"
        informal = row.get("informal_prefix") or ""
        shots = self.shots()
        plain = "".join(
            f"{INSTRUCTION}\n{lean_block(DEFAULT_HEADER + inf + st + proof)}\n\n"
            for inf, st, proof in shots
        )
        plain += f"{INSTRUCTION}\n```lean4\n{header}{informal}{statement}"
        chat_shots = [
            (f"{INSTRUCTION}\n{lean_block(DEFAULT_HEADER + inf + st)}", lean_block(st + proof))
            for inf, st, proof in shots
        ]
        question = f"{INSTRUCTION}\n{lean_block(header + informal + statement)}"
        return Problem(
            problem_id=f"minif2f-{name}",
            dataset=self.name,
            prompt=plain,
            reference=statement,
            chat=fewshot_chat(None, chat_shots, question),
            metadata={
                "row": index,
                "name": name,
                "header": header,
                "formal_statement": statement,
                "informal_prefix": informal,
                "stop": list(self.stop),
            },
        )
