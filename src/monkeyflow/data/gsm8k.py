"""GSM8K (Cobbe et al., 2021): grade-school word problems with a numeric answer after `####`."""

from __future__ import annotations

import functools
import re
from typing import Any

from monkeyflow.data.base import Dataset, fewshot_chat, read_bundled, require_str
from monkeyflow.records import Problem, RecordError

_CALC = re.compile(r"<<[^<>]*>>")


def clean_solution(answer: str) -> str:
    """A GSM8K solution without the calculator annotations `<<...>>`."""
    return _CALC.sub("", answer).strip()


def reference_answer(answer: str) -> str:
    """The number after `####` in a GSM8K solution, commas removed."""
    if "####" not in answer:
        raise RecordError("field 'answer' has no '#### <number>' line")
    ref = answer.split("####")[-1].strip().replace(",", "")
    if not ref:
        raise RecordError("field 'answer' has an empty '####' answer")
    return ref


class GSM8K(Dataset):
    name = "gsm8k"
    verifier = "gsm8k"
    bundled_file = "gsm8k/test.jsonl"
    hub_defaults = {"path": "openai/gsm8k", "name": "main", "split": "test"}
    default_fewshot = 2
    # The paper's stop strings for GSM8K; chat models also stop at their end-of-turn token.
    stop = ("Q:", "Question:")
    prompt_version = "gsm8k-qa-1"
    instruction = (
        "Solve the math word problem. Reason step by step, then give the final answer on its own "
        "line as '#### <number>'."
    )

    @functools.cached_property
    def _shots(self) -> list[tuple[str, str]]:
        # Fixed exemplars from the train split (the first N rows): the same prefix for every
        # problem, which prefix caching turns into shared work.
        train = read_bundled("gsm8k/train.jsonl")[: self.num_fewshot]
        return [(row["question"].strip(), clean_solution(row["answer"])) for row in train]

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        question = require_str(row, "question").strip()
        reference = reference_answer(require_str(row, "answer"))
        plain = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in self._shots)
        plain = f"{self.instruction}\n\n{plain}Question: {question}\nAnswer:"
        return Problem(
            problem_id=f"gsm8k-{index:05d}",
            dataset=self.name,
            prompt=plain,
            reference=reference,
            chat=fewshot_chat(self.instruction, self._shots, question),
            metadata={"row": index},
        )
