"""A regression table for the MATH verifier: (category, reference, completion, expected).

The completions are written in the shapes models produce (the Minerva few-shot line, `\\boxed`
answers with intermediate boxes before them, "**Final Answer**" headings with display math,
"The answer is: X" (MetaMath style), several boxes for a multi-part answer, decimal commas,
units, percentages), each with the verdict a careful human grader gives: `correct` when the
stated final answer equals the reference, `incorrect` for near misses. The labels were written
from the problems' meaning, not from what the verifier returns; `bench/math_verifiers.py` prints
agreement and false positives per category, and tests/unit/test_math_regression.py pins them.
"""

from __future__ import annotations

# The shapes a final answer X is stated in (reasoning text around it; `{X}` is replaced).
REASONING = (
    "We set up the equation from the problem statement and simplify step by step. "
    "Collecting terms and checking the constraints gives the value below."
)
SHAPES: dict[str, str] = {
    "minerva line": REASONING + "\nFinal Answer: The final answer is ${X}$. I hope it is correct.",
    "boxed sentence": REASONING + " Therefore, the answer is $\\boxed{{X}}$.",
    "boxed display": REASONING + "\n\nThus\n\\[\n\\boxed{{X}}\n\\]",
    "final answer heading": REASONING + "\n\n**Final Answer**\n\\[\n\\boxed{{X}}\n\\]",
    "llama final answer": REASONING
    + "\n\nTherefore, the final answer is: $\\boxed{{X}}$. I hope it is correct.",
    "metamath answer is": REASONING + "\nThe answer is: {X}",
    "box then check": REASONING
    + " So the result is $\\boxed{{X}}$.\n\nLet me double-check this: substituting back, both "
    "sides agree, so the answer is correct.",
    "intermediate box then final line": "First, the auxiliary quantity is $\\boxed{{W}}$. "
    + REASONING
    + "\nFinal Answer: The final answer is ${X}$. I hope it is correct.",
    "intermediate box then final box": "A first attempt gives $\\boxed{{W}}$, but that ignores "
    "the second condition. " + REASONING + " Hence the answer is $\\boxed{{X}}$.",
    "minerva display math": REASONING
    + "\nFinal Answer: The final answer is\n\\[\n{X}\n\\]\nI hope it is correct.",
}
# Shapes that write X inside `$...$` or a box, where a bare LaTeX answer is natural.
MATH_SHAPES = tuple(SHAPES)
# "The answer is: X" writes X as plain text: only plain answers there.
PLAIN_SHAPES = tuple(s for s in SHAPES if s != "metamath answer is")

