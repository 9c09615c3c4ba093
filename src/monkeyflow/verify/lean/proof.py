"""Lean proof text: read the proof out of a completion, screen it, build the command Lean checks,
and judge Lean's answer. Pure functions (no Lean here); `monkeyflow.verify.lean.repl` and
`.server` carry the commands to Lean and back.

The command Lean elaborates (in the environment of the problem's header) is always

    <the problem's own statement, up to and including `:= by`><the extracted proof>

    #print axioms <theorem name>

so the theorem checked is the one given, whatever the completion restated. A proof is correct
when the command gives no error, no `sorry` (neither in `sorries` nor as the "declaration uses
'sorry'" warning) and `#print axioms` reports only `ALLOWED_AXIOMS`. Before Lean sees it, a
proof is screened (`screen_proof`): it may hold tactics and terms only, never a command or a
metaprogram that could change what is checked (see docs/lean.md for the threat table).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monkeyflow.records import Check

ALLOWED_AXIOMS = ("propext", "Classical.choice", "Quot.sound")

# -- lexing: what is code and what is comment or literal -------------------------------------------
_IDENT_CHAR = r"[\w'!?]"
# Where a comment, string, char literal, raw string or «quoted name» may start.
_SPECIAL = re.compile(r"--|/-|\"|'|«|r#*\"")
_COMMENT_MARK = re.compile(r"/-|-/")
_RAW_OPEN = re.compile(r'r(#*)"')
_CHAR_LITERAL = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")


def mask(text: str, strings: bool = True) -> str:
    """`text` with every comment (`--`, nested `/- -/`), string, char literal and «quoted name»
    replaced by spaces (newlines kept), so that searching the result for tokens finds only code.
    Same length as `text`: a position in one is the same position in the other. With
    `strings=False`, string and char literals stay (an interpolated `s!"{...}"` holds code)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(start: int, end: int) -> None:
        for j in range(start, min(end, n)):
            if out[j] != "\n":
                out[j] = " "

    # Jump from one place that may open a comment or literal to the next (linear in the text:
    # every match and slice below starts at a position, never copies the rest of the text).
    while i < n:
        found = _SPECIAL.search(text, i)
        if found is None:
            break
        i = found.start()
        c = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/-", i):
            depth, j = 1, i + 2
            while j < n and depth:
                nxt = _COMMENT_MARK.search(text, j)
                if nxt is None:
                    j = n
                    break
                depth += 1 if nxt.group() == "/-" else -1
                j = nxt.end()
            blank(i, j)  # an unterminated comment runs to the end (Lean reports it)
            i = j
        elif c == "r":
            raw = _RAW_OPEN.match(text, i)
            if raw is None or (i > 0 and re.match(_IDENT_CHAR, text[i - 1])):
                i += 1
                continue
            hashes = raw.group(1)
            end = text.find('"' + hashes, raw.end())
            end = n if end < 0 else end + 1 + len(hashes)
            if strings:
                blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if strings:
                blank(i, j + 1)
            i = j + 1
        elif c == "'" and (i == 0 or not re.match(_IDENT_CHAR, text[i - 1])):
            m = _CHAR_LITERAL.match(text, i)
            if m:
                if strings:
                    blank(i, m.end())
                i = m.end()
            else:
                i += 1
        elif c == "«":
            end = text.find("»", i)
            end = n if end < 0 else end + 1
            blank(i, end)
            i = end
        else:
            i += 1
    return "".join(out)


def _word(words: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![\w'.!?])(?:{alternatives})(?![\w'!?])")


_DECLARATION = _word(["theorem", "lemma"])
_FENCE = "```"

# -- extraction --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    """A proof read from a completion: `proof` is the text that follows the statement's `by`
    (None: no proof found); `method` how it was found (`continuation`: the completion continues
    the prompt's statement; `fenced`: the same inside a code block; `restated`: the completion
    restated the theorem; `restated_changed`: it restated a different statement, and the given
    one is checked); `note` says more."""

    proof: str | None
    method: str | None
    note: str = ""


def _normal(text: str) -> str:
    return " ".join(mask(text).split())


def _head_of(statement: str) -> str:
    """The statement without its trailing `:= by` (what a restatement is compared with)."""
    masked = mask(statement)
    at = _top_level_assign(masked, 0)
    return statement[:at] if at is not None else statement


def _top_level_assign(masked: str, start: int) -> int | None:
    """Position of the first `:=` at bracket depth 0 at or after `start` (in masked text)."""
    depth = 0
    i = start
    while i < len(masked):
        c = masked[i]
        if c in "([{⦃⟨":
            depth += 1
        elif c in ")]}⦄⟩":
            depth = max(0, depth - 1)
        elif depth == 0 and masked.startswith(":=", i):
            return i
        i += 1
    return None


def _is_preamble(before: str) -> bool:
    """Whether masked text before a theorem is only chat/markdown preamble: prose before a
    code fence, then only fences, blank lines, imports, `open` and `set_option` lines."""
    fence = before.find(_FENCE)
    region = before[fence:] if fence >= 0 else before
    for line in region.splitlines():
        s = line.strip()
        if s and not s.startswith((_FENCE, "import ", "open ", "set_option ")):
            return False
    return True


def _cut(original: str, masked: str, start: int) -> str:
    """original[start:] up to the next code fence or `theorem`/`lemma` outside comments."""
    end = len(original)
    fence = masked.find(_FENCE, start)
    if fence >= 0:
        end = fence
    decl = _DECLARATION.search(masked, start)
    if decl and decl.start() < end:
        end = decl.start()
    return original[start:end]


_OPENING_FENCE = re.compile(r"\A\s*```[ \t]*[\w+#.-]*[^\n]*\n")


def extract_proof(
    completion: str, statement: str, name: str, stop: Sequence[str] = ()
) -> Extracted:
    """The proof in a completion of a prompt that ends with `statement` (which ends `:= by`).

    The proof is the text after the statement's `:= by` when the completion restates the
    theorem (a first `theorem`/`lemma` with nothing but a chat preamble before it: prose, a code
    fence, imports), else the completion itself; cut at the next `theorem`/`lemma`, a code fence
    or a stop string. `name` is the given theorem's name (a restatement under another name is a
    changed statement)."""
    text = completion.replace("\r\n", "\n").replace("\r", "\n")
    for s in stop:
        at = text.find(s) if s else -1
        if at >= 0:
            text = text[:at]
    masked = mask(text)
    m = _DECLARATION.search(masked)
    if m and _is_preamble(masked[: m.start()]):
        assign = _top_level_assign(masked, m.end())
        if assign is None:
            return Extracted(None, "restated", "the restated theorem has no `:=`")
        same = _normal(text[m.start() : assign]) == _normal(_head_of(statement))
        method = "restated" if same else "restated_changed"
        note = "" if same else "the completion restated another statement; the given one is checked"
        after = assign + 2
        by = re.match(r"\s*by(?![\w'!?])", masked[after:])
        if by:
            proof = _cut(text, masked, after + by.end())
        else:  # a term-mode proof: close the given `by` with it
            term = _cut(text, masked, after).strip()
            proof = f"\n  exact ({term})\n" if term else ""
        return _finish(proof, method, note)
    method = "continuation"
    opening = _OPENING_FENCE.match(text)
    if opening:
        text, masked, method = text[opening.end() :], masked[opening.end() :], "fenced"
    return _finish("\n" + _cut(text, masked, 0), method, "")


def _finish(proof: str, method: str, note: str) -> Extracted:
    if not mask(proof).strip():
        return Extracted(None, method, note or "no proof text after the statement")
    return Extracted(proof, method, note)


# -- screening: what a proof may contain ---------------------------------------------------------

# Commands and keywords that only make sense outside a tactic proof, each of which could change
# what is checked (declare, redefine, reopen, reconfigure) or run code in the checker itself.
FORBIDDEN_WORDS = (
    "sorry", "admit", "sorryAx", "axiom", "theorem", "lemma", "def", "example", "instance",
    "abbrev", "structure", "class", "inductive", "coinductive", "opaque", "mutual", "namespace",
    "section", "end", "universe", "variable", "include", "omit", "export", "attribute",
    "initialize", "builtin_initialize", "macro", "macro_rules", "syntax", "elab", "elab_rules",
    "notation", "infix", "infixl", "infixr", "prefix", "postfix", "declare_syntax_cat", "unsafe",
    "partial", "implemented_by", "extern", "noncomputable", "private", "protected", "import",
    "local", "scoped", "deriving", "run_cmd", "run_tac", "run_elab", "run_meta", "by_elab",
    "native_decide", "ofReduceBool", "trustCompiler", "reduceBool",
)  # fmt: skip
_FORBIDDEN = _word(FORBIDDEN_WORDS)
# `#`-commands (a `#` before a name is also Mathlib's card notation, so only these names).
HASH_COMMANDS = (
    "eval", "exit", "print", "check", "reduce", "synth", "help", "guard_msgs", "guard", "where",
    "lint", "find", "simp", "norm_num", "conv", "whnf", "time", "html", "widget", "compile",
    "count_heartbeats", "adaptation_note", "explode", "trans_imports", "min_imports",
    "check_failure", "guard_expr", "guard_target", "leansearch", "loogle", "moogle",
)  # fmt: skip
_HASH_COMMAND = re.compile(
    r"(?<![\w'])#(?:" + "|".join(sorted(HASH_COMMANDS, key=len, reverse=True)) + r")(?![\w'!?])"
)
# Names whose use means metaprogramming or IO inside the checker.
_FORBIDDEN_PREFIX = re.compile(
    r"(?<![\w'.])(?:Lean\.(?:Elab|Meta|Environment|Kernel|Compiler|Parser|PrettyPrinter|Core|IR|"
    r"Syntax|Macro|ofReduceBool|reduceBool|trustCompiler)|IO\.|System\.|unsafe\w*)"
)
ALLOWED_OPTIONS = (
    "maxHeartbeats",
    "maxRecDepth",
    "synthInstance.maxHeartbeats",
    "synthInstance.maxSize",
)
ALLOWED_OPTION_PREFIXES = ("pp.", "trace.", "linter.")
_SET_OPTION = re.compile(r"(?<![\w'.])set_option\s+([\w.]+)")


def screen_proof(proof: str) -> str | None:
    """Why `proof` may not be checked (None: it may): a forbidden keyword, command or option.
    Comments are skipped, string literals are not (interpolation `s!"{...}"` runs code)."""
    masked = mask(proof, strings=False)
    m = _FORBIDDEN.search(masked)
    if m:
        word = m.group(0)
        if word in ("sorry", "admit", "sorryAx"):
            return f"the proof uses `{word}`"
        return f"the proof contains `{word}`, which a tactic proof may not use (declarations, commands and metaprograms are refused)"
    m = _HASH_COMMAND.search(masked)
    if m:
        return f"the proof contains the command `{m.group(0)}`"
    if "@[" in masked:
        return "the proof contains an attribute `@[...]`"
    m = _FORBIDDEN_PREFIX.search(masked)
    if m:
        return f"the proof refers to `{m.group(0)}` (metaprogramming or IO)"
    for m in _SET_OPTION.finditer(masked):
        option = m.group(1)
        if option not in ALLOWED_OPTIONS and not option.startswith(ALLOWED_OPTION_PREFIXES):
            return f"the proof sets option `{option}` (allowed: {', '.join(ALLOWED_OPTIONS)}, pp.*, trace.*, linter.*)"
    return None


# -- the command and the verdict -------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One proof to check: `header` (elaborated once per worker), `text` (statement + proof +
    the axioms check, run in the header's environment), `name` of the theorem, and
    `axioms_lines`: the line(s) of `text` (1-based) where the `#print axioms` answer may stand
    (a server that splits the header off may count lines from the header or from the body)."""

    header: str
    text: str
    name: str
    axioms_lines: tuple[int, ...]

    @property
    def full_text(self) -> str:
        """Header and command as one file (what a Lean server receives)."""
        return self.header + self.text


