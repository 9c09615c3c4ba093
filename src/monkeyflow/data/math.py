"""MATH (Hendrycks et al., 2021) with the 4-shot Minerva prompt (Lewkowycz et al., 2022)."""

from __future__ import annotations

from typing import Any

from monkeyflow.data.base import Dataset, fewshot_chat, require_str
from monkeyflow.records import Problem, RecordError
from monkeyflow.text.final_answer import final_answer

# The four exemplars of the Minerva MATH prompt; each solution ends with the final-answer line
# the verifier looks for.
MINERVA_SHOTS: list[tuple[str, str]] = [
    (
        r"Find the domain of the expression  $\frac{\sqrt{x-2}}{\sqrt{5-x}}$.",
        r"The expressions inside each square root must be non-negative. Therefore, $x-2 \ge 0$, so "
        r"$x\ge2$, and $5 - x \ge 0$, so $x \le 5$. Also, the denominator cannot be equal to zero, so "
        r"$5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\boxed{[2,5)}$."
        "\nFinal Answer: The final answer is $[2,5)$. I hope it is correct.",
    ),
    (
        r"If $\det \mathbf{A} = 2$ and $\det \mathbf{B} = 12,$ then find $\det (\mathbf{A} \mathbf{B}).$",
        r"We have that $\det (\mathbf{A} \mathbf{B}) = (\det \mathbf{A})(\det \mathbf{B}) = "
        r"(2)(12) = \boxed{24}.$"
        "\nFinal Answer: The final answer is $24$. I hope it is correct.",
    ),
    (
        "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights "
        "instead, how many times must Terrell lift them in order to lift the same total weight?",
        r"If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\cdot 12\cdot20=480$ "
        r"pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a "
        r"total of $2\cdot15\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve "
        r"for $n$: \begin{align*} 30n&=480\\ \Rightarrow\qquad n&=480/30=\boxed{16} \end{align*}"
        "\nFinal Answer: The final answer is $16$. I hope it is correct.",
    ),
    (
        r"If the system of equations \begin{align*} 6x-4y&=a,\\ 6y-9x &=b. \end{align*}has a "
        r"solution $(x, y)$ where $x$ and $y$ are both nonzero, find $\frac{a}{b},$ assuming $b$ "
        "is nonzero.",
        r"If we multiply the first equation by $-\frac{3}{2}$, we obtain $$6y-9x=-\frac{3}{2}a.$$"
        r"Since we also know that $6y-9x=b$, we have $$-\frac{3}{2}a=b\Rightarrow\frac{a}{b}="
        r"\boxed{-\frac{2}{3}}.$$"
        "\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.",
    ),
]


def reference_answer(solution: str) -> str:
    """The gold answer of a MATH solution: its final answer statement (the rule the verifier
    reads completions with, `monkeyflow.text.final_answer`): usually the last `\\boxed{}`;
    the boxes of a multi-part final statement (`\\boxed{-2}$ and $\\boxed{1}`) joined by ", "."""
    found = final_answer(solution)
    if found is None or not found.text.strip():
        raise RecordError("field 'solution' has no final answer (no closed \\boxed{})")
    return found.text.strip()


class MATH(Dataset):
    name = "math"
    verifier = "math"
    bundled_file = "math/test.jsonl"
    # Where users have network: a MATH test split with `problem` and `solution` columns.
    hub_defaults = {"path": "EleutherAI/hendrycks_math", "name": "algebra", "split": "test"}
    default_fewshot = 4
    stop = ("Problem:",)
    prompt_version = "math-minerva-1"

    def to_problem(self, row: dict[str, Any], index: int) -> Problem:
        problem = require_str(row, "problem").strip()
        if isinstance(row.get("answer"), str) and row["answer"].strip():
            reference = row["answer"].strip()  # e.g. MATH-500 carries the answer separately
        else:
            reference = reference_answer(require_str(row, "solution"))
        shots = MINERVA_SHOTS[: self.num_fewshot]
        plain = "".join(f"Problem:\n{q}\n\nSolution:\n{a}\n\n" for q, a in shots)
        plain += f"Problem:\n{problem}\n\nSolution:"
        return Problem(
            problem_id=f"math-{index:05d}",
            dataset=self.name,
            prompt=plain,
            reference=reference,
            chat=fewshot_chat(None, shots, problem),
            metadata={"row": index, "level": row.get("level"), "type": row.get("type")},
        )