# (reference, [equivalent ways a model writes it], [near misses], wrong intermediate W)
FAMILIES: list[tuple[str, str, list[str], list[str], str]] = [
    (
        "integer",
        "10455",
        ["10455", "10,455", "10{,}455", "10,\\!455", "10455.0"],
        ["10456", "10, 455", "1045", "104,55"],
        "255",
    ),
    ("integer", "-13", ["-13", "- 13", "-13.00"], ["13", "-12", "-1, 3"], "-8"),
    ("integer", "0", ["0", "0.0"], ["1", "-1"], "7"),
    (
        "integer",
        "2220",
        ["2220", "2,220", "2220\\text{ dollars}"],
        ["222", "2, 220", "22,20"],
        "30",
    ),
    (
        "fraction",
        "\\frac{14}{3}",
        ["\\frac{14}{3}", "\\dfrac{14}{3}", "14/3", "4\\frac{2}{3}"],
        ["\\frac{3}{14}", "4.6", "\\frac{14}{5}", "14, 3"],
        "2",
    ),
    (
        "fraction",
        "-\\frac{2}{3}",
        ["-\\frac{2}{3}", "\\frac{-2}{3}", "-2/3", "-\\tfrac23"],
        ["\\frac{2}{3}", "-\\frac{3}{2}", "-0.6"],
        "1",
    ),
    (
        "fraction",
        "\\frac{3}{56}",
        ["\\frac{3}{56}", "\\dfrac{3}{56}", "3/56"],
        ["\\frac{3}{65}", "\\frac{1}{56}", "0.05"],
        "8",
    ),
    ("decimal", "1.22", ["1.22", "1,22", "1.220", "1{,}22"], ["1,220", "12.2", "1.23", "122"], "2"),
    (
        "decimal",
        "1000.99",
        ["1000.99", "1000,99", "1,000.99"],
        ["100099", "1000.9", "1000, 99"],
        "5",
    ),
    ("decimal", "0.25", ["0.25", ".25", "\\frac{1}{4}", "0,25"], ["0.52", "25", "2.5"], "1"),
    ("list", "-2, 1", ["-2, 1", "1, -2", "1,-2"], ["-2", "1", "-2, 1, 3", "-21", "2, -1"], "3"),
    ("list", "1, 2, 3", ["1, 2, 3", "3, 2, 1", "1,2,3"], ["1, 2", "123", "1, 2, 4"], "6"),
    (
        "list",
        "\\frac{\\pi}{4}, \\frac{5\\pi}{4}",
        ["\\frac{\\pi}{4}, \\frac{5\\pi}{4}", "\\frac{5\\pi}{4}, \\frac{\\pi}{4}"],
        ["\\frac{\\pi}{4}", "\\frac{\\pi}{4}, \\frac{3\\pi}{4}"],
        "\\pi",
    ),
    (
        "tuple",
        "(2, 3)",
        ["(2, 3)", "(2,3)", "\\left( 2, 3 \\right)"],
        ["(3, 2)", "(2, 3, 0)", "(2, 4)"],
        "5",
    ),
    (
        "tuple",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        ["\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "(3,\\frac{\\pi}{2})"],
        ["\\left( 3, \\pi \\right)", "\\left( \\frac{\\pi}{2}, 3 \\right)", "(3, 90)"],
        "3",
    ),
    (
        "list of tuples",
        "(2, 2), (6, 2)",
        ["(2, 2), (6, 2)", "(6, 2), (2, 2)"],
        ["(2, 2)", "(2, 2), (6, 3)"],
        "4",
    ),
    (
        "interval",
        "[2,5)",
        ["[2,5)", "[2, 5)", "\\left[2, 5\\right)"],
        ["[2,5]", "(2,5)", "[2,6)"],
        "3",
    ),
    (
        "interval",
        "(-\\infty,3)\\cup(3,\\infty)",
        [
            "(-\\infty,3)\\cup(3,\\infty)",
            "(-\\infty, 3) \\cup (3, \\infty)",
            "(3, \\infty) \\cup (-\\infty, 3)",
        ],
        ["(-\\infty,3]\\cup(3,\\infty)", "(-\\infty,3)", "(-\\infty,4)\\cup(4,\\infty)"],
        "3",
    ),
    (
        "matrix",
        "\\begin{pmatrix} 3 \\\\ 2 \\\\ -6 \\end{pmatrix}",
        [
            "\\begin{pmatrix} 3 \\\\ 2 \\\\ -6 \\end{pmatrix}",
            "\\begin{pmatrix}3\\\\2\\\\-6\\end{pmatrix}",
            "\\begin{bmatrix} 3 \\\\ 2 \\\\ -6 \\end{bmatrix}",
        ],
        [
            "\\begin{pmatrix} 3 \\\\ 2 \\\\ 6 \\end{pmatrix}",
            "\\begin{pmatrix} 2 \\\\ 3 \\\\ -6 \\end{pmatrix}",
        ],
        "7",
    ),
    (
        "matrix",
        "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
        [
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        ],
        [
            "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}",
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}",
        ],
        "10",
    ),
    (
        "units",
        "42",
        ["42", "42\\text{ inches}", "42 \\text{ inches}", "42\\text{ in}"],
        ["43\\text{ inches}", "21\\text{ inches}", "4.2"],
        "21",
    ),
    (
        "units",
        "5",
        ["5", "5\\text{ cm}", "5 \\text{ cm}", "5\\text{ cm}^2", "5 cm"],
        ["6\\text{ cm}", "25\\text{ cm}^2", "0.5"],
        "9",
    ),
    ("percent", "25\\%", ["25\\%", "25", "25%", "25 \\%"], ["2.5\\%", "75\\%", "26\\%"], "75"),
    (
        "degrees",
        "90^\\circ",
        ["90^\\circ", "90", "90^{\\circ}", "90°"],
        ["45^\\circ", "180^\\circ"],
        "45",
    ),
    (
        "expression",
        "x^2+33x-33",
        ["x^2+33x-33", "x^2 + 33x - 33", "-33 + 33x + x^2"],
        ["x^2+33x+33", "x^2-33x-33", "x^2+33"],
        "37",
    ),
    ("expression", "p - q", ["p - q", "p-q", "-q + p"], ["q - p", "p + q", "p"], "q"),
    (
        "radical",
        "3\\sqrt{13}",
        ["3\\sqrt{13}", "\\sqrt{117}", "3 \\sqrt{13}", "\\sqrt{13} \\cdot 3"],
        ["3", "13\\sqrt{3}", "\\sqrt{13}", "3\\sqrt{14}"],
        "117",
    ),
    (
        "radical",
        "\\sqrt{51}",
        ["\\sqrt{51}", "\\sqrt {51}", "51^{1/2}"],
        ["51", "\\sqrt{15}", "7"],
        "10",
    ),
    (
        "pi",
        "\\frac{\\pi}{2}",
        ["\\frac{\\pi}{2}", "\\pi/2", "\\dfrac{\\pi}{2}", "0.5\\pi"],
        ["\\pi", "\\frac{\\pi}{3}", "2\\pi"],
        "\\pi",
    ),
    (
        "text",
        "\\text{Evelyn}",
        ["\\text{Evelyn}", "Evelyn", "\\textbf{Evelyn}"],
        ["\\text{Carla}", "\\text{Briana}"],
        "\\text{Carla}",
    ),
    (
        "choice",
        "\\text{(C)}",
        ["\\text{(C)}", "(C)", "C", "\\text{C}"],
        ["(D)", "\\text{(B)}"],
        "(A)",
    ),
    ("complex", "6 - 5i", ["6 - 5i", "6-5i", "-5i + 6"], ["6 + 5i", "5 - 6i", "6"], "2 - 3i"),
    (
        "equation",
        "y = 2x + 3",
        ["y = 2x + 3", "y=3+2x", "y = 3 + 2x"],
        ["y = 2x - 3", "y = 3x + 2"],
        "2",
    ),
    ("base", "664_7", ["664_7"], ["665_7", "646_7"], "340"),
]