def build_command(header: str, statement: str, proof: str, name: str) -> Command:
    """The command that checks `proof` against the given `statement` (which ends `:= by`)."""
    head = statement.rstrip("\n")
    if not head.endswith("by"):
        raise ValueError(f"statement of {name} does not end with ':= by'")
    body = head + proof.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    text = f"{body}\n#print axioms {name}\n"
    line = body.count("\n") + 2
    # Lines counted from the start of the header + text, or from the first line after the
    # header's leading imports (a Kimina server with line offsets fixed counts the former).
    full = line + header.count("\n")
    imports = 0
    for row in (header + text).split("\n"):
        if row.strip() == "" or row.strip().startswith("import "):
            imports += 1
        else:
            break
    return Command(header, text, name, tuple(sorted({line, full, full - imports})))


class ProtocolError(RuntimeError):
    """Lean's answer is not the REPL's (an infrastructure failure: never the proof's fault)."""


def _line(message: dict[str, Any]) -> int | None:
    pos = message.get("pos")
    return pos.get("line") if isinstance(pos, dict) else None


def judge_response(response: Any, command: Command) -> Check:
    """The verdict for the REPL's answer to `command` (a `{"env", "messages", "sorries"}`
    object). Raises ProtocolError when the answer is not one (`{"message": ...}` is the REPL's
    own failure, e.g. an unknown environment)."""
    if not isinstance(response, dict):
        raise ProtocolError(f"expected a JSON object from the REPL, got {type(response).__name__}")
    if "message" in response and "messages" not in response:
        raise ProtocolError(f"the REPL failed: {str(response['message'])[:300]}")
    messages = response.get("messages") or []
    sorries = response.get("sorries") or []
    if not isinstance(messages, list) or not isinstance(sorries, list):
        raise ProtocolError("the REPL's `messages`/`sorries` are not lists")
    name = re.escape(command.name)
    report = re.compile(
        rf"^'{name}' (?:depends on axioms: \[(?P<axioms>[^\]]*)\]|does not depend on any axioms)\s*$"
    )
    axioms: list[str] | None = None
    unrecognised: str | None = None
    errors = []
    for m in messages:
        if not isinstance(m, dict):
            raise ProtocolError("a REPL message is not an object")
        data = str(m.get("data", ""))
        severity = m.get("severity")
        if severity == "info" and _line(m) in command.axioms_lines:
            found = report.match(data.strip())
            if found:
                listed = found.group("axioms")
                axioms = [a.strip() for a in listed.split(",") if a.strip()] if listed else []
                continue
            if data.startswith(f"'{command.name}'"):
                unrecognised = data
        if severity == "error":
            errors.append(m)
    if errors:
        first = errors[0]
        return Check(
            "incorrect", detail=f"Lean error at line {_line(first)}: {_clip(first.get('data'))}"
        )
    if sorries or any(
        m.get("severity") == "warning" and "declaration uses 'sorry'" in str(m.get("data"))
        for m in messages
    ):
        return Check("incorrect", detail="the proof uses sorry")
    if axioms is None:
        if unrecognised is not None:
            raise ProtocolError(
                f"unrecognised `#print axioms` answer {unrecognised[:200]!r}: is the REPL a Lean 4 "
                "REPL of the pinned version (containers/lean.def)?"
            )
        return Check(
            "incorrect",
            detail=f"`#print axioms {command.name}` gave no answer after the proof (the proof must end inside the theorem)",
        )
    if "sorryAx" in axioms:
        return Check("incorrect", detail="the proof uses sorry (sorryAx)")
    extra = [a for a in axioms if a not in ALLOWED_AXIOMS]
    if extra:
        hint = (
            " (native_decide/ofReduceBool trusts the compiler)"
            if any("ReduceBool" in a for a in extra)
            else ""
        )
        return Check(
            "incorrect",
            detail=f"the proof depends on axiom(s) {', '.join(extra)} beyond {', '.join(ALLOWED_AXIOMS)}{hint}",
        )
    return Check(
        "correct",
        detail=f"Lean accepted the proof; axioms: {', '.join(axioms) if axioms else 'none'}",
    )


def _clip(data: Any, limit: int = 300) -> str:
    text = " ".join(str(data).split())
    return text if len(text) <= limit else text[:limit] + "..."
