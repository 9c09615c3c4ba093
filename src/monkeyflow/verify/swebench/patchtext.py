"""Patch text: reading a unified diff out of a completion, and its normal form (what is applied
and what the verdict cache is keyed by)."""

from __future__ import annotations

import re

FENCE = re.compile(r"```[ \t]*(?:diff|patch|udiff)?[^\n]*\n(.*?)(?:\n```|\Z)", re.DOTALL)
DIFF_START = re.compile(r"^(diff --git |--- (?:a/|/dev/null))", re.MULTILINE)


def normalise_patch(text: str) -> str:
    """The patch as applied: LF line ends, no `index` lines (only --3way reads them), no
    leading/trailing blank lines, one final newline; '' for a patch with no diff in it."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [ln for ln in text.split("\n") if not re.match(r"^index [0-9a-f]+\.\.[0-9a-f]+", ln)]
    body = "\n".join(lines).strip("\n")
    if not DIFF_START.search(body):
        return ""
    return body + "\n"


def extract_patch(completion: str) -> str:
    """The diff in a completion: a predictions file's bare patch as it is, else the fenced
    block(s) holding a diff (joined), else the text from the first diff header on."""
    if DIFF_START.match(completion.lstrip("\n")):
        return completion
    blocks = [b for b in FENCE.findall(completion) if DIFF_START.search(b)]
    if blocks:
        return "\n".join(b.strip("\n") for b in blocks) + "\n"
    found = DIFF_START.search(completion)
    return completion[found.start() :] if found else ""


HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def repair_diff(diff: str) -> str:
    """A model's diff made appliable where the intent is clear: `diff --git` headers added
    before `--- a/X` / `+++ b/Y` pairs that lack one, blank context lines given their space, and
    every hunk header's line counts recomputed from the hunk's body."""
    lines = diff.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i = 0
    in_hunk = False
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("--- ") and nxt.startswith("+++ "):
            in_hunk = False
            old = line[4:].split("\t")[0].strip()
            new = nxt[4:].split("\t")[0].strip()
            if not any(o.startswith("diff --git ") for o in out[-4:]):
                a = old[2:] if old.startswith("a/") else (new[2:] if new.startswith("b/") else old)
                b = new[2:] if new.startswith("b/") else a
                if old == "/dev/null":
                    a = b
                out.append(f"diff --git a/{a} b/{b}")
            out += [line, nxt]
            i += 2
            continue
        if HUNK.match(line):
            in_hunk = True
            out.append(line)
        elif in_hunk and line == "":
            out.append(" ")  # a blank context line whose space was lost
        elif in_hunk and not line.startswith((" ", "+", "-", "\\")):
            in_hunk = False
            out.append(line)
        else:
            out.append(line)
        i += 1
    while out and out[-1] in ("", " "):
        out.pop()  # trailing blank lines are the end of the text, not context
    return _recount("\n".join(out) + "\n")


def _recount(diff: str) -> str:
    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        m = HUNK.match(lines[i])
        if not m:
            i += 1
            continue
        old = new = 0
        j = i + 1
        while j < len(lines):
            body = lines[j]
            if HUNK.match(body) or body.startswith("diff --git "):
                break
            if body.startswith("--- ") and j + 1 < len(lines) and lines[j + 1].startswith("+++ "):
                break
            if body.startswith(" "):
                old, new = old + 1, new + 1
            elif body.startswith("-"):
                old += 1
            elif body.startswith("+"):
                new += 1
            elif not body.startswith("\\"):
                break
            j += 1
        lines[i] = f"@@ -{m.group(1)},{old} +{m.group(3)},{new} @@{m.group(5)}"
        i = j
    return "\n".join(lines)
