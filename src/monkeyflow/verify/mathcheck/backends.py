"""Equivalence backends: (reference, answer) -> bool. They may be slow or raise; callers run them
under a timeout (`timeouts.run_backend`), which turns slowness into `timeout` and a raise into
`error`. An answer a backend cannot read is not equal (False), never an error.

- `math_verify`: the maintained `math-verify` library (0.9). The reference is parsed as LaTeX
  math (`$reference$`). The answer likewise, except when it carries its own math delimiters
  (`$`, `\\(`, `\\[`), where math-verify's extraction from the bare string (LaTeX and plain
  expressions) reads it as written and wrapping it in `$...$` would break it.
- `sympy`: a hand-written LaTeX -> sympy translation plus `simplify(a - b) == 0`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from monkeyflow.text.latex import split_top_level as _split_top_level
from monkeyflow.verify.mathcheck.normalize import normalize_math_answer

_HAS_DELIMITERS = re.compile(r"\$|\\\(|\\\[")


def _math_verify_parse(text: str, *, answer: bool):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if answer and _HAS_DELIMITERS.search(text):
        found = parse(
            text,
            extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
            parsing_timeout=None,
        )
        if found:
            return found
    return parse(f"${text}$", parsing_timeout=None, raise_on_error=not answer)


def _math_verify_equivalent(reference: str, answer: str) -> bool:
    """math-verify 0.9 on (reference, answer) (its own timeouts off; ours wrap it)."""
    import logging

    from math_verify import verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = _math_verify_parse(reference, answer=False)  # a bad reference raises: `error`
    try:
        pred = _math_verify_parse(answer, answer=True)
    except Exception:  # noqa: BLE001 - an unreadable answer is not equal to anything
        return False
    if not gold or not pred:
        return False
    try:
        return bool(verify(gold, pred, timeout_seconds=None, raise_on_error=True))
    except Exception:  # noqa: BLE001 - what the answer's value makes sympy fail on is not equal
        return False


_SYMPY_FUNCS = {
    "sqrt": "sqrt",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "cot": "cot",
    "sec": "sec",
    "csc": "csc",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "ln": "log",
    "log": "log",
    "exp": "exp",
    "pi": "pi",
    "infty": "oo",
    "cdot": "*",
    "times": "*",
    "div": "/",
}
_SAFE_EXPR = re.compile(r"^[A-Za-z0-9+\-*/()., ]*$")
_IDENT = re.compile(r"[A-Za-z]+")
_ALLOWED_IDENTS = {
    "sqrt",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "asin",
    "acos",
    "atan",
    "log",
    "exp",
    "pi",
    "oo",
    "root",
    "Matrix",
}


def _brace_arg(s: str, i: int) -> tuple[str, int]:
    """The `{...}` group (or single character) starting at s[i]; (content, index after it)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise ValueError("missing argument")
    if s[i] != "{":
        if s[i] == "\\":
            m = re.match(r"\\[a-zA-Z]+", s[i:])
            if m:
                return s[i : i + m.end()], i + m.end()
        return s[i], i + 1
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    raise ValueError("unbalanced braces")


def _latex_to_expr(s: str) -> str:
    """A (sympy-parseable) expression string for one LaTeX math expression, or ValueError."""
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if s.startswith("\\frac", i):
            num, i = _brace_arg(s, i + 5)
            den, i = _brace_arg(s, i)
            out.append(f"(({_latex_to_expr(num)})/({_latex_to_expr(den)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            index = None
            if i < len(s) and s[i] == "[":
                close = s.index("]", i)
                index, i = s[i + 1 : close], close + 1
            arg, i = _brace_arg(s, i)
            if index is None:
                out.append(f"sqrt({_latex_to_expr(arg)})")
            else:
                out.append(f"root({_latex_to_expr(arg)},{_latex_to_expr(index)})")
        elif ch == "^":
            arg, i = _brace_arg(s, i + 1)
            out.append(f"**({_latex_to_expr(arg)})")
        elif ch == "\\":
            m = re.match(r"\\([a-zA-Z]+)", s[i:])
            if not m:
                raise ValueError(f"unsupported LaTeX at {s[i : i + 10]!r}")
            name = m.group(1)
            if name not in _SYMPY_FUNCS:
                raise ValueError(f"unsupported command \\{name}")
            out.append(f" {_SYMPY_FUNCS[name]} ")
            i += m.end()
        elif ch in "{}":
            out.append("(" if ch == "{" else ")")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Unreadable(ValueError):
    """The hand-written translator cannot read this answer (so it cannot be shown equal)."""


def _to_sympy(latex: str):
    """A sympy expression for a normalised LaTeX scalar; `_Unreadable` if it cannot be read."""
    from sympy import SympifyError
    from sympy.parsing.sympy_parser import TokenError

    try:
        return _parse_scalar(latex)
    except (ValueError, TypeError, SyntaxError, SympifyError, TokenError) as exc:
        raise _Unreadable(f"cannot read {latex!r}: {type(exc).__name__}") from None


def _parse_scalar(latex: str):
    mixed = re.fullmatch(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}", latex)
    if mixed:  # a mixed number: 6\frac{3}{4} is 27/4, not 6 * 3/4
        sign, whole, num, den = mixed.groups()
        latex = f"{sign}\\frac{{{int(whole) * int(den) + int(num)}}}{{{den}}}"
    from sympy import Symbol
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    text = _latex_to_expr(latex)
    if not _SAFE_EXPR.match(text) or re.search(r"[A-Za-z]\s*\.", text):
        raise ValueError(f"unsafe or unsupported expression {text!r}")

    def split_word(m: re.Match) -> str:  # `xy` is x*y; a longer unknown word is text, not math
        word = m.group(0)
        if word in _ALLOWED_IDENTS:
            return word
        if len(word) > 2:
            raise ValueError(f"word {word!r}")
        return "*".join(word)

    text = _IDENT.sub(split_word, text)
    local = {c: Symbol(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    from sympy import I

    local["i"] = I
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)
    return parse_expr(text, local_dict=local, transformations=transformations, evaluate=True)


def _sympy_scalar_equal(a: str, b: str) -> bool:
    from sympy import Float, N, nsimplify, simplify

    if a == b:
        return True
    try:
        if a.count("=") == 1 and b.count("=") == 1:
            # The same equation: lhs - rhs proportional (sides swapped, both sides scaled).
            (la, ra), (lb, rb) = a.split("="), b.split("=")
            x = _to_sympy(la) - _to_sympy(ra)
            y = _to_sympy(lb) - _to_sympy(rb)
            if x == 0 or y == 0:
                return x == y
            ratio = simplify(x / y)
            return bool(ratio.is_number and ratio != 0 and ratio.is_finite)
        if "=" in a or "=" in b:
            return False
        x, y = _to_sympy(a), _to_sympy(b)
    except _Unreadable:  # e.g. words, or LaTeX the translator lacks: the string test was final
        return False
    if not x.free_symbols and not y.free_symbols:
        if x.has(Float) or y.has(Float):  # a decimal on either side: close enough
            vx, vy = complex(N(x)), complex(N(y))
            return abs(vx - vy) <= 1e-6 * max(1.0, abs(vx))
        x, y = nsimplify(x), nsimplify(y)
    diff = simplify(x - y)
    return bool(diff == 0)


def _sympy_equivalent(reference: str, answer: str) -> bool:
    """Hand-written backend: normalise, split tuples/lists/matrices, `simplify(a - b) == 0`."""
    a, b = normalize_math_answer(reference), normalize_math_answer(answer)
    if a == b:
        return True
    ma = re.fullmatch(r"\\begin\{[pb]matrix\}(.*)\\end\{[pb]matrix\}", a)
    mb = re.fullmatch(r"\\begin\{[pb]matrix\}(.*)\\end\{[pb]matrix\}", b)
    if ma or mb:
        if not (ma and mb):
            return False
        rows_a = [r.split("&") for r in ma.group(1).split("\\\\")]
        rows_b = [r.split("&") for r in mb.group(1).split("\\\\")]
        if [len(r) for r in rows_a] != [len(r) for r in rows_b]:
            return False
        return all(
            _sympy_scalar_equal(x, y)
            for ra, rb in zip(rows_a, rows_b, strict=True)
            for x, y in zip(ra, rb, strict=True)
        )
    brackets = "()[]"
    open_a, close_a = (a[0], a[-1]) if a and a[0] in brackets and a[-1] in brackets else ("", "")
    open_b, close_b = (b[0], b[-1]) if b and b[0] in brackets and b[-1] in brackets else ("", "")
    inner_a = a[1:-1] if open_a else a
    inner_b = b[1:-1] if open_b else b
    parts_a, parts_b = _split_top_level(inner_a), _split_top_level(inner_b)
    if len(parts_a) > 1 or len(parts_b) > 1:
        if len(parts_a) != len(parts_b) or (open_a, close_a) != (open_b, close_b):
            return False
        if open_a:  # a tuple or an interval: in order
            return all(_sympy_scalar_equal(x, y) for x, y in zip(parts_a, parts_b, strict=True))
        remaining = list(parts_b)  # a bare list of answers: in any order
        for x in parts_a:
            for k, y in enumerate(remaining):
                if _sympy_scalar_equal(x, y):
                    del remaining[k]
                    break
            else:
                return False
        return True
    return _sympy_scalar_equal(a, b)


BACKENDS: dict[str, Callable[[str, str], bool]] = {
    "math_verify": _math_verify_equivalent,
    "sympy": _sympy_equivalent,
}


def resolve_backend(name: str) -> Callable[[str, str], bool]:
    """An equivalence backend by name (`BACKENDS`), or any `"package.module:function"` taking
    (reference, answer) and returning a bool (how tests put slow or crashing checkers in a worker)."""
    if name in BACKENDS:
        return BACKENDS[name]
    if ":" in name:
        from monkeyflow.registry import load_reference

        fn = load_reference(name)
        if callable(fn):
            return fn  # type: ignore[return-value]
    raise ValueError(f"unknown MATH equivalence backend {name!r}; known: {sorted(BACKENDS)}")