# Multi-part answers written with several boxes (final statement), and their near misses.
MULTI_BOX: list[tuple[str, str, str]] = [
    ("-2, 1", REASONING + " Therefore, the answers are $\\boxed{-2}$ and $\\boxed{1}$.", "correct"),
    ("-2, 1", REASONING + " The solutions are $x = \\boxed{1}$ and $x = \\boxed{-2}$.", "correct"),
    ("-2, 1", REASONING + " So $x = \\boxed{-2}$ or $x = \\boxed{1}$.", "correct"),
    ("-2, 1", REASONING + " Therefore $\\boxed{-2}$, $\\boxed{1}$.", "correct"),
    ("-2, 1", REASONING + " Therefore $\\boxed{-2}$ and $\\boxed{3}$.", "incorrect"),
    (
        "-2, 1",
        REASONING + " Therefore $\\boxed{-2}$ and $\\boxed{1}$ and $\\boxed{3}$.",
        "incorrect",
    ),
    ("1, 2, 3", "\\boxed{1} and \\boxed{2} and \\boxed{3}", "correct"),
    ("1, 2, 3", "\\boxed{1} and \\boxed{2}", "incorrect"),
    (
        "(2, 2), (6, 2)",
        REASONING + "\n\\[\n\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}\n\\]",
        "correct",
    ),
    (
        "(2, 2), (6, 2)",
        REASONING + "\n\\[\n\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 3)}\n\\]",
        "incorrect",
    ),
    ("(2, 3)", REASONING + " Hence $x = \\boxed{2}$ and $y = \\boxed{3}$.", "correct"),
    ("(2, 3)", REASONING + " Hence $x = \\boxed{3}$ and $y = \\boxed{2}$.", "incorrect"),
    (
        "(2, 3)",
        REASONING + " Hence $x = \\boxed{2}$, $y = \\boxed{3}$, $z = \\boxed{0}$.",
        "incorrect",
    ),
    (
        "\\frac{\\pi}{4}, \\frac{5\\pi}{4}",
        REASONING
        + "\n\\[\ny_1 = \\boxed{\\frac{\\pi}{4}}, \\qquad y_2 = \\boxed{\\frac{5\\pi}{4}}\n\\]",
        "correct",
    ),
    ("x+11", REASONING + " This yields $\\boxed{x+11}$ or $\\boxed{11+x}$.", "correct"),
    ("5", REASONING + " So the answer is $\\boxed{5}$.\n\n$\\boxed{5}$", "correct"),
    ("5", REASONING + " The answer is $\\boxed{5}$ or $\\boxed{6}$.", "incorrect"),
    (
        "\\left(\\tfrac32, -\\tfrac52\\right), \\left(-\\tfrac52, -\\tfrac52\\right)",
        "The foci are $\\boxed{\\left(\\frac32, -\\frac52\\right)} \\text{ and } "
        "\\boxed{\\left(-\\frac52, -\\frac52\\right)}$.",
        "correct",
    ),
    ("a = 2, b = 3", REASONING + " So $a = \\boxed{2}$ and $b = \\boxed{3}$.", "correct"),
    # An intermediate box separated by prose from the final one never counts.
    ("12", "First $\\boxed{5}$ apples are eaten. Then the rest is $\\boxed{12}$.", "correct"),
    ("5", "First $\\boxed{5}$ apples are eaten. Then the rest is $\\boxed{12}$.", "incorrect"),
    ("5, 12", "First $\\boxed{5}$ apples are eaten. Then the rest is $\\boxed{12}$.", "incorrect"),
]

# Single cases in other shapes real outputs take.
SINGLES: list[tuple[str, str, str, str]] = [
    (
        "final statement wins",
        "10455",
        "The sum of the first terms is $\\boxed{255}$. Adding the remaining block gives 10455.\n"
        "Final Answer: The final answer is $10,455$. I hope it is correct.",
        "correct",
    ),
    (
        "final statement wins",
        "255",
        "The sum of the first terms is $\\boxed{255}$. Adding the remaining block gives 10455.\n"
        "Final Answer: The final answer is $10,455$. I hope it is correct.",
        "incorrect",
    ),
    (
        "final statement wins",
        "7",
        "So $n = \\boxed{7}$.\n\nWait, I made an arithmetic error. Recomputing, the answer is $8$.",
        "incorrect",
    ),
    (
        "final statement wins",
        "8",
        "So $n = \\boxed{7}$.\n\nWait, I made an arithmetic error. Recomputing, the answer is $8$.",
        "correct",
    ),
    (
        "check after box",
        "44",
        "Therefore, $17^{-1}\\equiv \\boxed{44}\\pmod{83}$.\n\nWe may check our answer: "
        "$17\\cdot 44 = 748 = 9\\cdot 83+1 \\equiv 1\\pmod{83}$, so our answer is correct.",
        "correct",
    ),
    (
        "check after box",
        "16",
        "$n = 480/30 = \\boxed{16}$. I am confident the answer is right.",
        "correct",
    ),
    ("negated statement", "5", "One might guess 5, but the answer is not 5.", "incorrect"),
    (
        "display after final answer",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "Final Answer: The final answer is\n$$\n\\begin{pmatrix}\n1 \\\\\n2\n\\end{pmatrix}\n$$\n"
        "I hope it is correct.",
        "correct",
    ),
    (
        "display after final answer",
        "\\frac{1}{2}",
        "Final Answer:\n\\[\n\\frac{1}{2}\n\\]",
        "correct",
    ),
    (
        "display after final answer",
        "\\frac{1}{2}",
        "Final Answer:\n\\[\n\\frac{1}{3}\n\\]",
        "incorrect",
    ),
    ("plain answer", "5", "There are 5 apples left.\nThe answer is 5 apples.", "correct"),
    ("plain answer", "5", "The answer is 6 apples.", "incorrect"),
    ("plain answer", "\\text{Evelyn}", "Evelyn is fastest. The answer is Evelyn.", "correct"),
    ("plain answer", "5", "The answer is 5 or 6.", "incorrect"),
    ("no answer", "5", "I think it is five but I am not sure.", "incorrect"),
    ("no answer", "5", "The value is \\boxed{5", "incorrect"),
    ("no answer", "5", "\\boxed{5} was my first guess; the last box is \\boxed{", "incorrect"),
    (
        "truncated",
        "12",
        "Adding, $3 + 9 = \\boxed{12}$ and then we continue with the next "
        "part of the question which asks",
        "correct",
    ),
    ("fbox", "12", "So we get $\\fbox{12}$.", "correct"),
    ("bare box", "12", "So we get $\\boxed 12$.", "correct"),
    ("dollar amounts", "18.50", "She pays \\$18.50 in total.\nThe answer is: \\$18.50", "correct"),
    (
        "dollar amounts",
        "18.5",
        "Final Answer: The final answer is $\\$18.50$. I hope it is correct.",
        "correct",
    ),
    ("thousands", "1000000", "Final Answer: The final answer is $1,000,000$.", "correct"),
    ("thousands", "1000000", "Final Answer: The final answer is $1,000,00$.", "incorrect"),
    ("thousands", "32349", "\\boxed{32, 349}", "incorrect"),
    ("thousands", "32349", "\\boxed{32,349}", "correct"),
    ("thousands", "32349", "\\boxed{32{,}349}", "correct"),
]

# Normalisation near misses: no step may merge or drop a token that changes the value. All of
# these are `incorrect`.
NEAR_MISSES: list[tuple[str, str]] = [
    ("32349", "32, 349"),
    ("32349", "32 ,349"),
    ("123", "1, 23"),
    ("1000", "1, 000"),
    ("125", "12, 5"),
    ("1234", "12,34"),
    ("100099", "1000,99"),
    ("23", "2\\;3"),
    ("23", "2\\quad 3"),
    ("23", "2 \\text{ and } 3"),
    ("23", "2, 3"),
    ("2, 3", "23"),
    ("15", "1.5"),
    ("15", "1,5"),
    ("1.5", "15"),
    ("-5", "5"),
    ("5", "-5"),
    ("12", "1 2"),
    ("12", "1\\ 2"),
    ("12", "1~2"),
    ("21", "2 1"),
    ("0.5", "5"),
    ("5", ".5"),
    ("50", "5.0"),
    ("1000", "1,00,0"),
    ("10000", "10, 000"),
    ("1020", "10,20"),
    ("x+1", "x 1"),
    ("2\\sqrt{2}", "2 2"),
    ("\\frac{1}{2}", "12"),
    ("(1, 2)", "(12)"),
    ("[1, 2]", "[12]"),
    ("10", "1 0"),
    ("100", "10 0"),
    ("3, 4", "34"),
    ("34", "3 \\text{ or } 4"),
    ("5", "5 6"),
    ("56", "5 6"),
    ("6", "2 3"),
    ("\\pi r^2", "\\pi"),
    ("7", "7^2"),
    ("2", "2^\\circ 3"),
    ("45", "4 5^\\circ"),
    ("10", "10 \\text{ and } 20"),
    ("1.25", "1,250"),
    ("1250", "1,25"),
    ("1,000", "1, 000"),
]


def cases() -> list[tuple[str, str, str, str]]:
    """The whole table: (category, reference, completion, expected status)."""
    out: list[tuple[str, str, str, str]] = []
    for family, ref, equivalents, misses, intermediate in FAMILIES:
        for k, answer in enumerate(equivalents):
            shapes = MATH_SHAPES if "\\" in answer else PLAIN_SHAPES + ("metamath answer is",)
            shape = shapes[k % len(shapes)]
            # Each equivalent form in two shapes, each near miss in one.
            for s in (shape, shapes[(k + 3) % len(shapes)]):
                text = SHAPES[s].replace("{X}", answer).replace("{W}", intermediate)
                out.append((f"{family}: rewrite ({s})", ref, text, "correct"))
        for k, answer in enumerate(misses):
            shapes = MATH_SHAPES
            s = shapes[(k + 1) % len(shapes)]
            text = SHAPES[s].replace("{X}", answer).replace("{W}", intermediate)
            out.append((f"{family}: near miss ({s})", ref, text, "incorrect"))
        # The intermediate box is never the answer, even when it equals the reference.
        for s in ("intermediate box then final line", "intermediate box then final box"):
            text = SHAPES[s].replace("{X}", misses[0]).replace("{W}", ref)
            out.append(
                (f"{family}: intermediate box equals reference ({s})", ref, text, "incorrect")
            )
    for ref, text, expected in MULTI_BOX:
        out.append(("multi-box", ref, text, expected))
    for category, ref, text, expected in SINGLES:
        out.append((category, ref, text, expected))
    for ref, answer in NEAR_MISSES:
        out.append(("normalisation near miss", ref, f"\\boxed{{{answer}}}", "incorrect"))
    return out
