"""String canonicalisation of MATH answers, and plain-number readings.

`normalize_math_answer` only ever rewrites an answer into one with the same value under MATH's
grading conventions (units, degree signs, `\\%`, `x =` and `\\text{}` dropped; `\\dfrac` as
`\\frac`; `.5` as `0.5`; `18.50` as `18.5`): two answers with equal normal forms are equal, so a
string match is safe to call `correct`. It never merges or drops a token that carries value:

- whitespace between two letters or digits stays (one space), so `32 349` is not `32349`, `2 3`
  is not `23` and `\\pi r` is not `\\pir`; whitespace next to an operator or bracket goes;
- a comma is a thousands separator only where the grouping is unambiguous: the whole answer is
  digits in groups of three with commas and no spaces (`32,349`, `32{,}349`, `10,\\!000`);
  `32, 349` stays a list of two numbers. Elsewhere a comma separates list items.

Decimal commas (`1,22` for 1.22) are a reading of a model's answer, not a rewrite: see
`decimal_comma_reading`; `compare` applies it only where the reference is a single number.

Every step is one regex pass without nested quantifiers, or a `str` method: linear time.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNIT_WORDS = (
    "units?|square units|sq units|cubic units|cm|centimeters?|mm|m|meters?|km|kilometers?|"
    "inches|inch|in|feet|foot|ft|yards?|miles?|mph|degrees?|dollars?|cents?|hours?|hrs?|minutes?|"
    "mins?|seconds?|days?|weeks?|months?|years?|pounds?|lbs?|ounces?|oz|grams?|gm|g|kg|liters?|"
    "points?|ways|students|people|meals|edges|integers|digits|multiples|teachers|children tickets|"
    "square feet|square inches|square meters|square centimeters|sq ft|percent|per cent"
)
# Units are looked for only in the last UNIT_TAIL characters: a bounded search.
_UNIT_TAIL = 80
_TRAILING_TEXT_UNIT = re.compile(
    r"\s*\\(?:text|mbox|mathrm|textrm)\{\s*(?:" + _UNIT_WORDS + r")\s*\.?\s*\}"
    r"(?:\^\{?[23]\}?)?$",
    re.IGNORECASE,
)
_TRAILING_BARE_UNIT = re.compile(r"\s(?:" + _UNIT_WORDS + r")\.?(?:\^\{?[23]\}?)?$", re.IGNORECASE)
_TEXT_WRAPPER = re.compile(
    r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}"
)
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_SPACING = re.compile(r"(?<!\\)\\(?:[,;: ]|q?quad(?![a-zA-Z]))|~")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°")
_SHORT_NAME = re.compile(r"[a-zA-Z](?:_\{?[0-9a-zA-Z]\}?)?")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACE_THOUSANDS = re.compile(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?")
_WHITESPACE = re.compile(r"\s+")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _squeeze_whitespace(s: str) -> str:
    """Drop whitespace next to a non-alphanumeric character; one space between alphanumerics."""

    def repl(m: re.Match) -> str:
        i, j = m.start(), m.end()
        if 0 < i and j < len(s) and s[i - 1] in _ALNUM and s[j] in _ALNUM:
            return " "
        return ""

    return _WHITESPACE.sub(repl, s)


def _fix_fracs(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}` (Hendrycks' fix_fracs)."""
    parts = s.split("\\frac")
    out = [parts[0]]
    for part in parts[1:]:
        out.append("\\frac")
        if part.startswith("{") or len(part) < 2:
            out.append(part)
            continue
        a, b, rest = part[0], part[1], part[2:]
        if b == "{":
            out.append("{" + a + "}" + b + rest)
        else:
            out.append("{" + a + "}{" + b + "}" + rest)
    return "".join(out)


_SQRT_SHORT = re.compile(r"\\sqrt(?![a-zA-Z{\[])\s?([0-9a-zA-Z])")


def _strip_units(s: str) -> str:
    """`5\\text{ cm}^2`, then a bare `5 cm`, at the end of an answer that holds a digit."""
    for _ in range(2):
        head, tail = s[:-_UNIT_TAIL], s[-_UNIT_TAIL:]
        m = _TRAILING_TEXT_UNIT.search(tail) or _TRAILING_BARE_UNIT.search(tail)
        if not m:
            break
        kept = head + tail[: m.start()]
        if not re.search(r"\d", kept):
            break
        s = kept.rstrip()
    return s


def _drop_short_assignment(s: str) -> str:
    """`x = 5` and `5 = x` are the answer 5 (one `=`, a one-letter name on one side)."""
    if s.count("=") != 1:
        return s
    left, _, right = s.partition("=")
    left, right = left.strip(), right.strip()
    if left and right and _SHORT_NAME.fullmatch(left):
        return right
    if left and right and _SHORT_NAME.fullmatch(right):
        return left
    return s


def normalize_math_answer(answer: str) -> str:
    """A canonical string for a MATH answer; equal strings mean equal answers (module doc)."""
    s = answer.strip()
    s = s.replace("{,}", ",").replace("\\!", "")
    s = _SPACING.sub(" ", s)
    s = s.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _LEFT_RIGHT.sub("", s)
    s = s.replace("\\displaystyle", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    s = _strip_units(s)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = _drop_short_assignment(s)
    s = s.strip().rstrip(".").strip()
    if _THOUSANDS.fullmatch(s) or _SPACE_THOUSANDS.fullmatch(s):
        s = s.replace(",", "").replace(" ", "")
    s = _squeeze_whitespace(s)
    s = s.replace(",", ", ")  # list items: one canonical separator (and idempotence)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _fix_fracs(s)
    m = re.fullmatch(r"(-?)(\d+)/(\d+)", s)
    if m:
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    m = re.fullmatch(r"\(([A-Za-z])\)", s)  # a multiple-choice letter "(C)"
    if m:
        s = m.group(1)
    if re.fullmatch(r"-?\d+\.\d+", s) and s.endswith("0"):  # "18.50" -> "18.5", "18.00" -> "18"
        s = s.rstrip("0").rstrip(".")
    return s


_PLAIN_DECIMAL = re.compile(r"(-?)(\d+(?:\.\d*)?|\.\d+)")
_PLAIN_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}")


def plain_number(normalized: str) -> Fraction | None:
    """The exact value of a normalised answer that is a plain number (`-12`, `0.5`,
    `\\frac{3}{4}`); None for anything else (lists, expressions, words). At most 60 chars."""
    if len(normalized) > 60:
        return None
    m = _PLAIN_DECIMAL.fullmatch(normalized)
    if m:
        value = Fraction(m.group(2))
        return -value if m.group(1) else value
    m = _PLAIN_FRACTION.fullmatch(normalized)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


_DECIMAL_COMMA = re.compile(r"\$?\s*(-?\d+)(?:,|\{,\})(\d+)\s*\$?\.?")


def decimal_comma_reading(answer: str) -> str | None:
    """`1,22` -> `1.22` when an answer is one number written with a decimal comma: digits, one
    comma (or LaTeX's `{,}`), then digits that are not a group of exactly three (`32,349` is
    thirty-two thousand ...); None otherwise. Spaces around the comma make it a list."""
    m = _DECIMAL_COMMA.fullmatch(answer.strip())
    if m is None or len(m.group(2)) == 3:
        return None
    return f"{m.group(1)}.{m.group(2)}"
