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
