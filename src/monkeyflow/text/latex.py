"""LaTeX scanning shared by the MATH dataset (reference answers) and the MATH verifier.

Every function here runs in time linear in the length of its input (one pass with a stack, or
`str.find` jumps), so that a hostile 1 MB completion costs milliseconds, not minutes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_BOX_OR_BRACE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])|(?<!\\)[{}]")


class Box(NamedTuple):
    """One `\\boxed{...}` (or `\\fbox{...}`) in a text.

    start: index of the backslash; end: index just past the closing brace (or past the bare
    token of `\\boxed 5`); inner: (start, end) of what is inside, None if the box is never
    closed. Offsets, not strings, so that 100,000 nested boxes cost no copies.
    """

    start: int
    end: int
    inner: tuple[int, int] | None

    def content(self, text: str) -> str | None:
        """What is inside the box (None if it is never closed)."""
        return None if self.inner is None else text[self.inner[0] : self.inner[1]]


def boxes(text: str) -> list[Box]:
    """Every `\\boxed`/`\\fbox` of `text` in order, braces matched in one pass (O(len(text))).

    `\\boxed 5` (no braces) holds the token up to the next space or `$`. An unclosed box (an
    unfinished answer) has inner None and ends at the end of the text.
    """
    # [start, end, inner_start, inner_end] per box while scanning (lists: a 1 MB text of nested
    # boxes makes 100,000+ of them, and a frozen dataclass per update cost seconds)
    found: list[list] = []
    open_boxes: dict[int, list] = {}  # depth of a box's opening brace -> its entry
    pending: list | None = None  # a box waiting for its `{`
    depth = 0
    for m in _BOX_OR_BRACE.finditer(text):
        token = m.group(0)
        if pending is not None:
            if token == "{" and (m.start() == pending[1] or text[pending[1] : m.start()].isspace()):
                open_boxes[depth] = pending
                pending[1] = m.end()
            else:
                _close_bare(text, pending)
            pending = None
            if token == "{":
                depth += 1
                continue
        if token == "{":
            depth += 1
        elif token == "}":
            if depth == 0:
                continue  # a stray closing brace
            depth -= 1
            box = open_boxes.pop(depth, None)
            if box is not None:
                box[2], box[3] = box[1], m.start()
                box[1] = m.end()
        else:
            pending = [m.start(), m.end(), None, None]
            found.append(pending)
            if not text.startswith("{", m.end()) and not text[m.end() : m.end() + 1].isspace():
                _close_bare(text, pending)
                pending = None
    if pending is not None:
        _close_bare(text, pending)
    # Boxes still open at the end of the text stay unclosed (inner None, end = len(text)).
    n = len(text)
    return [
        Box(b[0], b[1], (b[2], b[3])) if b[2] is not None else Box(b[0], n, None) for b in found
    ]


def _close_bare(text: str, box: list) -> None:
    """`\\boxed 5`: the token after the spaces, up to the next space or `$`."""
    i = box[1]
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text) or text[i] in "{\n":
        return  # `\boxed` then a brace (handled by the caller) or nothing: not a bare box
    j = i
    while j < len(text) and not text[j].isspace() and text[j] != "$":
        j += 1
    if j > i:
        box[1], box[2], box[3] = j, i, j


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`; None if none or unclosed."""
    found = boxes(text)
    return found[-1].content(text) if found else None


# Math delimiters: opening -> closing.
_MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def math_span_at(text: str, i: int, limit: int) -> tuple[str, int] | None:
    """(content, end) of the math span (`$..$`, `$$..$$`, `\\[..\\]`, `\\(..\\)`) opening at
    text[i]; None if none opens there or it does not close before index `limit`."""
    for opening, closing in _MATH_DELIMITERS:
        if text.startswith(opening, i):
            start = i + len(opening)
            j = start
            while True:
                j = text.find(closing, j, limit)
                if j < 0:
                    return None
                if closing == "$" and j > 0 and text[j - 1] == "\\":
                    j += 1  # an escaped dollar sign (`\$5`) inside inline math
                    continue
                return text[start:j], j + len(closing)
    return None


def split_top_level(s: str, sep: str = ",") -> list[str]:
    """`s` split at `sep` outside (), [], {} (and `\\{ \\}`); one pass."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif ch == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts
