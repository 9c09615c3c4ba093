"""The final answer statement of a MATH-style solution (a model's, or a reference solution's).

A solution may state answers several times (an intermediate `\\boxed{}`, a check, then the
final line), so the answer is read from its *final statement*: the last of

- a `\\boxed{...}` (method `boxed`),
- a "final answer" statement: "Final Answer: The final answer is X. I hope it is correct."
  (the Minerva line), "The final answer is X", "**Final Answer:** X", or a "Final Answer"
  heading with X on the next lines (method `minerva`),
- an "answer is / answer: X" sentence ("The answer is X.", "Answer: X"; method `answer_is`),

by position. X is the math that follows (`$..$`, `$$..$$`, `\\[..\\]` or `\\(..\\)`, over
several lines if it is display math), else the rest of the line. A statement that asserts no
value ("the answer is correct", "the answer is not 5") is not a statement of the answer.

Boxes (and math spans of one statement) that together form the final statement are one
multi-part answer: adjacent, separated only by punctuation, "and"/"or", `$` and other math
delimiters, spacing commands (`\\quad`, `\\,`, `~`, ...) or `name =` labels, as in
`\\boxed{1} and \\boxed{2}`, `$x = \\boxed{3}$ or $x = \\boxed{-1}$` or
`y_1 = \\boxed{a}, \\quad y_2 = \\boxed{b}`. An earlier box separated from the final statement
by anything else (prose, a check, another equation) is an intermediate result and never counts.

Everything runs in time linear in the text (the statement phrases are found by one regex pass;
only the last few are examined, each within a bounded window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monkeyflow.text.latex import Box, boxes, math_span_at

# How far after a statement phrase its answer may reach (display math over several lines).
STATEMENT_WINDOW = 2000
# Most boxes / math spans one multi-part answer may have, and the longest separator between two.
MAX_PARTS = 16
MAX_SEPARATOR = 80
# Statement phrases examined from the end (a hostile text may repeat "the answer is" 100,000
# times; only the last few can be its final statement).
MAX_STATEMENTS = 8

_PHRASE = re.compile(
    r"\b(?P<final>final\s+)answers?\b[ \t*]*(?:is\b|are\b|:)[ \t*]*:?"
    r"|\banswers?\b[ \t*]*(?:is\b|are\b)[ \t*]*:?"
    r"|^[ \t#*]*answers?[ \t*]*:[ \t*]*"  # "Answer:" only at the start of a line, not "our answer:"
    r"|^[ \t#*]*(?P<heading>final\s+answer)[ \t*]*:?[ \t*]*$",
    re.IGNORECASE | re.MULTILINE,
)
# One token of what may stand between two parts of one answer (matched token by token, so that
# a failing separator costs its length, never a regex backtracking over it).
_SEPARATOR_TOKEN = re.compile(
    r"\s+|[,;.:&~]|\*\*|\$\$?|\\[\[\]()]|\\\\"
    r"|\\(?:q?quad|enspace|[,;:! ])(?![A-Za-z])"
    r"|\\(?:text|mbox|textrm|textbf|mathrm)\s*\{\s*(?i:and|or|,)?\s*\}"
    r"|(?i:and|or)(?![A-Za-z])"
    r"|(?:\\[A-Za-z]+|[A-Za-z])(?:_\{?[A-Za-z0-9]+\}?)?'*(?:\([A-Za-z]\))?\s*="
)
# A plain (undelimited) statement: up to the end of the line or of the sentence.
_PLAIN_END = re.compile(r"\n|\.(?:\s|$)|\.?\s*I hope\b")
_LEADING_NUMBER = re.compile(
    r"(-?\$?\d[\d,]*(?:\.\d+)?)\s+(?!(?:and|or|plus|minus|times|over|to)\b)[A-Za-z]"
)


@dataclass(frozen=True)
class FinalAnswer:
    """The answer of a solution's final statement.

    parts: one string per box / math span of the statement (several for a multi-part answer);
    method: `boxed`, `minerva` or `answer_is`; note: how it was found, for verdict details.
    """

    parts: tuple[str, ...]
    method: str
    note: str

    @property
    def text(self) -> str:
        """The answer as one string: parts joined by ", " (a list)."""
        return ", ".join(self.parts)


@dataclass(frozen=True)
class _Statement:
    start: int
    end: int
    parts: tuple[str, ...]
    method: str
    note: str


def final_answer(text: str) -> FinalAnswer | None:
    """The answer stated last in `text` (see the module doc); None if it states none, or if
    its last box is never closed (an unfinished answer)."""
    found = boxes(text)
    last_box = found[-1] if found else None
    statement = _last_statement(text, after=last_box.start if last_box else -1)
    if statement is not None:
        return FinalAnswer(statement.parts, statement.method, statement.note)
    if last_box is None:
        return None
    if last_box.inner is None:
        return None  # the last box is unfinished: the final answer was never written
    group = _box_group(text, found)
    if not group:
        return None
    if len(group) == 1:
        note = "last \\boxed" if len(found) == 1 else f"last \\boxed of {len(found)}"
    else:
        note = f"{len(group)} adjacent \\boxed as one answer"
    return FinalAnswer(tuple(group), "boxed", note)


def _box_group(text: str, found: list[Box]) -> list[str]:
    """The contents of the last box and of the boxes before it that form one statement."""
    group: list[str] = []
    k = len(found) - 1
    while k >= 0 and len(group) < MAX_PARTS:
        box = found[k]
        if box.inner is None:
            break
        content = box.content(text).strip()
        if content:
            group.append(content)
        if k == 0:
            break
        previous = found[k - 1]
        if previous.inner is None or previous.end > box.start:
            break  # unclosed, or a box nested around this one
        gap = text[previous.end : box.start]
        if len(gap) > MAX_SEPARATOR or not _is_separator(gap):
            break
        k -= 1
    group.reverse()
    return group


def _is_separator(gap: str) -> bool:
    """Whether `gap` is only punctuation, and/or, math delimiters, spacing or `name =` labels."""
    i = 0
    while i < len(gap):
        m = _SEPARATOR_TOKEN.match(gap, i)
        if m is None or m.end() == i:
            return False
        i = m.end()
    return True


def _last_statement(text: str, after: int) -> _Statement | None:
    """The last "final answer" / "answer is" statement that states a value and starts after
    index `after` (a statement whose math holds the last box is that box's, not its own)."""
    phrases = []
    for m in _PHRASE.finditer(text):
        phrases.append(m)
        if len(phrases) > MAX_STATEMENTS:
            del phrases[0]
    for m in reversed(phrases):
        if m.start() <= after:
            return None
        statement = _read_statement(text, m)
        if statement is not None:
            return statement
    return None


def _read_statement(text: str, m: re.Match) -> _Statement | None:
    """The answer a phrase introduces: math spans joined by separators, else plain text."""
    method = "minerva" if (m.group("final") or m.group("heading")) else "answer_is"
    limit = min(len(text), m.end() + STATEMENT_WINDOW)
    i = m.end()
    while i < limit and text[i] in " \t\r\n*:":
        i += 1
    parts: list[str] = []
    end = i
    while len(parts) < MAX_PARTS:
        span = math_span_at(text, i, limit)
        if span is None:
            break
        content, end = span
        if "\\boxed" in content or "\\fbox" in content:
            return None  # the box inside is the statement; the caller reads boxes
        if content.strip():
            parts.append(content.strip())
        j = end
        nxt = _next_math(text, j, limit)
        if nxt is None or not _is_separator(text[j:nxt]):
            break
        i = nxt
    if parts:
        display = "\n" in text[m.end() : end]
        note = "final-answer statement" if method == "minerva" else "'answer is' statement"
        if len(parts) > 1:
            note += f", {len(parts)} parts"
        if display:
            note += " (display math)"
        return _Statement(m.start(), end, tuple(parts), method, note)
    if m.group("heading"):
        return None  # a heading is followed by math (or a box), not by prose
    plain = _plain_answer(text, i, limit)
    if plain is None:
        return None
    note = "final-answer statement" if method == "minerva" else "'answer is' statement"
    return _Statement(m.start(), i + len(plain), (plain,), method, note + " (plain text)")


def _next_math(text: str, j: int, limit: int) -> int | None:
    """Index of the next math delimiter within MAX_SEPARATOR characters after j."""
    stop = min(limit, j + MAX_SEPARATOR + 2)
    best = None
    for opening in ("$", "\\[", "\\("):
        k = text.find(opening, j, stop)
        if k >= 0 and (best is None or k < best):
            best = k
    return best


def _plain_answer(text: str, i: int, limit: int) -> str | None:
    """An undelimited answer after a phrase (up to the end of the line or sentence), if it
    states a value: it holds a digit, LaTeX or an operator (`p - q`), or is a single capitalised
    word, a letter, or a choice like `(C)`."""
    line_end = _PLAIN_END.search(text, i, limit)
    raw = text[i : line_end.start() if line_end else limit].strip().rstrip(".").strip()
    if not raw or len(raw) > 200:
        return None
    if re.match(r"(?i)not\b|no\b|incorrect\b|wrong\b", raw):
        return None
    number = _LEADING_NUMBER.match(raw)
    if number:  # "5 apples", "12 because ...": the number
        return number.group(1)
    if re.search(r"[\d\\+\-*/^=]", raw):
        return raw
    if re.fullmatch(r"\(?[A-Z][A-Za-z]*\)?|\(?[a-z]\)?", raw):
        return raw
    return None
