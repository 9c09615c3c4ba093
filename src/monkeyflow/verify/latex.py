"""LaTeX helpers shared by the MATH dataset (reference answers) and the MATH verifier."""

from __future__ import annotations


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced; None if none.

    `\\boxed 5` (no braces) yields `5`.
    """
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    start = idx + (len("\\boxed") if text.startswith("\\boxed", idx) else len("\\fbox"))
    rest = text[start:]
    if rest.startswith(" ") and not rest.lstrip().startswith("{"):
        token = rest.strip().split("$")[0].split()[0] if rest.strip() else ""
        return token or None
    if not rest.lstrip().startswith("{"):
        return None
    pos = start + (len(rest) - len(rest.lstrip()))
    depth = 0
    for i in range(pos, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : i]
    return None  # unbalanced: an unfinished answer
